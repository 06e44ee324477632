//! The request handling of the Sheets emulator: routing, the contract checks in their order,
//! the quota, and the write endpoints; the server, ledger and controls are in [`super`], the
//! grid and A1 ranges in [`super::grid`].

use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::grid::{self, Tab, google_error};
use super::{Ledger, Shared, SheetsRequest, lock};
use crate::emulators::common::{self, Reply};
use crate::emulators::google_oauth::GoogleOAuth;

/// What a request did to the ledger besides its answer.
#[derive(Default)]
pub(super) struct Effect {
    written: Vec<Vec<Value>>,
    deleted: Vec<Vec<Value>>,
}

pub(super) async fn handle(
    State((shared, oauth)): State<(Shared, GoogleOAuth)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ledger = lock(&shared);
    let path = common::percent_decode(uri.path());
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                common::percent_decode(&k.replace('+', " ")),
                common::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut effect = Effect::default();
    let reply = decide(
        &mut ledger,
        &oauth,
        &method,
        &path,
        &query,
        &headers,
        &parsed,
        &mut effect,
    );
    if reply.status.is_success() {
        ledger.written.extend(effect.written.iter().cloned());
        ledger.deleted.extend(effect.deleted.iter().cloned());
    }
    ledger.requests.push(SheetsRequest {
        method: method.to_string(),
        path,
        query,
        body: parsed,
        status: reply.status.as_u16(),
        received_at: SystemTime::now(),
        written: if reply.status.is_success() {
            effect.written
        } else {
            Vec::new()
        },
        deleted: if reply.status.is_success() {
            effect.deleted
        } else {
            Vec::new()
        },
    });
    reply.into_response()
}

/// What a path asks for.
enum Route {
    Get,
    Values(String),
    BatchGet,
    ValuesBatchUpdate,
    Append(String),
    BatchUpdate,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one request's parts and the state"
)]
fn decide(
    ledger: &mut Ledger,
    oauth: &GoogleOAuth,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Value,
    effect: &mut Effect,
) -> Reply {
    if let Some(reply) = ledger
        .faults
        .injected(|status| google_error(status, &format!("injected {status}")).body)
    {
        return reply;
    }
    if let Err(reply) = oauth.check_bearer(headers) {
        return reply;
    }
    let not_found = || google_error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    let Some(rest) = path.strip_prefix("/v4/spreadsheets/") else {
        return not_found();
    };
    let (id, route) = if let Some((id, tail)) = rest.split_once('/') {
        let route = match tail {
            "values:batchGet" => Route::BatchGet,
            "values:batchUpdate" => Route::ValuesBatchUpdate,
            _ => match tail.strip_prefix("values/") {
                Some(range) => match range.strip_suffix(":append") {
                    Some(range) => Route::Append(range.to_string()),
                    None => Route::Values(range.to_string()),
                },
                None => return not_found(),
            },
        };
        (id, route)
    } else if let Some(id) = rest.strip_suffix(":batchUpdate") {
        (id, Route::BatchUpdate)
    } else {
        (rest, Route::Get)
    };
    let read = match (&route, method) {
        (Route::Get | Route::Values(_) | Route::BatchGet, &Method::GET) => true,
        (Route::ValuesBatchUpdate | Route::Append(_) | Route::BatchUpdate, &Method::POST) => false,
        _ => return not_found(),
    };
    if id != ledger.options.spreadsheet_id {
        return not_found();
    }
    if let Some(reply) = over_quota(ledger, read) {
        return reply;
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let formatted = param("valueRenderOption") != Some("UNFORMATTED_VALUE");
    let spreadsheet_id = ledger.options.spreadsheet_id.clone();
    // A write works on a copy that replaces the tabs only when all of it succeeded.
    let mut tabs = ledger.tabs.clone();
    let result = match route {
        Route::Get => Ok(json!({
            "spreadsheetId": spreadsheet_id,
            "sheets": tabs.iter().enumerate().map(|(i, t)| json!({"properties": t.properties(i)})).collect::<Vec<_>>(),
        })),
        Route::Values(range) => {
            grid::locate(&mut tabs, &range).map(|(tab, a1)| grid::read(tab, &a1, formatted))
        }
        Route::BatchGet => query
            .iter()
            .filter(|(k, _)| k == "ranges")
            .map(|(_, range)| {
                grid::locate(&mut tabs, range).map(|(tab, a1)| grid::read(tab, &a1, formatted))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|ranges| json!({"spreadsheetId": spreadsheet_id, "valueRanges": ranges})),
        Route::ValuesBatchUpdate => {
            values_batch_update(&mut tabs, body, effect).map(|mut answer| {
                answer["spreadsheetId"] = json!(spreadsheet_id);
                answer
            })
        }
        Route::Append(range) => input_option(param("valueInputOption")).and_then(|user_entered| {
            let insert = match param("insertDataOption") {
                None | Some("OVERWRITE") => false,
                Some("INSERT_ROWS") => true,
                Some(other) => {
                    return Err(invalid(&format!(
                        "Invalid value at 'insert_data_option' ({other})"
                    )));
                }
            };
            let values = body["values"].as_array().cloned().unwrap_or_default();
            let (tab, a1) = grid::locate(&mut tabs, &range)?;
            let (mut updates, table) = grid::append(tab, &a1, &values, user_entered, insert)?;
            effect
                .written
                .extend(values.iter().filter_map(|r| r.as_array().cloned()));
            updates["spreadsheetId"] = json!(spreadsheet_id);
            Ok(json!({"spreadsheetId": spreadsheet_id, "tableRange": table, "updates": updates}))
        }),
        Route::BatchUpdate => batch_update(&mut tabs, body, effect)
            .map(|replies| json!({"spreadsheetId": spreadsheet_id, "replies": replies})),
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(reply) => return reply,
    };
    if !read {
        let cells: usize = tabs.iter().map(|t| t.row_count * t.column_count).sum();
        if cells > ledger.options.cell_limit {
            *effect = Effect::default();
            return invalid(&format!(
                "This action would increase the number of cells in the workbook above the limit of {} cells.",
                ledger.options.cell_limit
            ));
        }
        ledger.tabs = tabs;
    }
    Reply::json(StatusCode::OK, answer)
}

fn invalid(message: &str) -> Reply {
    google_error(StatusCode::BAD_REQUEST, message)
}

/// `valueInputOption`: `RAW` → false, `USER_ENTERED` → true; missing or other → 400.
fn input_option(value: Option<&str>) -> Result<bool, Reply> {
    match value {
        Some("RAW") => Ok(false),
        Some("USER_ENTERED") => Ok(true),
        None | Some("INPUT_VALUE_OPTION_UNSPECIFIED") => {
            Err(invalid("'valueInputOption' is required but not specified"))
        }
        Some(other) => Err(invalid(&format!(
            "Invalid value at 'value_input_option' ({other})"
        ))),
    }
}

/// The per-minute quota (reads and writes apart); a 429 when this request is over it.
fn over_quota(ledger: &mut Ledger, read: bool) -> Option<Reply> {
    let (start, reads, writes) = &mut ledger.quota;
    if start.elapsed() >= Duration::from_secs(60) {
        *start = Instant::now();
        *reads = 0;
        *writes = 0;
    }
    let (count, metric, limit) = if read {
        (reads, "Read requests", "ReadRequestsPerMinutePerUser")
    } else {
        (writes, "Write requests", "WriteRequestsPerMinutePerUser")
    };
    if *count >= ledger.options.requests_per_minute {
        let message = format!(
            "Quota exceeded for quota metric '{metric}' and limit '{metric} per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:100000000001'."
        );
        let mut reply = google_error(StatusCode::TOO_MANY_REQUESTS, &message);
        reply.body["error"]["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "service": "sheets.googleapis.com",
                "quota_metric": if read { "sheets.googleapis.com/read_requests" } else { "sheets.googleapis.com/write_requests" },
                "quota_limit": limit,
                "consumer": "projects/100000000001",
            },
        }]);
        return Some(reply);
    }
    *count += 1;
    None
}

