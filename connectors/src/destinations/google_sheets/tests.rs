//! Google Sheets tests: config, planning, and round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::{GoogleSheetsEmulator, GoogleSheetsOptions};
use serde_json::{Value, json};

use super::actions::{self, Plan};
use super::config::GoogleSheetsConfig;
use super::{GoogleSheetsDestination, destination_type};

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("gs"),
        mapping_id: MappingId::new("rows"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: i64, change: ChangeKind, fields: Value) -> Payload {
    Payload {
        key: json!(key),
        change,
        fields: fields.as_object().cloned().unwrap_or_default().into(),
        fingerprint: None,
    }
}

fn added(key: i64, fields: Value) -> Payload {
    payload(key, ChangeKind::Added, fields)
}

fn deleted(key: i64) -> Payload {
    Payload::delete(json!(key))
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn config(emu: &GoogleSheetsEmulator) -> Value {
    json!({
        "service_account_key": emu.service_account_key_json(),
        "spreadsheet_id": emu.spreadsheet_id(),
        "sheet": "Sheet1",
        "api_url": emu.url(),
    })
}

fn destination(config: &Value) -> GoogleSheetsDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    GoogleSheetsDestination::new(config, limits).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn config_validation_and_drift() {
    retl_engine::config_fields::check_config_fields::<GoogleSheetsConfig>(
        destination_type().config,
    )
    .unwrap();
    let key = retl_testkit::GoogleOAuthOptions::default()
        .service_account_key_json("https://oauth2.googleapis.com/token");
    let good =
        json!({"service_account_key": key, "spreadsheet_id": "1AbC-d_9", "sheet": "Q1 'data'"});
    let field = |change: (&str, Value)| {
        let mut c = good.clone();
        c[change.0] = change.1;
        match GoogleSheetsDestination::new(&c, DeliveryLimits::default()) {
            Err(DestinationError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        field((
            "spreadsheet_id",
            json!("https://docs.google.com/spreadsheets/d/1AbC/edit")
        )),
        "spreadsheet_id"
    );
    assert_eq!(field(("sheet", json!(" "))), "sheet");
    assert_eq!(field(("key_column", json!(""))), "key_column");
    assert_eq!(
        field(("value_input_option", json!("FORMULA"))),
        "value_input_option"
    );
    assert_eq!(field(("api_url", json!("nope"))), "api_url");
    assert_eq!(
        field(("refresh_token", json!("1//x"))),
        "service_account_key"
    );
    assert_eq!(
        field((
            "service_account_key",
            json!("{\"type\": \"service_account\"}")
        )),
        "service_account_key"
    );
    let valid = serde_json::from_value::<GoogleSheetsConfig>(good)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        valid.spreadsheet_url.as_str(),
        "https://sheets.googleapis.com/v4/spreadsheets/1AbC-d_9"
    );
    assert_eq!(
        valid.credentials.token_uri.as_str(),
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(
        (valid.key_column.as_str(), valid.value_input_option),
        ("id", "RAW")
    );
}

#[test]
fn ranges_and_cells() {
    assert_eq!(actions::column_letters(0), "A");
    assert_eq!(actions::column_letters(27), "AB");
    assert_eq!(actions::column_letters(702), "AAA");
    assert_eq!(actions::row_range("Q1 'data'", 7, 3), "'Q1 ''data'''!A7:C7");
    assert_eq!(actions::cell(&Value::Null), json!(""));
    assert_eq!(actions::cell(&json!({"a": 1})), json!("{\"a\":1}"));
    assert_eq!(actions::cell(&json!(1.5)), json!(1.5));
    assert_eq!(actions::text(&json!(7)), "7");
    assert_eq!(
        actions::delete_requests(5, &[9, 8, 7, 3]),
        vec![
            json!({"deleteDimension": {"range": {"sheetId": 5, "dimension": "ROWS", "startIndex": 6, "endIndex": 9}}}),
            json!({"deleteDimension": {"range": {"sheetId": 5, "dimension": "ROWS", "startIndex": 2, "endIndex": 3}}}),
        ]
    );
}

#[test]
fn plans_update_append_delete_and_grow_the_header() {
    let header = strings(&["id", "email", "notes"]);
    let keys = strings(&["1", "", "2", "1"]);
    let batch = [
        payload(
            2,
            ChangeKind::Updated,
            json!({"email": "b@x", "plan": "pro"}),
        ),
        added(3, json!({"email": "c@x", "plan": Value::Null})),
        deleted(1),
        deleted(9),
    ];
    let plan = actions::plan("S", "id", &header, &keys, &batch).unwrap();
    assert_eq!(
        plan,
        Plan {
            header: strings(&["id", "email", "notes", "plan"]),
            header_changed: true,
            updates: vec![(4, vec![json!(2), json!("b@x"), Value::Null, json!("pro")])],
            appends: vec![vec![json!(3), json!("c@x"), Value::Null, json!("")]],
            deletes: vec![5, 2],
            outcomes: vec![RecordOutcome::Accepted; 4],
        }
    );
    // An empty tab gets the header; a tab keyed otherwise is refused.
    let plan = actions::plan("S", "id", &[], &[], &[added(1, json!({"a": 1}))]).unwrap();
    assert_eq!(
        (plan.header, plan.header_changed),
        (strings(&["id", "a"]), true)
    );
    match actions::plan("S", "id", &strings(&["email", "id"]), &[], &[]) {
        Err(DestinationError::Rejected { message }) => {
            assert!(
                message.contains("headed 'email'") && message.contains("key_column"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A value over 50,000 characters is rejected alone.
    let long = "x".repeat(actions::MAX_CELL_CHARS + 1);
    let plan = actions::plan(
        "S",
        "id",
        &strings(&["id", "a"]),
        &[],
        &[added(1, json!({"a": long})), added(2, json!({"a": "ok"}))],
    )
    .unwrap();
    assert!(
        matches!(&plan.outcomes[0], RecordOutcome::Rejected { reason } if reason.contains("50000"))
    );
    assert_eq!(plan.outcomes[1], RecordOutcome::Accepted);
    assert_eq!(plan.appends, vec![vec![json!(2), json!("ok")]]);
}

async fn send(
    dest: &GoogleSheetsDestination,
    action: &str,
    batch: &[Payload],
) -> Result<Vec<RecordOutcome>, DestinationError> {
    let action = dest.action(spec(action)).unwrap();
    action.send(&ctx(), batch).await.map(|o| o.records)
}

#[tokio::test]
async fn a_tab_mirrors_upserts_and_deletes_by_key() {
    let emu = GoogleSheetsEmulator::start(GoogleSheetsOptions::default())
        .await
        .unwrap();
    let dest = destination(&config(&emu));
    let message = dest.test().await.unwrap();
    assert!(
        message.contains("tab 'Sheet1' found") && message.contains("nothing was written"),
        "{message}"
    );

    let rows = [1, 2, 3].map(|k| added(k, json!({"email": format!("u{k}@x"), "plan": "free"})));
    assert_eq!(
        send(&dest, "upsert_rows", &rows).await.unwrap(),
        vec![RecordOutcome::Accepted; 3]
    );
    let cells = emu.cells("Sheet1").unwrap();
    assert_eq!(cells[0], vec![json!("id"), json!("email"), json!("plan")]);
    assert_eq!(cells[2], vec![json!(2), json!("u2@x"), json!("free")]);

    // Updates in place, a new column, a formula-looking text kept as text (RAW), a delete.
    let batch = [
        payload(
            2,
            ChangeKind::Updated,
            json!({"email": "=HYPERLINK(\"x\")", "plan": "pro", "seats": 5}),
        ),
        deleted(1),
        added(4, json!({"email": "u4@x", "plan": "free", "seats": 1})),
    ];
    assert_eq!(
        send(&dest, "mirror_rows", &batch).await.unwrap(),
        vec![RecordOutcome::Accepted; 3]
    );
    assert_eq!(
        emu.cells("Sheet1").unwrap(),
        vec![
            vec![json!("id"), json!("email"), json!("plan"), json!("seats")],
            vec![json!(2), json!("=HYPERLINK(\"x\")"), json!("pro"), json!(5)],
            vec![json!(3), json!("u3@x"), json!("free")],
            vec![json!(4), json!("u4@x"), json!("free"), json!(1)],
        ]
    );
    // One read per batch, then updates, deletes, append: one request each.
    let paths: Vec<String> = emu
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let id = emu.spreadsheet_id();
    assert_eq!(
        paths[paths.len() - 4..],
        [
            format!("GET /v4/spreadsheets/{id}/values:batchGet"),
            format!("POST /v4/spreadsheets/{id}/values:batchUpdate"),
            format!("POST /v4/spreadsheets/{id}:batchUpdate"),
            format!("POST /v4/spreadsheets/{id}/values/'Sheet1'!A1:append"),
        ]
    );
    // A re-sent delete of a row that is gone succeeds without a write.
    let before = emu.requests().len();
    assert_eq!(
        send(&dest, "delete_rows", &[deleted(1)]).await.unwrap(),
        vec![RecordOutcome::Accepted]
    );
    assert_eq!(emu.requests().len(), before + 1, "only the read");
    assert_eq!(
        emu.oauth().tokens_issued(),
        1,
        "one token for every request"
    );
}

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    let emu = GoogleSheetsEmulator::start(GoogleSheetsOptions::default())
        .await
        .unwrap();
    let dest = destination(&config(&emu));
    send(&dest, "upsert_rows", &[added(1, json!({"a": 1}))])
        .await
        .unwrap();
    emu.oauth().expire_tokens();
    send(&dest, "upsert_rows", &[added(2, json!({"a": 2}))])
        .await
        .unwrap();
    assert_eq!(emu.oauth().tokens_issued(), 2);
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 401, 200, 200]);
}

#[tokio::test]
async fn config_problems_are_named() {
    let emu = GoogleSheetsEmulator::start(GoogleSheetsOptions::default())
        .await
        .unwrap();
    let mut missing_tab = config(&emu);
    missing_tab["sheet"] = json!("Nope");
    match destination(&missing_tab).test().await.unwrap_err() {
        DestinationError::Rejected { message } => assert!(
            message.contains("no tab 'Nope'") && message.contains("'Sheet1'"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    match send(
        &destination(&missing_tab),
        "upsert_rows",
        &[added(1, json!({"a": 1}))],
    )
    .await
    .unwrap_err()
    {
        DestinationError::Rejected { message } => assert!(
            message.contains("Unable to parse range")
                && message.contains("check that the tab 'Nope'"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let mut unknown = config(&emu);
    unknown["spreadsheet_id"] = json!("1Unknown");
    match destination(&unknown).test().await.unwrap_err() {
        DestinationError::Rejected { message } => assert!(
            message.contains("404") && message.contains("1Unknown"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let stranger = retl_testkit::GoogleOAuthOptions {
        client_email: "stranger@other.iam.gserviceaccount.com".to_string(),
        ..retl_testkit::GoogleOAuthOptions::default()
    }
    .service_account_key_json(&emu.token_uri());
    let mut refused = config(&emu);
    refused["service_account_key"] = json!(stranger);
    match destination(&refused).test().await.unwrap_err() {
        DestinationError::Authentication { message } => {
            assert!(message.contains("account not found"), "{message}");
            assert!(!message.contains("PRIVATE KEY"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn quota_and_cell_limits_are_classified() {
    let options = GoogleSheetsOptions {
        requests_per_minute: 2,
        ..GoogleSheetsOptions::default()
    };
    let emu = GoogleSheetsEmulator::start(options).await.unwrap();
    let dest = destination(&config(&emu));
    send(&dest, "upsert_rows", &[added(1, json!({"a": 1}))])
        .await
        .unwrap();
    match send(&dest, "upsert_rows", &[added(2, json!({"a": 2}))])
        .await
        .unwrap_err()
    {
        DestinationError::Transient {
            throttled, message, ..
        } => {
            assert!(throttled, "{message}");
            assert!(message.contains("Quota exceeded"), "{message}");
            assert!(
                message.contains("60 write requests per minute"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    let options = GoogleSheetsOptions {
        grid: (3, 2),
        cell_limit: 10,
        ..GoogleSheetsOptions::default()
    };
    let emu = GoogleSheetsEmulator::start(options).await.unwrap();
    let dest = destination(&config(&emu));
    let rows: Vec<Payload> = (1..=2).map(|k| added(k, json!({"a": k}))).collect();
    send(&dest, "upsert_rows", &rows).await.unwrap();
    let more: Vec<Payload> = (3..=5).map(|k| added(k, json!({"a": k}))).collect();
    match send(&dest, "upsert_rows", &more).await.unwrap_err() {
        DestinationError::Rejected { message } => {
            assert!(message.contains("limit of 10 cells"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        emu.cells("Sheet1").unwrap().len(),
        3,
        "nothing of the refused append was written"
    );
    assert_eq!(emu.grid("Sheet1"), Some((5, 2)));
}
