//! HubSpot actions: their specs, and the encoding of a batch into the inputs of the CRM v3
//! batch endpoints.

use retl_engine::destination::spec::{ActionKind, FieldType};
use retl_engine::destination::{ActionSpec, FieldSpec, Payload, RecordOutcome, SyncMode};
use serde_json::{Map, Value, json};

/// The field holding the value of the object's id property.
pub(crate) const ID_FIELD: &str = "id";

/// The modes of the upsert actions: batch/upsert, batch/update, batch/create.
const WRITE_MODES: &[SyncMode] = &[SyncMode::Upsert, SyncMode::Update, SyncMode::Create];

const fn field(name: &'static str, field_type: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type,
        required: false,
        description,
        children: &[],
    }
}

static CONTACT_FIELDS: [FieldSpec; 8] = [
    field(
        ID_FIELD,
        FieldType::String,
        "Value of the contact id property (contact_id_property, default 'email') that matches the contact; when not mapped, the record's key.",
    ),
    field("email", FieldType::String, "Email"),
    field("firstname", FieldType::String, "First name"),
    field("lastname", FieldType::String, "Last name"),
    field("phone", FieldType::String, "Phone number"),
    field("company", FieldType::String, "Company name"),
    field("website", FieldType::String, "Website URL"),
    field(
        "lifecyclestage",
        FieldType::String,
        "Lifecycle stage (internal value, e.g. 'lead', 'customer')",
    ),
];

static COMPANY_FIELDS: [FieldSpec; 7] = [
    field(
        ID_FIELD,
        FieldType::String,
        "Value of the company id property (company_id_property) that matches the company; when not mapped, the record's key.",
    ),
    field("name", FieldType::String, "Company name"),
    field("domain", FieldType::String, "Company domain name"),
    field("industry", FieldType::String, "Industry (internal value)"),
    field("phone", FieldType::String, "Phone number"),
    field("city", FieldType::String, "City"),
    field("country", FieldType::String, "Country/Region"),
];

/// The actions of the HubSpot destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 4] = [
    ActionSpec {
        name: "upsert_contact",
        display_name: "Upsert Contact",
        description: "Creates or updates contacts matched by the contact id property (batch upsert, update or create by mode); every other field is a contact property (custom properties are listed by `retl destination fields`).",
        kind: ActionKind::Upsert,
        fields: &CONTACT_FIELDS,
        open_fields: true,
        sync_modes: WRITE_MODES,
    },
    ActionSpec {
        name: "upsert_company",
        display_name: "Upsert Company",
        description: "Creates or updates companies matched by the company id property (batch upsert, update or create by mode); every other field is a company property.",
        kind: ActionKind::Upsert,
        fields: &COMPANY_FIELDS,
        open_fields: true,
        sync_modes: WRITE_MODES,
    },
    ActionSpec {
        name: "delete_contact",
        display_name: "Delete Contact",
        description: "Archives the contacts whose id property value is the record's key; a contact that is already gone counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete_company",
        display_name: "Delete Company",
        description: "Archives the companies whose id property value is the record's key; a company that is already gone counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A CRM object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectType {
    /// `contacts`.
    Contacts,
    /// `companies`.
    Companies,
}

impl ObjectType {
    /// The `{objectType}` of the API's paths.
    pub(crate) fn path(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
        }
    }
}

/// A HubSpot action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HubSpotAction {
    /// `upsert_contact`, `upsert_company`.
    Upsert(ObjectType),
    /// `delete_contact`, `delete_company`.
    Delete(ObjectType),
}

impl HubSpotAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_contact" => Some(HubSpotAction::Upsert(ObjectType::Contacts)),
            "upsert_company" => Some(HubSpotAction::Upsert(ObjectType::Companies)),
            "delete_contact" => Some(HubSpotAction::Delete(ObjectType::Contacts)),
            "delete_company" => Some(HubSpotAction::Delete(ObjectType::Companies)),
            _ => None,
        }
    }

    /// The object type it writes.
    pub(crate) fn object_type(self) -> ObjectType {
        match self {
            HubSpotAction::Upsert(t) | HubSpotAction::Delete(t) => t,
        }
    }
}

/// A batch encoded for one request: the body, which record each input came from, and the
/// outcome of the records refused before sending.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The request body (`{"inputs": [...]}`).
    pub(crate) body: Value,
    /// For each input, in order: the batch index of its record and its id property value.
    pub(crate) sent: Vec<(usize, String)>,
    /// One slot per record of the batch: `Some` for a record refused before sending.
    pub(crate) outcomes: Vec<Option<RecordOutcome>>,
}