/// `values:batchUpdate`.
fn values_batch_update(
    tabs: &mut [Tab],
    body: &Value,
    effect: &mut Effect,
) -> Result<Value, Reply> {
    let user_entered = input_option(body["valueInputOption"].as_str())?;
    let data = body["data"].as_array().cloned().unwrap_or_default();
    let mut responses = Vec::new();
    let (mut rows, mut columns, mut cells) = (0, 0, 0);
    for range in &data {
        let text = range["range"].as_str().unwrap_or("");
        if range.get("majorDimension").is_some_and(|d| d != "ROWS") {
            return Err(invalid("this emulator takes majorDimension ROWS only"));
        }
        let values = range["values"].as_array().cloned().unwrap_or_default();
        let (tab, a1) = grid::locate(tabs, text)?;
        let (updated, r, c, n) = grid::write(tab, &a1, &values, user_entered)?;
        let first_row = a1.r0.unwrap_or(0);
        effect.written.extend(
            values
                .iter()
                .enumerate()
                .filter(|(i, _)| first_row + i > 0)
                .filter_map(|(_, row)| row.as_array().cloned()),
        );
        responses.push(json!({"updatedRange": updated, "updatedRows": r, "updatedColumns": c, "updatedCells": n}));
        (rows, columns, cells) = (rows + r, columns.max(c), cells + n);
    }
    Ok(json!({
        "totalUpdatedRows": rows,
        "totalUpdatedColumns": columns,
        "totalUpdatedCells": cells,
        "totalUpdatedSheets": usize::from(!data.is_empty()),
        "responses": responses,
    }))
}

/// `spreadsheets:batchUpdate` with `deleteDimension` requests, applied in order.
fn batch_update(tabs: &mut [Tab], body: &Value, effect: &mut Effect) -> Result<Vec<Value>, Reply> {
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() {
        return Err(invalid("Must specify at least one request."));
    }
    let mut replies = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let Some(range) = request.get("deleteDimension").map(|d| &d["range"]) else {
            return Err(invalid(&format!(
                "Invalid requests[{index}]: this emulator takes deleteDimension requests only"
            )));
        };
        let sheet_id = range["sheetId"].as_i64().unwrap_or(0);
        if range["dimension"] != "ROWS" {
            return Err(invalid(&format!(
                "Invalid requests[{index}].deleteDimension: this emulator deletes ROWS only"
            )));
        }
        let Some(tab) = tabs.iter_mut().find(|t| t.sheet_id == sheet_id) else {
            return Err(invalid(&format!(
                "Invalid requests[{index}].deleteDimension: No grid with id: {sheet_id}"
            )));
        };
        let index_of = |name: &str| {
            range[name]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0)
        };
        let removed = grid::delete_rows(tab, index_of("startIndex"), index_of("endIndex"), index)?;
        effect.deleted.extend(removed);
        replies.push(json!({}));
    }
    Ok(replies)
}
