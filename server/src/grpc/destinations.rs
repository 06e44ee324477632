//! `retl.v1.DestinationService`.

use retl_engine::Engine;
use retl_engine::catalog::destination::{DestinationPatch, NewDestination};
use retl_proto::v1;
use retl_proto::v1::destination_service_server::DestinationService;
use tonic::{Request, Response, Status};

use crate::grpc::status::{required, status};
use crate::grpc::{
    Order, PageRequest, convert, create_id, paginate, required_id, touches, update_paths,
};

/// The destination service.
#[derive(Debug, Clone)]
pub struct DestinationApi {
    engine: Engine,
}

impl DestinationApi {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        DestinationApi { engine }
    }
}

#[tonic::async_trait]
impl DestinationService for DestinationApi {
    async fn list_destination_types(
        &self,
        _request: Request<v1::ListDestinationTypesRequest>,
    ) -> Result<Response<v1::ListDestinationTypesResponse>, Status> {
        Ok(Response::new(v1::ListDestinationTypesResponse {
            destination_types: self
                .engine
                .destinations()
                .types()
                .into_iter()
                .map(convert::destination_type)
                .collect(),
        }))
    }

    async fn create_destination(
        &self,
        request: Request<v1::CreateDestinationRequest>,
    ) -> Result<Response<v1::Destination>, Status> {
        let req = request.into_inner();
        let destination = req.destination.ok_or_else(|| required("destination"))?;
        if destination.r#type.is_empty() {
            return Err(required("destination.type"));
        }
        let new = NewDestination {
            id: create_id("destination", req.destination_id, destination.id)?,
            display_name: destination.display_name,
            destination_type: destination.r#type,
            config: convert::config(destination.config),
            enabled: destination.enabled,
        };
        let def = self
            .engine
            .destinations()
            .create(new)
            .await
            .map_err(status)?;
        tracing::info!(destination_id = %def.id, destination_type = %def.destination_type, "destination created");
        Ok(Response::new(convert::destination(def)))
    }

    async fn get_destination(
        &self,
        request: Request<v1::GetDestinationRequest>,
    ) -> Result<Response<v1::Destination>, Status> {
        let req = request.into_inner();
        let id = required_id("destination_id", &req.destination_id)?;
        let def = self.engine.destinations().get(id).map_err(status)?;
        Ok(Response::new(convert::destination(def)))
    }

    async fn list_destinations(
        &self,
        request: Request<v1::ListDestinationsRequest>,
    ) -> Result<Response<v1::ListDestinationsResponse>, Status> {
        let req = request.into_inner();
        let all = self.engine.destinations().list().map_err(status)?;
        let (page, next_page_token) = paginate(
            all,
            |d| d.id.as_str(),
            Order::Ascending,
            &PageRequest {
                rpc: "ListDestinations",
                filter: "",
                page_size: req.page_size,
                page_token: &req.page_token,
            },
        )?;
        Ok(Response::new(v1::ListDestinationsResponse {
            destinations: page.into_iter().map(convert::destination).collect(),
            next_page_token,
        }))
    }

    async fn update_destination(
        &self,
        request: Request<v1::UpdateDestinationRequest>,
    ) -> Result<Response<v1::Destination>, Status> {
        let req = request.into_inner();
        let destination = req.destination.ok_or_else(|| required("destination"))?;
        let id = required_id("destination.id", &destination.id)?.to_string();
        let paths = update_paths(
            "destination",
            req.update_mask,
            &["display_name", "config", "enabled"],
            &[
                "id",
                "type",
                "secret_fields_set",
                "create_time",
                "update_time",
            ],
        )?;
        let enabled = if touches(&paths, "enabled", destination.enabled.is_some()) {
            Some(destination.enabled.unwrap_or(false))
        } else {
            None
        };
        let patch = DestinationPatch {
            display_name: touches(&paths, "display_name", !destination.display_name.is_empty())
                .then_some(destination.display_name),
            config: touches(&paths, "config", destination.config.is_some())
                .then(|| convert::config(destination.config)),
            enabled,
        };
        let def = self
            .engine
            .destinations()
            .update(&id, patch)
            .await
            .map_err(status)?;
        tracing::info!(destination_id = %def.id, "destination updated");
        Ok(Response::new(convert::destination(def)))
    }

    async fn delete_destination(
        &self,
        request: Request<v1::DeleteDestinationRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.into_inner();
        let id = required_id("destination_id", &req.destination_id)?;
        self.engine
            .destinations()
            .delete(id)
            .await
            .map_err(status)?;
        tracing::info!(destination_id = %id, "destination deleted");
        Ok(Response::new(()))
    }

    async fn test_destination(
        &self,
        request: Request<v1::TestDestinationRequest>,
    ) -> Result<Response<v1::TestDestinationResponse>, Status> {
        let req = request.into_inner();
        let id = required_id("destination_id", &req.destination_id)?;
        let message = self.engine.destinations().test(id).await.map_err(status)?;
        Ok(Response::new(v1::TestDestinationResponse { message }))
    }

    async fn list_action_fields(
        &self,
        request: Request<v1::ListActionFieldsRequest>,
    ) -> Result<Response<v1::ListActionFieldsResponse>, Status> {
        let req = request.into_inner();
        let id = required_id("destination_id", &req.destination_id)?;
        if req.action.is_empty() {
            return Err(crate::grpc::status::required("action"));
        }
        let fields = self
            .engine
            .mappings()
            .action_fields(id, &req.action)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListActionFieldsResponse {
            fields: fields.iter().map(convert::field_info).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::grpc::{convert, json};

    /// The catalog served by `ListDestinationTypes` (types, config fields, actions, fields,
    /// default limits), checked in so that any change to it is reviewed. Regenerate with
    /// `RETL_UPDATE_SNAPSHOTS=1 cargo test --workspace --lib destination_types_snapshot`.
    #[test]
    fn destination_types_snapshot() {
        let registry = crate::registry();
        let types: Vec<serde_json::Value> = registry
            .destination_types()
            .map(|t| json::destination_type(&convert::destination_type(t)))
            .collect();
        let actual = serde_json::to_string_pretty(&serde_json::json!({
            "destination_types": types
        }))
        .unwrap()
            + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/destination_types.json");
        if std::env::var_os("RETL_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            expected == actual,
            "the destination type catalog changed; review the diff and regenerate {} with \
             RETL_UPDATE_SNAPSHOTS=1 cargo test --workspace --lib destination_types_snapshot\n\nnew catalog:\n{actual}",
            path.display()
        );
    }
}
