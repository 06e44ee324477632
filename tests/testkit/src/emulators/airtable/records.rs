//! The records endpoints of the Airtable emulator: `PATCH` (update/upsert), `GET` (list with
//! the `filterByFormula` subset) and `DELETE`, applied to the ledger whole or not at all.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{Ledger, MAX_RECORDS, Row, error, text};
use crate::emulators::common::Reply;

fn invalid(kind: &str, message: impl Into<String>) -> Reply {
    error(StatusCode::UNPROCESSABLE_ENTITY, kind, &message.into())
}

pub(super) fn write(ledger: &mut Ledger, table: &str, body: &Value) -> Result<Reply, Reply> {
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            invalid(
                "INVALID_REQUEST_MISSING_FIELDS",
                "Could not find field \"records\" in the request body",
            )
        })?;
    if records.is_empty() || records.len() > MAX_RECORDS {
        return Err(invalid(
            "INVALID_RECORDS",
            format!(
                "You must provide an array of up to 10 record objects (got {})",
                records.len()
            ),
        ));
    }
    let merge: Option<Vec<String>> = match body.get("performUpsert") {
        None => None,
        Some(upsert) => {
            let fields: Vec<String> = upsert
                .get("fieldsToMergeOn")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if fields.is_empty() || fields.len() > 3 {
                return Err(invalid(
                    "INVALID_REQUEST_UNKNOWN",
                    "performUpsert.fieldsToMergeOn must name 1 to 3 fields",
                ));
            }
            Some(fields)
        }
    };
    // Validate everything first: a request is applied whole.
    let rows = ledger.tables.get(table).cloned().unwrap_or_default();
    let mut plan: Vec<(Option<usize>, Map<String, Value>)> = Vec::new();
    for record in records {
        let fields = record
            .get("fields")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| invalid("INVALID_RECORDS", "Each record needs a \"fields\" object"))?;
        let target = if let Some(id) = record.get("id").and_then(Value::as_str) {
            let at = rows.iter().position(|r| r.id == id).ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &format!("Record {id} not found"),
                )
            })?;
            Some(at)
        } else if let Some(merge) = &merge {
            let mut values = Vec::new();
            for name in merge {
                let value = fields.get(name).filter(|v| !v.is_null()).ok_or_else(|| {
                    invalid(
                        "INVALID_VALUE_FOR_COLUMN",
                        format!("Field \"{name}\" is used in fieldsToMergeOn, so every record needs a value for it"),
                    )
                })?;
                values.push(value.clone());
            }
            if values
                .first()
                .is_some_and(|v| ledger.reject_keys.contains(&text(v)))
            {
                return Err(invalid(
                    "INVALID_VALUE_FOR_COLUMN",
                    format!("Field \"{}\" cannot accept the provided value", merge[0]),
                ));
            }
            let found: Vec<usize> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    merge
                        .iter()
                        .zip(&values)
                        .all(|(n, v)| r.fields.get(n) == Some(v))
                })
                .map(|(i, _)| i)
                .collect();
            match found.as_slice() {
                [] => None,
                [one] => Some(*one),
                _ => {
                    return Err(invalid(
                        "INVALID_VALUE_FOR_COLUMN",
                        "Cannot update more than one record with the same fieldsToMergeOn values",
                    ));
                }
            }
        } else {
            return Err(invalid(
                "INVALID_RECORDS",
                "Each record needs an \"id\" without performUpsert",
            ));
        };
        plan.push((target, fields));
    }
    let mut answered = Vec::new();
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    for (target, fields) in plan {
        let row = match target {
            Some(at) => {
                let table_rows = ledger.tables.entry(table.to_string()).or_default();
                let row = &mut table_rows[at];
                row.fields.extend(fields);
                updated.push(json!(row.id));
                row.clone()
            }
            None => {
                ledger.next_id += 1;
                let row = Row {
                    id: format!("rec{:014}", ledger.next_id),
                    fields,
                };
                created.push(json!(row.id));
                ledger
                    .tables
                    .entry(table.to_string())
                    .or_default()
                    .push(row.clone());
                row
            }
        };
        answered.push(
            json!({"id": row.id, "createdTime": "2026-01-01T00:00:00.000Z", "fields": row.fields}),
        );
        ledger.written.push(row);
    }
    let mut answer = json!({"records": answered});
    if merge.is_some() {
        answer["createdRecords"] = Value::Array(created);
        answer["updatedRecords"] = Value::Array(updated);
    }
    Ok(Reply::json(StatusCode::OK, answer))
}

