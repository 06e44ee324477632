//! The token endpoint and REST resources of the Salesforce emulator; the server, controls and
//! ledger are in [`super::salesforce`].

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Map, Value, json};

use super::salesforce::{Answer, Ledger, MAX_RECORDS, SalesforceRecord, api_error};

/// Decodes `application/x-www-form-urlencoded`.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Whether `assertion` is a JWT signed by `pem`'s key for this client, user and audience.
fn assertion_valid(pem: &str, assertion: &str, client_id: &str, username: &str, aud: &str) -> bool {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let Some(key) = STANDARD
        .decode(body.as_bytes())
        .ok()
        .and_then(|der| RsaKeyPair::from_pkcs8(&der).ok())
    else {
        return false;
    };
    let mut parts = assertion.rsplitn(2, '.');
    let (Some(signature), Some(signed)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public().as_ref());
    if public.verify(signed.as_bytes(), &signature).is_err() {
        return false;
    }
    let Some(claims) = signed
        .split('.')
        .nth(1)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|c| serde_json::from_slice::<Value>(&c).ok())
    else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    claims["iss"] == client_id
        && claims["sub"] == username
        && claims["aud"] == aud
        && claims["exp"]
            .as_u64()
            .is_some_and(|exp| exp > now && exp <= now + 300)
}

/// `POST /services/oauth2/token`.
pub(super) fn token(ledger: &mut Ledger, body: &[u8]) -> Answer {
    let form = form(body);
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let options = &ledger.options;
    let granted = match get("grant_type") {
        Some("client_credentials") => {
            get("client_id") == Some(options.client_id.as_str())
                && get("client_secret") == Some(options.client_secret.as_str())
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            match (&options.jwt_key_pem, get("assertion")) {
                (Some(pem), Some(assertion)) => assertion_valid(
                    pem,
                    assertion,
                    &options.client_id,
                    &options.username,
                    &ledger.base_url,
                ),
                _ => false,
            }
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"}),
            );
        }
    };
    if !granted {
        let (error, description) = if get("grant_type") == Some("client_credentials") {
            ("invalid_client", "invalid client credentials")
        } else {
            ("invalid_grant", "invalid assertion")
        };
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": error, "error_description": description}),
        );
    }
    ledger.issued += 1;
    let access_token = format!("00D000000000001!token{}", ledger.issued);
    ledger.tokens.insert(access_token.clone());
    (
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "instance_url": ledger.base_url,
            "id": format!("{}/id/00D000000000001/005000000000001", ledger.base_url),
            "token_type": "Bearer",
            "issued_at": "1700000000000",
            "signature": "c2lnbmF0dXJl",
        }),
    )
}

fn field_known(ledger: &Ledger, name: &str) -> bool {
    name.eq_ignore_ascii_case("Id")
        || ledger
            .options
            .fields
            .iter()
            .any(|(f, _)| f.eq_ignore_ascii_case(name))
}

fn find_by_external(ledger: &Ledger, value: &str) -> Option<String> {
    let field = &ledger.options.external_id_field;
    ledger
        .store
        .iter()
        .find(|(_, f)| f.get(field).and_then(Value::as_str) == Some(value))
        .map(|(id, _)| id.clone())
}

/// Everything under `/services/data/vNN.N`.
pub(super) fn data(
    ledger: &mut Ledger,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    request_index: usize,
) -> Answer {
    let not_found = || {
        api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    };
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/services/data/v") else {
        return not_found();
    };
    let Some((version, rest)) = rest.split_once('/') else {
        return not_found();
    };
    if version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_none_or(|m| m < 46)
    {
        return not_found();
    }
    let object = ledger.options.object.clone();
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["sobjects", o, "describe"]) if *o == object => {
            let mut fields = vec![
                json!({"name": "Id", "label": "Record ID", "type": "id", "createable": false, "updateable": false, "externalId": false}),
            ];
            for (name, kind) in &ledger.options.fields {
                let external = *name == ledger.options.external_id_field;
                fields.push(json!({"name": name, "label": name, "type": kind, "createable": true, "updateable": true, "externalId": external, "unique": external}));
            }
            (StatusCode::OK, json!({"name": object, "fields": fields}))
        }
        (&Method::GET, ["query"]) => query(ledger, uri),
        (_, ["composite", "sobjects", rest @ ..]) => {
            collection(ledger, method, uri, rest, body, request_index)
        }
        _ => not_found(),
    }
}

/// `GET .../query?q=SELECT Id, F FROM O WHERE F IN ('a','b')`.
fn query(ledger: &Ledger, uri: &Uri) -> Answer {
    let q = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("q=")))
        .map(|q| form(format!("q={q}").as_bytes()).remove(0).1)
        .unwrap_or_default();
    let field = &ledger.options.external_id_field;
    let prefix = format!(
        "SELECT Id, {field} FROM {} WHERE {field} IN (",
        ledger.options.object
    );
    let Some(list) = q.strip_prefix(&prefix).and_then(|r| r.strip_suffix(')')) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            &format!("unexpected query: {q}"),
        );
    };
    // Values: 'a','b' with \' and \\ escapes.
    let mut values = Vec::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '\'' => break,
                c => value.push(c),
            }
        }
        values.push(value);
    }
    let records: Vec<Value> = values
        .iter()
        .filter_map(|v| find_by_external(ledger, v).map(|id| (id, v)))
        .map(|(id, v)| json!({"attributes": {"type": ledger.options.object, "url": format!("/services/data/v62.0/sobjects/{}/{id}", ledger.options.object)}, "Id": id, field.clone(): v}))
        .collect();
    (
        StatusCode::OK,
        json!({"totalSize": records.len(), "done": true, "records": records}),
    )
}

