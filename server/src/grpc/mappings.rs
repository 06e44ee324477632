//! `retl.v1.MappingService`.

use retl_engine::Engine;
use retl_engine::mapping::spec::{MappingDef, MappingPatch, NewMapping};
use retl_proto::v1;
use retl_proto::v1::mapping_service_server::MappingService;
use tonic::{Request, Response, Status};

use crate::grpc::status::{required, status};
use crate::grpc::{
    Order, PageRequest, convert, create_id, paginate, required_id, touches, update_paths,
};

/// The mapping service.
#[derive(Debug, Clone)]
pub struct MappingApi {
    engine: Engine,
}

impl MappingApi {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        MappingApi { engine }
    }

    /// A mapping as proto, with what the scheduler did and will do.
    fn present(&self, def: MappingDef) -> Result<v1::Mapping, Status> {
        let schedule_status = self
            .engine
            .scheduler()
            .status(&def, 3)
            .map_err(status)?
            .map(convert::schedule_status);
        let mut mapping = convert::mapping(def);
        mapping.schedule_status = schedule_status;
        Ok(mapping)
    }
}

/// A request's raw enum value of `field`; an unknown number is the caller's mistake, answered
/// with what the field accepts.
fn enum_field<E: TryFrom<i32>>(
    field: &str,
    raw: i32,
    what: &str,
    accepted: &str,
) -> Result<E, Status> {
    E::try_from(raw).map_err(|_| {
        Status::invalid_argument(format!("{field}: {raw} is not {what}; use {accepted}"))
    })
}

/// The sync mode of a request's raw enum value.
fn sync_mode_of(raw: i32) -> Result<v1::SyncMode, Status> {
    enum_field(
        "mapping.sync_mode",
        raw,
        "a sync mode",
        "one of SYNC_MODE_UPSERT, SYNC_MODE_UPDATE, SYNC_MODE_CREATE, SYNC_MODE_ADD, SYNC_MODE_REMOVE (or leave it unset for the action's default)",
    )
}

/// The NULL handling of a request's raw enum value.
fn null_values_of(raw: i32) -> Result<v1::NullValues, Status> {
    enum_field(
        "mapping.null_values",
        raw,
        "a NULL handling",
        "NULL_VALUES_SEND or NULL_VALUES_OMIT",
    )
}