/// One term of the formula subset: `{Field}=<literal>`.
fn term(text: &str) -> Option<(String, Value)> {
    let rest = text.trim().strip_prefix('{')?;
    let (field, rest) = rest.split_once('}')?;
    let literal = rest.trim().strip_prefix('=')?.trim();
    let value = if let Some(quoted) = literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Value::String(quoted.replace("\\\"", "\"").replace("\\\\", "\\"))
    } else {
        serde_json::from_str::<serde_json::Number>(literal)
            .ok()
            .map(Value::Number)?
    };
    Some((field.to_string(), value))
}

/// Splits `a,b,"c,d"` at top-level commas (outside double quotes).
fn split_terms(text: &str) -> Vec<String> {
    let (mut terms, mut current, mut quoted, mut escaped) =
        (Vec::new(), String::new(), false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    terms
}

/// Whether a cell matches a formula literal (`{n}=42` also matches the text "42").
fn cell_matches(cell: Option<&Value>, literal: &Value) -> bool {
    cell.is_some_and(|c| c == literal || text(c) == text(literal))
}

pub(super) fn list(
    ledger: &Ledger,
    table: &str,
    query: &[(String, String)],
) -> Result<Reply, Reply> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let page_size: usize = param("pageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if page_size == 0 || page_size > 100 {
        return Err(invalid("INVALID_PAGE_SIZE", "pageSize must be 1 to 100"));
    }
    let max: usize = param("maxRecords")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let terms: Option<Vec<(String, Value)>> = match param("filterByFormula") {
        None => None,
        Some(formula) => {
            let inner = formula
                .trim()
                .strip_prefix("OR(")
                .and_then(|f| f.strip_suffix(')'))
                .map_or_else(|| vec![formula.to_string()], split_terms);
            let parsed: Option<Vec<_>> = inner.iter().map(|t| term(t)).collect();
            Some(parsed.ok_or_else(|| {
                invalid(
                    "INVALID_FILTER_BY_FORMULA",
                    format!("The formula for filtering records is invalid: {formula}"),
                )
            })?)
        }
    };
    let wanted: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "fields[]")
        .map(|(_, v)| v.clone())
        .collect();
    let records: Vec<Value> = ledger
        .tables
        .get(table)
        .into_iter()
        .flatten()
        .filter(|row| {
            terms.as_ref().is_none_or(|terms| {
                terms
                    .iter()
                    .any(|(field, literal)| cell_matches(row.fields.get(field), literal))
            })
        })
        .take(max.min(page_size))
        .map(|row| {
            let fields: Map<String, Value> = row
                .fields
                .iter()
                .filter(|(k, _)| wanted.is_empty() || wanted.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            json!({"id": row.id, "createdTime": "2026-01-01T00:00:00.000Z", "fields": fields})
        })
        .collect();
    Ok(Reply::json(StatusCode::OK, json!({"records": records})))
}

pub(super) fn delete(ledger: &mut Ledger, table: &str, query: &[(String, String)]) -> Reply {
    let ids: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "records[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() || ids.len() > MAX_RECORDS {
        return invalid("INVALID_RECORDS", "Provide 1 to 10 records[] ids to delete");
    }
    let rows = ledger.tables.entry(table.to_string()).or_default();
    if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|r| r.id == **id)) {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Record {missing} not found"),
        );
    }
    let mut gone = Vec::new();
    rows.retain(|r| {
        if ids.contains(&r.id.as_str()) {
            gone.push(r.clone());
            false
        } else {
            true
        }
    });
    let answer: Vec<Value> = gone
        .iter()
        .map(|r| json!({"id": r.id, "deleted": true}))
        .collect();
    ledger.deleted.extend(gone);
    Reply::json(StatusCode::OK, json!({"records": answer}))
}
