//! The account of the HubSpot emulator (properties and records) and its batch endpoints; the
//! server, controls and ledger are in [`super::hubspot`].

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::hubspot::{HubSpotRecord, Ledger};

/// An answer: status, optional JSON body, optional `Retry-After`.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<u64>,
    pub(super) body: Option<Value>,
}

impl Answer {
    /// HubSpot's error body.
    pub(super) fn error(status: StatusCode, category: &str, message: &str) -> Self {
        Answer {
            status,
            retry_after: None,
            body: Some(json!({
                "status": "error",
                "message": message,
                "correlationId": "00000000-0000-0000-0000-000000000000",
                "category": category,
            })),
        }
    }

    fn json(status: StatusCode, body: Value) -> Self {
        Answer {
            status,
            retry_after: None,
            body: Some(body),
        }
    }
}

/// A property definition.
#[derive(Debug, Clone)]
struct Property {
    unique: bool,
    read_only: bool,
}

/// One object type: its properties and records (record id → properties).
#[derive(Debug, Default)]
struct ObjectStore {
    properties: BTreeMap<String, Property>,
    records: BTreeMap<u64, Map<String, Value>>,
}

/// The account: contacts and companies.
#[derive(Debug)]
pub(super) struct Account {
    types: BTreeMap<String, ObjectStore>,
    next_id: u64,
}

impl Default for Account {
    fn default() -> Self {
        let mut account = Account {
            types: BTreeMap::new(),
            next_id: 1001,
        };
        let defaults: [(&str, &[&str]); 2] = [
            (
                "contacts",
                &[
                    "firstname",
                    "lastname",
                    "phone",
                    "company",
                    "website",
                    "lifecyclestage",
                ],
            ),
            (
                "companies",
                &["name", "domain", "industry", "phone", "city", "country"],
            ),
        ];
        for (object_type, names) in defaults {
            let store = account.types.entry(object_type.to_string()).or_default();
            for name in names {
                store.properties.insert(
                    name.to_string(),
                    Property {
                        unique: false,
                        read_only: false,
                    },
                );
            }
            for name in ["hs_object_id", "createdate"] {
                store.properties.insert(
                    name.to_string(),
                    Property {
                        unique: name == "hs_object_id",
                        read_only: true,
                    },
                );
            }
        }
        account.add_property("contacts", "email", true);
        account
    }
}

impl Account {
    /// Declares a writable property.
    pub(super) fn add_property(&mut self, object_type: &str, name: &str, unique: bool) {
        self.types
            .entry(object_type.to_string())
            .or_default()
            .properties
            .insert(
                name.to_string(),
                Property {
                    unique,
                    read_only: false,
                },
            );
    }

    pub(super) fn has_type(&self, object_type: &str) -> bool {
        self.types.contains_key(object_type)
    }

    pub(super) fn objects(&self, object_type: &str) -> Vec<(String, Map<String, Value>)> {
        self.types
            .get(object_type)
            .map(|s| {
                s.records
                    .iter()
                    .map(|(id, p)| (id.to_string(), p.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn remove_where(&mut self, object_type: &str, property: &str, values: &[String]) {
        if let Some(store) = self.types.get_mut(object_type) {
            store.records.retain(|_, p| {
                !p.get(property)
                    .and_then(Value::as_str)
                    .is_some_and(|v| values.iter().any(|x| x == v))
            });
        }
    }
}

/// `GET /crm/v3/objects/{type}?limit=n`.
pub(super) fn list(account: &Account, object_type: &str, limit: usize) -> Answer {
    let Some(store) = account.types.get(object_type) else {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "OBJECT_TYPE_NOT_FOUND",
            &format!("Unable to infer object type from: {object_type}"),
        );
    };
    let results: Vec<Value> = store
        .records
        .iter()
        .take(limit)
        .map(|(id, p)| json!({"id": id.to_string(), "properties": p, "archived": false}))
        .collect();
    Answer::json(StatusCode::OK, json!({ "results": results }))
}

/// `GET /crm/v3/properties/{type}`.
pub(super) fn properties(account: &Account, object_type: &str) -> Answer {
    let Some(store) = account.types.get(object_type) else {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "OBJECT_TYPE_NOT_FOUND",
            &format!("Unable to infer object type from: {object_type}"),
        );
    };
    let results: Vec<Value> = store
        .properties
        .iter()
        .map(|(name, p)| {
            json!({
                "name": name,
                "label": name,
                "type": "string",
                "fieldType": "text",
                "description": "",
                "hasUniqueValue": p.unique,
                "calculated": false,
                "modificationMetadata": {"readOnlyValue": p.read_only, "archivable": true, "readOnlyDefinition": true},
            })
        })
        .collect();
    Answer::json(StatusCode::OK, json!({ "results": results }))
}

/// A per-input error, before it becomes an `errors[]` entry or a whole-batch answer.
struct InputError {
    status: StatusCode,
    category: &'static str,
    message: String,
    context: Value,
}

impl InputError {
    fn entry(&self) -> Value {
        json!({"status": "error", "category": self.category, "message": self.message, "context": self.context})
    }
}

/// What one valid input does.
enum Write {
    Upsert {
        object_id: Option<u64>,
        id_property: String,
        id: String,
    },
    Update {
        object_id: u64,
        id_property: String,
        id: String,
    },
    Create,
}

/// `POST /crm/v3/objects/{type}/batch/{operation}`.
pub(super) fn batch(
    ledger: &mut Ledger,
    object_type: &str,
    operation: &str,
    body: &Value,
    inputs: &[Value],
    request_index: usize,
) -> Answer {
    match operation {
        "read" => read(&ledger.account, object_type, body, inputs),
        "archive" => archive(ledger, object_type, inputs, request_index),
        "upsert" | "update" | "create" => {
            write(ledger, object_type, operation, inputs, request_index)
        }
        _ => Answer::error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("no batch operation '{operation}'"),
        ),
    }
}

fn store<'a>(account: &'a Account, object_type: &str) -> &'a ObjectStore {
    // The caller checked the type exists.
    &account.types[object_type]
}