/// The endpoint of a write mode: `upsert`, `update` or `create` (the last segment of
/// `/crm/v3/objects/{objectType}/batch/...`).
pub(crate) fn write_endpoint(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Update => "update",
        SyncMode::Create => "create",
        _ => "upsert",
    }
}

/// Encodes added/updated records as the inputs of batch/upsert, batch/update (both
/// `{"idProperty", "id", "properties", "objectWriteTraceId"}`) or batch/create
/// (`{"properties": {..., <idProperty>: id}, "objectWriteTraceId"}`). `objectWriteTraceId` is
/// the input's position, which HubSpot echoes in the `context` of a per-record error.
pub(crate) fn encode_write(mode: SyncMode, id_property: &str, batch: &[Payload]) -> Encoded {
    let mut inputs = Vec::with_capacity(batch.len());
    let mut sent = Vec::with_capacity(batch.len());
    let mut outcomes = vec![None; batch.len()];
    for (index, payload) in batch.iter().enumerate() {
        let id = match payload.fields.get(ID_FIELD) {
            Some(value) => id_value(value, &format!("field '{ID_FIELD}'")),
            None => id_value(&payload.key, "the record's key"),
        };
        let properties = id.and_then(|id| properties(payload).map(|p| (id, p)));
        let (id, mut properties) = match properties {
            Ok(ok) => ok,
            Err(reason) => {
                outcomes[index] = Some(RecordOutcome::Rejected { reason });
                continue;
            }
        };
        let trace = inputs.len().to_string();
        let input = if mode == SyncMode::Create {
            properties.insert(id_property.to_string(), Value::String(id.clone()));
            json!({"properties": properties, "objectWriteTraceId": trace})
        } else {
            json!({"idProperty": id_property, "id": id, "properties": properties, "objectWriteTraceId": trace})
        };
        inputs.push(input);
        sent.push((index, id));
    }
    Encoded {
        body: json!({ "inputs": inputs }),
        sent,
        outcomes,
    }
}

/// The id property values of deleted records (their keys), for batch/read; records whose key
/// is not a string or number are refused.
pub(crate) fn encode_lookup(id_property: &str, batch: &[Payload]) -> Encoded {
    let mut inputs = Vec::with_capacity(batch.len());
    let mut sent = Vec::with_capacity(batch.len());
    let mut outcomes = vec![None; batch.len()];
    for (index, payload) in batch.iter().enumerate() {
        match id_value(&payload.key, "the record's key") {
            Ok(id) => {
                inputs.push(json!({ "id": id }));
                sent.push((index, id));
            }
            Err(reason) => outcomes[index] = Some(RecordOutcome::Rejected { reason }),
        }
    }
    Encoded {
        body: json!({"idProperty": id_property, "inputs": inputs, "properties": [id_property]}),
        sent,
        outcomes,
    }
}

/// The body of batch/archive for these record ids.
pub(crate) fn encode_archive(object_ids: &[String]) -> Value {
    let inputs: Vec<Value> = object_ids.iter().map(|id| json!({ "id": id })).collect();
    json!({ "inputs": inputs })
}

/// An id property value: a non-empty string, or a number as its text.
fn id_value(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "{what} must be a non-empty string or a number to match a HubSpot record by its id property, not {}",
            describe(other)
        )),
    }
}

/// Every field but `id`, as HubSpot property values.
fn properties(payload: &Payload) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (name, value) in payload.fields.iter() {
        if name == ID_FIELD {
            continue;
        }
        map.insert(
            name.to_string(),
            Value::String(property_value(name, value)?),
        );
    }
    Ok(map)
}

/// A value as HubSpot's text form: strings as they are, numbers and booleans as their text,
/// `null` as `""` (which clears the property), an array of scalars as `a;b` (the form of
/// multiple-checkbox properties). Objects are refused: HubSpot properties are flat.
pub(crate) fn property_value(name: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Array(_) | Value::Object(_) | Value::Null => {
                        return Err(format!(
                            "property '{name}' is an array holding {}; HubSpot takes an array of strings or numbers (sent as 'a;b')",
                            describe(item)
                        ));
                    }
                    scalar => parts.push(property_value(name, scalar)?),
                }
            }
            Ok(parts.join(";"))
        }
        Value::Object(_) => Err(format!(
            "property '{name}' is an object; HubSpot properties are flat: map each part to its own property"
        )),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.trim().is_empty() => "an empty string".to_string(),
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}
