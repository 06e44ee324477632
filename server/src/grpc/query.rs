//! `retl.v1.QueryService`: one read-only SQL statement over the staged extracts and the system
//! tables, its result streamed as one Arrow IPC stream cut into messages (the schema first, then
//! one message per record batch, then the end-of-stream marker).

use std::pin::Pin;

use datafusion::arrow::ipc::writer::StreamWriter;
use futures::{Stream, StreamExt};
use retl_engine::Engine;
use retl_engine::error::Error;
use retl_proto::v1;
use retl_proto::v1::query_service_server::QueryService;
use tonic::{Request, Response, Status};

use crate::grpc::status::status;

/// The query service.
#[derive(Debug, Clone)]
pub struct QueryApi {
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

/// The bytes written to the IPC writer since the last take.
fn take(writer: &mut StreamWriter<Vec<u8>>) -> Vec<u8> {
    std::mem::take(writer.get_mut())
}

fn ipc_error(e: impl std::fmt::Display) -> Status {
    status(Error::internal(format!(
        "encoding the result as Arrow IPC: {e}"
    )))
}

/// Turns the result's batches into IPC messages.
struct Encoder {
    writer: StreamWriter<Vec<u8>>,
    batches: datafusion::execution::SendableRecordBatchStream,
    first: Option<Vec<u8>>,
    done: bool,
}

impl Encoder {
    /// The next message: the schema, a batch, or the end-of-stream marker; `None` after it or
    /// after an error.
    async fn next(&mut self) -> Option<Result<v1::ExecuteQueryResponse, Status>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(v1::ExecuteQueryResponse { arrow_ipc: first }));
        }
        if self.done {
            return None;
        }
        let written = match self.batches.next().await {
            Some(Ok(batch)) => self.writer.write(&batch).map_err(ipc_error),
            Some(Err(e)) => {
                self.done = true;
                Err(status(retl_engine::query::query_error(e, &[])))
            }
            None => {
                self.done = true;
                self.writer.finish().map_err(ipc_error)
            }
        };
        Some(written.map(|()| v1::ExecuteQueryResponse {
            arrow_ipc: take(&mut self.writer),
        }))
    }
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    type ExecuteQueryStream = ExecuteQueryStream;

    async fn execute_query(
        &self,
        request: Request<v1::ExecuteQueryRequest>,
    ) -> Result<Response<Self::ExecuteQueryStream>, Status> {
        let request = request.into_inner();
        let result = self
            .engine
            .query()
            .execute(&request.sql, request.limit)
            .await
            .map_err(status)?;
        let mut writer = StreamWriter::try_new(Vec::new(), &result.schema).map_err(ipc_error)?;
        let first = take(&mut writer);
        let state = Encoder {
            writer,
            batches: result.stream,
            first: Some(first),
            done: false,
        };
        let body = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Response::new(Box::pin(body)))
    }
}
