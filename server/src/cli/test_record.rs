//! Printing the result of `retl mapping test` (a test record).

use retl_proto::v1;

use crate::cli::output::{Output, outln, print_json};

/// A JSON text field of a response, parsed back for printing (as text when it is not JSON).
fn json_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// Prints the result of a test record: the record, each request and answer, the verdict.
pub fn print_test_record(out: Output, r: &v1::SendTestRecordResponse) {
    let exchanges: Vec<serde_json::Value> = r
        .exchanges
        .iter()
        .map(|e| {
            serde_json::json!({
                "request": e.request,
                "request_body": json_text(&e.request_body_json),
                "status": (e.status != 0).then_some(e.status),
                "response_body": json_text(&e.response_body_json),
            })
        })
        .collect();
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match out {
        Output::Json => print_json(&serde_json::json!({
            "accepted": r.accepted,
            "message": r.message,
            "payload": json_text(&r.payload_json),
            "exchanges": exchanges,
        })),
        Output::Table | Output::Csv => {
            outln!("record:\n{}", pretty(&json_text(&r.payload_json)));
            for e in &exchanges {
                outln!("\nrequest: {}", e["request"].as_str().unwrap_or(""));
                outln!("{}", pretty(&e["request_body"]));
                match e["status"].as_u64() {
                    Some(status) => outln!("answer: HTTP {status}"),
                    None => outln!("answer: none"),
                }
                outln!("{}", pretty(&e["response_body"]));
            }
            let verdict = if r.accepted {
                "accepted"
            } else {
                "NOT accepted"
            };
            outln!("\n{verdict}: {}", r.message);
        }
    }
}
