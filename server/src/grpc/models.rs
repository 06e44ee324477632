//! `retl.v1.ModelService`.

use retl_engine::Engine;
use retl_engine::catalog::model::{ModelPatch, NewModel, PreviewTarget};
use retl_proto::v1;
use retl_proto::v1::model_service_server::ModelService;
use tonic::{Request, Response, Status};

use crate::grpc::status::{invalid_argument, required, status};
use crate::grpc::{
    Order, PageRequest, convert, create_id, paginate, required_id, touches, update_paths,
};

/// Rows `PreviewModel` returns when the request asks for 0.
pub const DEFAULT_PREVIEW_ROWS: usize = 10;
/// Most rows `PreviewModel` returns.
pub const MAX_PREVIEW_ROWS: usize = 1000;

/// The model service.
#[derive(Debug, Clone)]
pub struct ModelApi {
    engine: Engine,
}

impl ModelApi {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        ModelApi { engine }
    }
}

fn non_empty(field: &str, value: String) -> Result<String, Status> {
    if value.trim().is_empty() {
        Err(required(field))
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl ModelService for ModelApi {
    async fn create_model(
        &self,
        request: Request<v1::CreateModelRequest>,
    ) -> Result<Response<v1::Model>, Status> {
        let req = request.into_inner();
        let model = req.model.ok_or_else(|| required("model"))?;
        let new = NewModel {
            id: create_id("model", req.model_id, model.id)?,
            display_name: model.display_name,
            source_id: non_empty("model.source_id", model.source_id)?,
            sql: non_empty("model.sql", model.sql)?,
            unique_id: non_empty("model.unique_id", model.unique_id)?,
        };
        let def = self.engine.models().create(new).await.map_err(status)?;
        tracing::info!(model_id = %def.id, source_id = %def.source_id, "model created");
        Ok(Response::new(convert::model(def)))
    }

    async fn get_model(
        &self,
        request: Request<v1::GetModelRequest>,
    ) -> Result<Response<v1::Model>, Status> {
        let req = request.into_inner();
        let id = required_id("model_id", &req.model_id)?;
        let def = self.engine.models().get(id).map_err(status)?;
        Ok(Response::new(convert::model(def)))
    }

    async fn list_models(
        &self,
        request: Request<v1::ListModelsRequest>,
    ) -> Result<Response<v1::ListModelsResponse>, Status> {
        let req = request.into_inner();
        let all = self.engine.models().list().map_err(status)?;
        let (page, next_page_token) = paginate(
            all,
            |m| m.id.as_str(),
            Order::Ascending,
            &PageRequest {
                rpc: "ListModels",
                filter: "",
                page_size: req.page_size,
                page_token: &req.page_token,
            },
        )?;
        Ok(Response::new(v1::ListModelsResponse {
            models: page.into_iter().map(convert::model).collect(),
            next_page_token,
        }))
    }

    async fn update_model(
        &self,
        request: Request<v1::UpdateModelRequest>,
    ) -> Result<Response<v1::Model>, Status> {
        let req = request.into_inner();
        let model = req.model.ok_or_else(|| required("model"))?;
        let id = required_id("model.id", &model.id)?.to_string();
        let paths = update_paths(
            "model",
            req.update_mask,
            &["display_name", "source_id", "sql", "unique_id"],
            &["id", "columns", "create_time", "update_time"],
        )?;
        let patch = ModelPatch {
            display_name: touches(&paths, "display_name", !model.display_name.is_empty())
                .then_some(model.display_name),
            source_id: if touches(&paths, "source_id", !model.source_id.is_empty()) {
                Some(non_empty("model.source_id", model.source_id)?)
            } else {
                None
            },
            sql: if touches(&paths, "sql", !model.sql.is_empty()) {
                Some(non_empty("model.sql", model.sql)?)
            } else {
                None
            },
            unique_id: if touches(&paths, "unique_id", !model.unique_id.is_empty()) {
                Some(non_empty("model.unique_id", model.unique_id)?)
            } else {
                None
            },
        };
        let def = self
            .engine
            .models()
            .update(&id, patch)
            .await
            .map_err(status)?;
        tracing::info!(model_id = %def.id, "model updated");
        Ok(Response::new(convert::model(def)))
    }

    async fn delete_model(
        &self,
        request: Request<v1::DeleteModelRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.into_inner();
        let id = required_id("model_id", &req.model_id)?;
        self.engine.models().delete(id).await.map_err(status)?;
        tracing::info!(model_id = %id, "model deleted");
        Ok(Response::new(()))
    }

    async fn preview_model(
        &self,
        request: Request<v1::PreviewModelRequest>,
    ) -> Result<Response<v1::PreviewModelResponse>, Status> {
        let req = request.into_inner();
        let target = match req.target {
            Some(v1::preview_model_request::Target::ModelId(id)) => {
                PreviewTarget::Model(non_empty("model_id", id)?)
            }
            Some(v1::preview_model_request::Target::Query(q)) => PreviewTarget::Sql {
                source_id: non_empty("query.source_id", q.source_id)?,
                sql: non_empty("query.sql", q.sql)?,
            },
            None => {
                return Err(invalid_argument(
                    "target",
                    "is required: set `model_id` or `query` (source_id + sql)",
                ));
            }
        };
        let limit = match usize::try_from(req.limit) {
            Ok(0) => DEFAULT_PREVIEW_ROWS,
            Ok(n) if n <= MAX_PREVIEW_ROWS => n,
            _ => {
                return Err(invalid_argument(
                    "limit",
                    &format!("must be between 0 (= {DEFAULT_PREVIEW_ROWS}) and {MAX_PREVIEW_ROWS}"),
                ));
            }
        };
        let preview = self
            .engine
            .models()
            .preview(target, limit, req.refresh)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::preview(preview)))
    }
}
