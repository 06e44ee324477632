//! The checks of a request body of the Data Manager emulator: its destinations (account,
//! audience, terms) and each audience member's identifiers, digests, address and consent.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Ledger, MAX_IDENTIFIERS, bad, google_error, identifier_values};
use crate::emulators::common::Reply;

/// The audiences of the request's destinations, or the answer refusing them.
pub(super) fn destinations(ledger: &Ledger, body: &Value) -> Result<Vec<String>, Reply> {
    let list = body
        .get("destinations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() || list.len() > 10 {
        return Err(bad(
            "Between 1 and 10 destinations are required.",
            if list.is_empty() {
                "REQUIRED_FIELD_MISSING"
            } else {
                "TOO_MANY_DESTINATIONS"
            },
            "destinations",
        ));
    }
    let mut audiences = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let account = d
            .pointer("/operatingAccount/accountId")
            .and_then(Value::as_str);
        let kind = d
            .pointer("/operatingAccount/accountType")
            .and_then(Value::as_str);
        if kind != Some("GOOGLE_ADS") || account != Some(ledger.account.as_str()) {
            return Err(google_error(
                StatusCode::FORBIDDEN,
                "The caller does not have permission",
                "PERMISSION_DENIED",
                Vec::new(),
                json!({}),
            ));
        }
        let audience = d
            .get("productDestinationId")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !ledger.audiences.contains_key(audience) {
            return Err(bad(
                "User list is not valid.",
                "INVALID_USER_LIST_ID",
                &format!("destinations[{i}].product_destination_id"),
            ));
        }
        audiences.push(audience.to_string());
    }
    Ok(audiences)
}

/// Whether `value` is a SHA-256 digest in the request's encoding, or the reason it is not.
fn digest_problem(value: &str, base64: bool) -> Option<&'static str> {
    if base64 {
        match STANDARD.decode(value) {
            Err(_) => Some("INVALID_BASE64_ENCODING"),
            Ok(bytes) if bytes.len() != 32 => Some("INVALID_SHA256_FORMAT"),
            Ok(_) => None,
        }
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Some("INVALID_HEX_ENCODING")
    } else if value.len() != 64 {
        Some("INVALID_SHA256_FORMAT")
    } else {
        None
    }
}

/// The field violations of member `i`.
pub(super) fn member_violations(
    i: usize,
    member: &Value,
    base64: bool,
    reject: &BTreeSet<String>,
) -> Vec<Value> {
    let at = |path: &str, reason: &str, description: &str| json!({"field": format!("audience_members[{i}]{path}"), "reason": reason, "description": description});
    let ids = member
        .pointer("/userData/userIdentifiers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ids.is_empty() {
        return vec![at(
            ".user_data.user_identifiers",
            "REQUIRED_FIELD_MISSING",
            "At least one user identifier is required.",
        )];
    }
    if ids.len() > MAX_IDENTIFIERS {
        return vec![at(
            ".user_data.user_identifiers",
            "TOO_MANY_USER_IDENTIFIERS",
            "Maximum number of user identifiers allowed per audience member is 10.",
        )];
    }
    let mut problems = Vec::new();
    for (j, id) in ids.iter().enumerate() {
        let path = format!(".user_data.user_identifiers[{j}]");
        let set: Vec<&str> = ["emailAddress", "phoneNumber", "address"]
            .into_iter()
            .filter(|k| id.get(*k).is_some())
            .collect();
        match set.as_slice() {
            ["address"] => {
                let a = &id["address"];
                for (key, field) in [("givenName", "given_name"), ("familyName", "family_name")] {
                    let value = a.get(key).and_then(Value::as_str).unwrap_or("");
                    if let Some(reason) = digest_problem(value, base64) {
                        problems.push(at(
                            &format!("{path}.address.{field}"),
                            reason,
                            "The value is not a SHA-256 digest in the request's encoding.",
                        ));
                    }
                }
                let region = a.get("regionCode").and_then(Value::as_str).unwrap_or("");
                if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
                    problems.push(at(
                        &format!("{path}.address.region_code"),
                        "INVALID_COUNTRY_CODE",
                        "Country code is not valid.",
                    ));
                }
                if a.get("postalCode")
                    .and_then(Value::as_str)
                    .is_none_or(|p| p.trim().is_empty())
                {
                    problems.push(at(
                        &format!("{path}.address.postal_code"),
                        "INVALID_POSTAL_CODE",
                        "Postal code is not valid.",
                    ));
                }
            }
            [key] => {
                let value = id[*key].as_str().unwrap_or("");
                if let Some(reason) = digest_problem(value, base64) {
                    let field = if *key == "emailAddress" {
                        "email_address"
                    } else {
                        "phone_number"
                    };
                    problems.push(at(
                        &format!("{path}.{field}"),
                        reason,
                        "The value is not a SHA-256 digest in the request's encoding.",
                    ));
                }
            }
            _ => problems.push(at(
                &path,
                "INVALID_ARGUMENT",
                "Exactly one identifier must be specified.",
            )),
        }
    }
    if let Some(consent) = member.get("consent") {
        for (key, field) in [
            ("adUserData", "ad_user_data"),
            ("adPersonalization", "ad_personalization"),
        ] {
            if let Some(v) = consent.get(key)
                && !matches!(
                    v.as_str(),
                    Some("CONSENT_GRANTED" | "CONSENT_DENIED" | "CONSENT_STATUS_UNSPECIFIED")
                )
            {
                problems.push(at(
                    &format!(".consent.{field}"),
                    "INVALID_ENUM_VALUE",
                    "Enum value cannot be used.",
                ));
            }
        }
    }
    if problems.is_empty() && identifier_values(member).iter().any(|v| reject.contains(v)) {
        problems.push(at(
            "",
            "INVALID_AUDIENCE_MEMBER",
            "This audience member is not valid.",
        ));
    }
    problems
}