fn find(store: &ObjectStore, property: &str, value: &str) -> Option<u64> {
    store
        .records
        .iter()
        .find(|(_, p)| p.get(property).and_then(Value::as_str) == Some(value))
        .map(|(id, _)| *id)
}

fn read(account: &Account, object_type: &str, body: &Value, inputs: &[Value]) -> Answer {
    let store = store(account, object_type);
    let id_property = body
        .get("idProperty")
        .and_then(Value::as_str)
        .unwrap_or("hs_object_id");
    if !store.properties.get(id_property).is_some_and(|p| p.unique) {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("{id_property} is not a unique identifier property"),
        );
    }
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in inputs {
        let Some(value) = input.get("id").and_then(Value::as_str) else {
            return Answer::error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "every input needs an 'id' string",
            );
        };
        match find(store, id_property, value) {
            Some(id) => {
                let mut properties = Map::new();
                properties.insert(id_property.to_string(), json!(value));
                properties.insert("hs_object_id".to_string(), json!(id.to_string()));
                results.push(
                    json!({"id": id.to_string(), "properties": properties, "archived": false}),
                );
            }
            None => missing.push(value.to_string()),
        }
    }
    let mut body = json!({"status": "COMPLETE", "results": results});
    if missing.is_empty() {
        return Answer::json(StatusCode::OK, body);
    }
    body["numErrors"] = json!(1);
    body["errors"] = json!([{
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", object_type.trim_end_matches('s').to_uppercase()),
        "context": {"ids": missing},
    }]);
    Answer::json(StatusCode::MULTI_STATUS, body)
}

fn archive(
    ledger: &mut Ledger,
    object_type: &str,
    inputs: &[Value],
    request_index: usize,
) -> Answer {
    let mut ids = Vec::new();
    for input in inputs {
        match input.get("id").and_then(Value::as_str) {
            Some(id) => ids.push(id.to_string()),
            None => {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "every input needs an 'id' string",
                );
            }
        }
    }
    for id in ids {
        let removed = id.parse::<u64>().ok().and_then(|n| {
            ledger
                .account
                .types
                .get_mut(object_type)
                .and_then(|s| s.records.remove(&n))
        });
        if let Some(properties) = removed {
            ledger.records.push(HubSpotRecord {
                operation: "archive".to_string(),
                object_type: object_type.to_string(),
                object_id: id,
                id_property: None,
                id: None,
                properties,
                request_index,
            });
        }
    }
    Answer {
        status: StatusCode::NO_CONTENT,
        retry_after: None,
        body: None,
    }
}