fn result_error(code: &str, message: &str) -> Value {
    json!({"success": false, "errors": [{"statusCode": code, "message": message, "fields": []}]})
}

/// The sObject Collections resource.
fn collection(
    ledger: &mut Ledger,
    method: &Method,
    uri: &Uri,
    rest: &[&str],
    body: &[u8],
    request_index: usize,
) -> Answer {
    let object = ledger.options.object.clone();
    let external = ledger.options.external_id_field.clone();
    if method == Method::DELETE && rest.is_empty() {
        let query = uri.query().unwrap_or_default();
        let ids: Vec<String> = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("ids="))
            .map(|ids| {
                ids.split(',')
                    .map(|s| form(format!("x={s}").as_bytes()).remove(0).1)
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() > MAX_RECORDS {
            return api_error(
                StatusCode::BAD_REQUEST,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            );
        }
        let results: Vec<Value> = ids
            .iter()
            .map(|id| match ledger.store.remove(id) {
                Some(fields) => {
                    ledger.deleted.insert(id.clone());
                    ledger.records.push(SalesforceRecord {
                        operation: "delete".into(),
                        id: id.clone(),
                        external_id: fields
                            .get(&external)
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        fields,
                        request_index,
                    });
                    json!({"id": id, "success": true, "errors": []})
                }
                None if ledger.deleted.contains(id) => {
                    result_error("ENTITY_IS_DELETED", "entity is deleted")
                }
                None => result_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"),
            })
            .collect();
        return (StatusCode::OK, Value::Array(results));
    }
    let operation = match (method, rest) {
        (&Method::PATCH, [o, f]) if *o == object && f.eq_ignore_ascii_case(&external) => "upsert",
        (&Method::POST, []) => "create",
        (&Method::PATCH, []) => "update",
        _ => {
            return api_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            );
        }
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character",
        );
    };
    let Some(records) = parsed["records"].as_array() else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "records is required",
        );
    };
    if records.len() > MAX_RECORDS {
        return api_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let mut prepared = Vec::new();
    for record in records {
        let Some(fields) = record.as_object() else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "a record is not an object",
            );
        };
        if fields.get("attributes").and_then(|a| a["type"].as_str()) != Some(object.as_str()) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                "Each record must have attributes with the type of the request's object",
            );
        }
        let mut values = Map::new();
        for (name, value) in fields {
            if name == "attributes" || (name == "id" && operation == "update") {
                continue;
            }
            if !field_known(ledger, name) || name.eq_ignore_ascii_case("Id") {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{name}' on sobject of type {object}"),
                );
            }
            values.insert(name.clone(), value.clone());
        }
        prepared.push((
            fields.get("id").and_then(Value::as_str).map(str::to_string),
            values,
        ));
    }
    let all_or_none = parsed["allOrNone"].as_bool().unwrap_or(false);
    let mut results = Vec::new();
    let mut writes = Vec::new();
    for (id, values) in prepared {
        let ext = values.get(&external).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let existing = match (operation, &id) {
            ("update", Some(id)) => Some(id.clone()),
            _ => ext.as_deref().and_then(|e| find_by_external(ledger, e)),
        };
        let refused = match (operation, &ext, &existing) {
            (_, Some(e), _) if ledger.reject_keys.contains(e) => Some((
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "rejected by a validation rule",
            )),
            ("upsert", None, _) => Some(("MISSING_ARGUMENT", "External ID field value is missing")),
            ("create", _, Some(_)) => Some((
                "DUPLICATE_VALUE",
                "duplicate value found: the external id already exists",
            )),
            ("update", _, None) => Some(("MISSING_ARGUMENT", "Id not specified in an update call")),
            ("update", _, Some(id)) if !ledger.store.contains_key(id) => {
                Some(("ENTITY_IS_DELETED", "entity is deleted"))
            }
            _ => None,
        };
        if let Some((code, message)) = refused {
            results.push(result_error(code, message));
            continue;
        }
        let (record_id, created) = match existing {
            Some(id) => (id, false),
            None => {
                ledger.next_id += 1;
                (format!("003{:015}", ledger.next_id), true)
            }
        };
        let mut result = json!({"id": record_id, "success": true, "errors": []});
        if operation == "upsert" {
            result["created"] = json!(created);
        }
        results.push(result);
        writes.push((record_id, ext, values));
    }
    if all_or_none && results.iter().any(|r| r["success"] == false) {
        let rolled: Vec<Value> = results
            .iter()
            .map(|r| if r["success"] == true { result_error("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header") } else { r.clone() })
            .collect();
        return (StatusCode::OK, Value::Array(rolled));
    }
    for (id, ext, values) in writes {
        let stored = ledger.store.entry(id.clone()).or_default();
        for (k, v) in &values {
            stored.insert(k.clone(), v.clone());
        }
        let ext = ext.or_else(|| {
            stored
                .get(&external)
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        ledger.records.push(SalesforceRecord {
            operation: operation.into(),
            id,
            external_id: ext,
            fields: values,
            request_index,
        });
    }
    (StatusCode::OK, Value::Array(results))
}
