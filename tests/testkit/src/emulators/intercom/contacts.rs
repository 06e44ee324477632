//! The contact endpoints of the Intercom emulator: the checks of a create or update body,
//! create, update and archive, applied to the ledger.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ATTRIBUTES, IntercomContact, IntercomWrite, Ledger, error};
use crate::emulators::common::Reply;

/// The checked attributes of a create or update body: `(role, external_id, standard,
/// custom)`, or the `400` answer.
#[allow(clippy::type_complexity)]
fn check(
    ledger: &Ledger,
    body: &Map<String, Value>,
) -> Result<
    (
        Option<String>,
        Option<String>,
        Map<String, Value>,
        Map<String, Value>,
    ),
    Reply,
> {
    let invalid = |message: String| {
        Err(error(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            &message,
        ))
    };
    let mut standard = Map::new();
    let mut custom = Map::new();
    let mut role = None;
    let mut external_id = None;
    for (name, value) in body {
        match name.as_str() {
            "role" => match value.as_str() {
                Some(r @ ("user" | "lead")) => role = Some(r.to_string()),
                _ => return invalid(format!("role must be 'user' or 'lead', not {value}")),
            },
            "external_id" => match value {
                Value::String(s) if !s.is_empty() => external_id = Some(s.clone()),
                Value::Null => {}
                other => return invalid(format!("external_id must be a string, not {other}")),
            },
            "signed_up_at" | "last_seen_at" if !(value.is_i64() || value.is_null()) => {
                return invalid(format!(
                    "{name} must be a UNIX timestamp in seconds, not {value}"
                ));
            }
            "owner_id" if !(value.is_i64() || value.is_null()) => {
                return invalid(format!("owner_id must be an integer, not {value}"));
            }
            "unsubscribed_from_emails" if !(value.is_boolean() || value.is_null()) => {
                return invalid(format!(
                    "unsubscribed_from_emails must be a boolean, not {value}"
                ));
            }
            "custom_attributes" => {
                let Some(map) = value.as_object() else {
                    return invalid("custom_attributes must be an object".to_string());
                };
                for (k, v) in map {
                    if v.is_object() || v.is_array() {
                        return invalid(format!(
                            "custom attribute '{k}' must be a string, number, boolean or null"
                        ));
                    }
                    custom.insert(k.clone(), v.clone());
                }
            }
            other if !ATTRIBUTES.contains(&other) => {
                return invalid(format!("'{other}' is not a contact attribute"));
            }
            other => {
                standard.insert(other.to_string(), value.clone());
            }
        }
    }
    if let Some(id) = &external_id
        && ledger.reject_keys.contains(id)
    {
        return invalid(format!("'{id}' was rejected (emulator reject_keys)"));
    }
    Ok((role, external_id, standard, custom))
}

fn conflict(id: &str) -> Reply {
    error(
        StatusCode::CONFLICT,
        "conflict",
        &format!("A contact matching those details already exists with id={id}"),
    )
}

pub(super) fn create(ledger: &mut Ledger, body: &Map<String, Value>) -> Reply {
    let (role, external_id, standard, custom) = match check(ledger, body) {
        Ok(checked) => checked,
        Err(reply) => return reply,
    };
    let role = role.unwrap_or_else(|| "user".to_string());
    if role == "user" && external_id.is_none() && standard.get("email").is_none_or(Value::is_null) {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "A user requires an external_id or an email",
        );
    }
    if let Some(existing) = external_id.as_ref().and_then(|e| {
        ledger
            .contacts
            .values()
            .find(|c| c.external_id.as_ref() == Some(e))
    }) {
        return conflict(&existing.id);
    }
    let id = ledger.assign_id(external_id.clone());
    let contact = IntercomContact {
        id: id.clone(),
        role,
        external_id: external_id.clone(),
        attributes: standard,
        custom_attributes: custom,
        archived: false,
    };
    let answer = contact.to_json();
    ledger.contacts.insert(id.clone(), contact);
    ledger.writes.push(IntercomWrite {
        operation: "create",
        id,
        external_id,
        body: Value::Object(body.clone()),
    });
    Reply::json(StatusCode::OK, answer)
}

pub(super) fn update(ledger: &mut Ledger, id: &str, body: &Map<String, Value>) -> Reply {
    let (role, external_id, standard, custom) = match check(ledger, body) {
        Ok(checked) => checked,
        Err(reply) => return reply,
    };
    let Some(current) = ledger.contacts.get(id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "User Not Found");
    };
    if let Some(e) = &current.external_id
        && ledger.reject_keys.contains(e)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            &format!("'{e}' was rejected (emulator reject_keys)"),
        );
    }
    if let Some(other) = external_id.as_ref().and_then(|e| {
        ledger
            .contacts
            .values()
            .find(|c| c.id != id && c.external_id.as_ref() == Some(e))
    }) {
        return conflict(&other.id);
    }
    let Some(contact) = ledger.contacts.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "User Not Found");
    };
    if let Some(role) = role {
        contact.role = role;
    }
    if external_id.is_some() {
        contact.external_id.clone_from(&external_id);
    }
    contact.attributes.extend(standard);
    contact.custom_attributes.extend(custom);
    let answer = contact.to_json();
    let external_id = contact.external_id.clone();
    ledger
        .external_ids
        .insert(id.to_string(), external_id.clone());
    ledger.writes.push(IntercomWrite {
        operation: "update",
        id: id.to_string(),
        external_id,
        body: Value::Object(body.clone()),
    });
    Reply::json(StatusCode::OK, answer)
}

pub(super) fn archive(ledger: &mut Ledger, id: &str) -> Reply {
    let Some(contact) = ledger.contacts.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "User Not Found");
    };
    contact.archived = true;
    let external_id = contact.external_id.clone();
    ledger.writes.push(IntercomWrite {
        operation: "archive",
        id: id.to_string(),
        external_id: external_id.clone(),
        body: Value::Null,
    });
    Reply::json(
        StatusCode::OK,
        json!({"id": id, "external_id": external_id, "type": "contact", "archived": true}),
    )
}