/// Validates one write input against the account; `Err` is its per-input error.
fn check_write(
    ledger: &Ledger,
    object_type: &str,
    operation: &str,
    input: &Value,
) -> Result<(Write, Map<String, Value>), InputError> {
    let store = store(&ledger.account, object_type);
    let validation = |message: String| InputError {
        status: StatusCode::BAD_REQUEST,
        category: "VALIDATION_ERROR",
        message,
        context: json!({}),
    };
    let properties = input
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, value) in &properties {
        match store.properties.get(name) {
            None => {
                return Err(validation(format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":\"Property \\\"{name}\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"{name}\"}}]"
                )));
            }
            Some(p) if p.read_only => {
                return Err(validation(format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":\"\\\"{name}\\\" is a read only property; its value cannot be set.\",\"error\":\"READ_ONLY_VALUE\",\"name\":\"{name}\"}}]"
                )));
            }
            Some(_) if !value.is_string() => {
                return Err(validation(format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":\"{value} was not a string\",\"error\":\"INVALID_STRING\",\"name\":\"{name}\"}}]"
                )));
            }
            Some(_) => {}
        }
    }
    let rejected = |value: &str| ledger.reject_keys.contains(value);
    if operation == "create" {
        for (name, value) in &properties {
            let value = value.as_str().unwrap_or_default();
            if !store.properties.get(name).is_some_and(|p| p.unique) {
                continue;
            }
            if rejected(value) {
                return Err(validation(format!("{name} {value} was rejected")));
            }
            if let Some(existing) = find(store, name, value) {
                return Err(InputError {
                    status: StatusCode::CONFLICT,
                    category: "CONFLICT",
                    message: format!("Object already exists. Existing ID: {existing}"),
                    context: json!({}),
                });
            }
        }
        return Ok((Write::Create, properties));
    }
    let id_property = input
        .get("idProperty")
        .and_then(Value::as_str)
        .unwrap_or("hs_object_id")
        .to_string();
    let Some(id) = input.get("id").and_then(Value::as_str).map(str::to_string) else {
        return Err(validation("every input needs an 'id' string".to_string()));
    };
    if !store.properties.get(&id_property).is_some_and(|p| p.unique)
        || id_property == "hs_object_id" && operation == "upsert"
    {
        return Err(validation(format!(
            "{id_property} is not a unique identifier property"
        )));
    }
    if rejected(&id) {
        return Err(validation(format!("{id_property} {id} was rejected")));
    }
    let existing = find(store, &id_property, &id);
    let write = match (operation, existing) {
        ("update", Some(object_id)) => Write::Update {
            object_id,
            id_property,
            id,
        },
        ("update", None) => {
            return Err(InputError {
                status: StatusCode::NOT_FOUND,
                category: "OBJECT_NOT_FOUND",
                message: format!(
                    "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                    object_type.trim_end_matches('s').to_uppercase()
                ),
                context: json!({"ids": [id]}),
            });
        }
        (_, object_id) => Write::Upsert {
            object_id,
            id_property,
            id,
        },
    };
    Ok((write, properties))
}

fn write(
    ledger: &mut Ledger,
    object_type: &str,
    operation: &str,
    inputs: &[Value],
    request_index: usize,
) -> Answer {
    let mut checked = Vec::with_capacity(inputs.len());
    let mut errors = Vec::new();
    for input in inputs {
        match check_write(ledger, object_type, operation, input) {
            Ok(ok) => checked.push(ok),
            Err(mut error) => match input.get("objectWriteTraceId").and_then(Value::as_str) {
                Some(trace) => {
                    if let Value::Object(context) = &mut error.context {
                        context.insert("objectWriteTraceId".to_string(), json!([trace]));
                    }
                    errors.push(error.entry());
                }
                // Without a trace id the whole batch fails (ids are named for not-found).
                None if error.category == "OBJECT_NOT_FOUND" => errors.push(error.entry()),
                None => {
                    return Answer::error(error.status, error.category, &error.message);
                }
            },
        }
    }
    let mut results = Vec::new();
    for (write, properties) in checked {
        let account = &mut ledger.account;
        let (object_id, id_property, id) = match write {
            Write::Create => (None, None, None),
            Write::Update {
                object_id,
                id_property,
                id,
            } => (Some(object_id), Some(id_property), Some(id)),
            Write::Upsert {
                object_id,
                id_property,
                id,
            } => (object_id, Some(id_property), Some(id)),
        };
        let is_new = object_id.is_none();
        let object_id = object_id.unwrap_or_else(|| {
            account.next_id += 1;
            account.next_id
        });
        let Some(store) = account.types.get_mut(object_type) else {
            continue;
        };
        let record = store.records.entry(object_id).or_default();
        if let (Some(p), Some(v)) = (&id_property, &id) {
            record.insert(p.clone(), json!(v));
        }
        for (name, value) in &properties {
            record.insert(name.clone(), value.clone());
        }
        results.push(json!({"id": object_id.to_string(), "properties": record.clone(), "new": is_new, "archived": false}));
        ledger.records.push(HubSpotRecord {
            operation: operation.to_string(),
            object_type: object_type.to_string(),
            object_id: object_id.to_string(),
            id_property,
            id,
            properties,
            request_index,
        });
    }
    let mut body = json!({"status": "COMPLETE", "results": results, "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"});
    if errors.is_empty() {
        let status = if operation == "create" {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Answer::json(status, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    Answer::json(StatusCode::MULTI_STATUS, body)
}