fn non_empty(field: &str, value: String) -> Result<String, Status> {
    if value.is_empty() {
        Err(required(field))
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl MappingService for MappingApi {
    async fn create_mapping(
        &self,
        request: Request<v1::CreateMappingRequest>,
    ) -> Result<Response<v1::Mapping>, Status> {
        let req = request.into_inner();
        let mapping = req.mapping.ok_or_else(|| required("mapping"))?;
        let initial_sync = convert::initial_sync_from(mapping.initial_sync());
        let schedule = match mapping.schedule {
            Some(s) => convert::schedule_from("mapping.schedule", s)?,
            None => None,
        };
        let sync_mode = convert::sync_mode_from(sync_mode_of(mapping.sync_mode)?);
        let new = NewMapping {
            id: create_id("mapping", req.mapping_id, mapping.id)?,
            display_name: mapping.display_name,
            model_id: non_empty("mapping.model_id", mapping.model_id)?,
            destination_id: non_empty("mapping.destination_id", mapping.destination_id)?,
            action: non_empty("mapping.action", mapping.action)?,
            fields: convert::field_mappings("mapping.fields", mapping.fields)?,
            selection: mapping.selection.map(convert::selection_from),
            sync_mode,
            null_values: convert::null_values_from(null_values_of(mapping.null_values)?),
            initial_sync,
            enabled: mapping.enabled,
            schedule,
            retry_policy: mapping
                .retry_policy
                .map(convert::retry_policy_from)
                .transpose()?,
            alerts: mapping.alerts.map(convert::alert_policy_from),
        };
        let def = self.engine.mappings().create(new).await.map_err(status)?;
        tracing::info!(mapping_id = %def.id, model_id = %def.model_id, destination_id = %def.destination_id, action = %def.action, "mapping created");
        Ok(Response::new(self.present(def)?))
    }

    async fn get_mapping(
        &self,
        request: Request<v1::GetMappingRequest>,
    ) -> Result<Response<v1::Mapping>, Status> {
        let req = request.into_inner();
        let id = required_id("mapping_id", &req.mapping_id)?;
        let def = self.engine.mappings().get(id).map_err(status)?;
        Ok(Response::new(self.present(def)?))
    }

    async fn list_mappings(
        &self,
        request: Request<v1::ListMappingsRequest>,
    ) -> Result<Response<v1::ListMappingsResponse>, Status> {
        let req = request.into_inner();
        let all = self.engine.mappings().list().map_err(status)?;
        let (page, next_page_token) = paginate(
            all,
            |m| m.id.as_str(),
            Order::Ascending,
            &PageRequest {
                rpc: "ListMappings",
                filter: "",
                page_size: req.page_size,
                page_token: &req.page_token,
            },
        )?;
        Ok(Response::new(v1::ListMappingsResponse {
            mappings: page
                .into_iter()
                .map(|def| self.present(def))
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    async fn update_mapping(
        &self,
        request: Request<v1::UpdateMappingRequest>,
    ) -> Result<Response<v1::Mapping>, Status> {
        let req = request.into_inner();
        let mapping = req.mapping.ok_or_else(|| required("mapping"))?;
        let id = required_id("mapping.id", &mapping.id)?.to_string();
        let paths = update_paths(
            "mapping",
            req.update_mask,
            &[
                "display_name",
                "fields",
                "selection",
                "sync_mode",
                "null_values",
                "enabled",
                "schedule",
                "retry_policy",
                "alerts",
            ],
            &[
                "id",
                "model_id",
                "destination_id",
                "action",
                "initial_sync",
                "create_time",
                "update_time",
            ],
        )?;
        let schedule = if touches(&paths, "schedule", mapping.schedule.is_some()) {
            Some(match mapping.schedule {
                Some(s) => convert::schedule_from("mapping.schedule", s)?,
                None => None,
            })
        } else {
            None
        };
        let fields = if touches(&paths, "fields", !mapping.fields.is_empty()) {
            Some(convert::field_mappings("mapping.fields", mapping.fields)?)
        } else {
            None
        };
        let selection = if touches(&paths, "selection", mapping.selection.is_some()) {
            Some(convert::selection_from(
                mapping
                    .selection
                    .ok_or_else(|| required("mapping.selection"))?,
            ))
        } else {
            None
        };
        let enabled = if touches(&paths, "enabled", mapping.enabled.is_some()) {
            Some(mapping.enabled.unwrap_or(false))
        } else {
            None
        };
        let sync_mode = if touches(&paths, "sync_mode", mapping.sync_mode != 0) {
            convert::sync_mode_from(sync_mode_of(mapping.sync_mode)?)
        } else {
            None
        };
        let null_values = if touches(&paths, "null_values", mapping.null_values != 0) {
            Some(convert::null_values_from(null_values_of(
                mapping.null_values,
            )?))
        } else {
            None
        };
        let patch = MappingPatch {
            display_name: touches(&paths, "display_name", !mapping.display_name.is_empty())
                .then_some(mapping.display_name),
            fields,
            selection,
            sync_mode,
            null_values,
            enabled,
            schedule,
            retry_policy: if touches(&paths, "retry_policy", mapping.retry_policy.is_some()) {
                Some(convert::retry_policy_from(
                    mapping.retry_policy.unwrap_or_default(),
                )?)
            } else {
                None
            },
            alerts: touches(&paths, "alerts", mapping.alerts.is_some())
                .then(|| convert::alert_policy_from(mapping.alerts.unwrap_or_default())),
        };
        let def = self
            .engine
            .mappings()
            .update(&id, patch)
            .await
            .map_err(status)?;
        tracing::info!(mapping_id = %def.id, "mapping updated");
        Ok(Response::new(self.present(def)?))
    }

    async fn delete_mapping(
        &self,
        request: Request<v1::DeleteMappingRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.into_inner();
        let id = required_id("mapping_id", &req.mapping_id)?;
        self.engine.mappings().delete(id).await.map_err(status)?;
        tracing::info!(mapping_id = %id, "mapping deleted");
        Ok(Response::new(()))
    }

    async fn set_mapping_enabled(
        &self,
        request: Request<v1::SetMappingEnabledRequest>,
    ) -> Result<Response<v1::Mapping>, Status> {
        let req = request.into_inner();
        let id = required_id("mapping_id", &req.mapping_id)?;
        let def = self
            .engine
            .mappings()
            .set_enabled(id, req.enabled)
            .await
            .map_err(status)?;
        tracing::info!(mapping_id = %id, enabled = req.enabled, "mapping enabled flag set");
        Ok(Response::new(self.present(def)?))
    }

    async fn suggest_mappings(
        &self,
        request: Request<v1::SuggestMappingsRequest>,
    ) -> Result<Response<v1::SuggestMappingsResponse>, Status> {
        let req = request.into_inner();
        let model = required_id("model_id", &req.model_id)?;
        let destination = required_id("destination_id", &req.destination_id)?;
        let action = non_empty("action", req.action)?;
        let suggestions = self
            .engine
            .mappings()
            .suggest(model, destination, &action)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::SuggestMappingsResponse {
            suggestions: suggestions
                .into_iter()
                .map(|s| v1::SuggestedMapping {
                    field: s.field,
                    column: s.column,
                    score: s.score,
                    reason: s.reason,
                })
                .collect(),
        }))
    }

    async fn send_test_record(
        &self,
        request: Request<v1::SendTestRecordRequest>,
    ) -> Result<Response<v1::SendTestRecordResponse>, Status> {
        let req = request.into_inner();
        let def = if req.mapping_id.is_empty() {
            let Some(mapping) = req.mapping else {
                return Err(Status::invalid_argument(
                    "mapping_id: set it to a saved mapping, or set `mapping` to an unsaved one",
                ));
            };
            unsaved_mapping(mapping)?
        } else {
            let id = required_id("mapping_id", &req.mapping_id)?;
            self.engine.mappings().get(id).map_err(status)?
        };
        let key = (!req.key.is_empty()).then_some(req.key);
        let result = self
            .engine
            .mappings()
            .send_test_record(&def, key)
            .await
            .map_err(status)?;
        tracing::info!(mapping_id = %def.id, accepted = result.accepted, "test record sent");
        let payload = serde_json::to_value(&result.payload)
            .map_err(|e| Status::internal(format!("encoding the test record: {e}")))?;
        Ok(Response::new(v1::SendTestRecordResponse {
            payload_json: payload.to_string(),
            payload: match payload {
                serde_json::Value::Object(map) => Some(convert::map_to_struct(map)),
                _ => None,
            },
            accepted: result.accepted,
            message: result.message,
            exchanges: result
                .exchanges
                .into_iter()
                .map(|e| v1::Exchange {
                    request: e.request,
                    request_body_json: e.request_body.to_string(),
                    status: e.status.map_or(0, u32::from),
                    response_body_json: e.response_body.to_string(),
                })
                .collect(),
        }))
    }
}

/// An unsaved mapping of a `SendTestRecord` request, as a definition (validated by the engine).
fn unsaved_mapping(mapping: v1::Mapping) -> Result<MappingDef, Status> {
    let now = chrono::Utc::now();
    let selection = mapping.selection.map(convert::selection_from);
    let initial_sync = convert::initial_sync_from(mapping.initial_sync());
    Ok(MappingDef {
        id: retl_engine::id::MappingId::new(mapping.id),
        display_name: mapping.display_name,
        model_id: retl_engine::id::ModelId::new(non_empty("mapping.model_id", mapping.model_id)?),
        destination_id: retl_engine::id::DestinationId::new(non_empty(
            "mapping.destination_id",
            mapping.destination_id,
        )?),
        action: non_empty("mapping.action", mapping.action)?,
        fields: convert::field_mappings("mapping.fields", mapping.fields)?,
        // Empty = the action's default (the engine fills it in).
        selection: selection.unwrap_or(retl_engine::mapping::select::RecordSelection {
            added: false,
            updated: false,
            deleted: false,
        }),
        sync_mode: convert::sync_mode_from(sync_mode_of(mapping.sync_mode)?),
        null_values: convert::null_values_from(null_values_of(mapping.null_values)?),
        initial_sync,
        enabled: mapping.enabled.unwrap_or(true),
        schedule: None,
        retry_policy: Default::default(),
        alerts: Default::default(),
        create_time: now,
        update_time: now,
    })
}
