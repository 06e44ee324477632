//! `retl.v1.QueryService` (not implemented yet).

use std::pin::Pin;

use futures::Stream;
use retl_engine::Engine;
use retl_proto::v1;
use retl_proto::v1::query_service_server::QueryService;
use tonic::{Request, Response, Status};

/// The query service.
#[derive(Debug, Clone)]
pub struct QueryApi {
    #[expect(dead_code, reason = "ExecuteQuery is not implemented yet")]
    engine: Engine,
}

impl QueryApi {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        QueryApi { engine }
    }
}

/// The stream `ExecuteQuery` answers with.
pub type ExecuteQueryStream =
    Pin<Box<dyn Stream<Item = Result<v1::ExecuteQueryResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl QueryService for QueryApi {
    type ExecuteQueryStream = ExecuteQueryStream;

    async fn execute_query(
        &self,
        _request: Request<v1::ExecuteQueryRequest>,
    ) -> Result<Response<Self::ExecuteQueryStream>, Status> {
        Err(crate::grpc::status::unimplemented("ExecuteQuery"))
    }
}
