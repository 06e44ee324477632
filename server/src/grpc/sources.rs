//! `retl.v1.SourceService`.

use retl_engine::Engine;
use retl_engine::catalog::source::{NewSource, SourcePatch};
use retl_proto::v1;
use retl_proto::v1::source_service_server::SourceService;
use tonic::{Request, Response, Status};

use crate::grpc::status::{required, status};
use crate::grpc::{
    Order, PageRequest, convert, create_id, paginate, required_id, touches, update_paths,
};

/// The source service.
#[derive(Debug, Clone)]
pub struct SourceApi {
    engine: Engine,
}

impl SourceApi {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        SourceApi { engine }
    }
}

#[tonic::async_trait]
impl SourceService for SourceApi {
    async fn create_source(
        &self,
        request: Request<v1::CreateSourceRequest>,
    ) -> Result<Response<v1::Source>, Status> {
        let req = request.into_inner();
        let source = req.source.ok_or_else(|| required("source"))?;
        if source.r#type.is_empty() {
            return Err(required("source.type"));
        }
        let new = NewSource {
            id: create_id("source", req.source_id, source.id)?,
            display_name: source.display_name,
            source_type: source.r#type,
            config: convert::config(source.config),
        };
        let def = self.engine.sources().create(new).await.map_err(status)?;
        tracing::info!(source_id = %def.id, source_type = %def.source_type, "source created");
        Ok(Response::new(convert::source(def)))
    }

    async fn get_source(
        &self,
        request: Request<v1::GetSourceRequest>,
    ) -> Result<Response<v1::Source>, Status> {
        let req = request.into_inner();
        let id = required_id("source_id", &req.source_id)?;
        let def = self.engine.sources().get(id).map_err(status)?;
        Ok(Response::new(convert::source(def)))
    }

    async fn list_sources(
        &self,
        request: Request<v1::ListSourcesRequest>,
    ) -> Result<Response<v1::ListSourcesResponse>, Status> {
        let req = request.into_inner();
        let all = self.engine.sources().list().map_err(status)?;
        let (page, next_page_token) = paginate(
            all,
            |s| s.id.as_str(),
            Order::Ascending,
            &PageRequest {
                rpc: "ListSources",
                filter: "",
                page_size: req.page_size,
                page_token: &req.page_token,
            },
        )?;
        Ok(Response::new(v1::ListSourcesResponse {
            sources: page.into_iter().map(convert::source).collect(),
            next_page_token,
        }))
    }

    async fn update_source(
        &self,
        request: Request<v1::UpdateSourceRequest>,
    ) -> Result<Response<v1::Source>, Status> {
        let req = request.into_inner();
        let source = req.source.ok_or_else(|| required("source"))?;
        let id = required_id("source.id", &source.id)?.to_string();
        let paths = update_paths(
            "source",
            req.update_mask,
            &["display_name", "config"],
            &[
                "id",
                "type",
                "secret_fields_set",
                "create_time",
                "update_time",
            ],
        )?;
        let patch = SourcePatch {
            display_name: touches(&paths, "display_name", !source.display_name.is_empty())
                .then_some(source.display_name),
            config: touches(&paths, "config", source.config.is_some())
                .then(|| convert::config(source.config)),
        };
        let def = self
            .engine
            .sources()
            .update(&id, patch)
            .await
            .map_err(status)?;
        tracing::info!(source_id = %def.id, "source updated");
        Ok(Response::new(convert::source(def)))
    }

    async fn delete_source(
        &self,
        request: Request<v1::DeleteSourceRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.into_inner();
        let id = required_id("source_id", &req.source_id)?;
        self.engine.sources().delete(id).await.map_err(status)?;
        tracing::info!(source_id = %id, "source deleted");
        Ok(Response::new(()))
    }

    async fn test_source(
        &self,
        request: Request<v1::TestSourceRequest>,
    ) -> Result<Response<v1::TestSourceResponse>, Status> {
        let req = request.into_inner();
        let id = required_id("source_id", &req.source_id)?;
        let report = self.engine.sources().test(id).await.map_err(status)?;
        Ok(Response::new(v1::TestSourceResponse {
            message: report.message,
            warnings: report.warnings,
        }))
    }

    async fn list_tables(
        &self,
        request: Request<v1::ListTablesRequest>,
    ) -> Result<Response<v1::ListTablesResponse>, Status> {
        let req = request.into_inner();
        let id = required_id("source_id", &req.source_id)?;
        let tables = self.engine.sources().tables(id).await.map_err(status)?;
        Ok(Response::new(v1::ListTablesResponse {
            tables: tables.into_iter().map(convert::table).collect(),
        }))
    }
}
