//! The `google-sheets` destination against `retl_testkit`'s Sheets emulator (with its token
//! endpoint): `upsert_rows` is the upsert action, `delete_rows` the delete action; and syncs
//! through the daemon whose rows the emulator's grid holds cell by cell.
//!
//! Observed requests are shown in the suite's shape: a row a write carried as `{"key": <column
//! A>, "change": "added", "fields": {<header>: <cell>}}` (the payload the engine batched), a
//! row a `deleteDimension` removed as `{"key", "change": "deleted"}`. Requests that failed are
//! shown without records (refused token requests included); successful reads, which carry no
//! records, are not shown.

use retl_proto::v1;
use retl_testkit::{GoogleOAuthOptions, GoogleSheetsEmulator, GoogleSheetsOptions};
use retl_tests::{Harness, column, customers};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const TAB: &str = "Customers";

/// A Sheets emulator holding one spreadsheet with the empty tab [`TAB`].
pub(crate) struct SheetsSubject {
    emu: GoogleSheetsEmulator,
}

impl SheetsSubject {
    async fn start() -> Self {
        let options = GoogleSheetsOptions {
            tabs: vec![TAB.to_string()],
            ..GoogleSheetsOptions::default()
        };
        SheetsSubject {
            emu: GoogleSheetsEmulator::start(options).await.unwrap(),
        }
    }

    fn config_with(&self, key_json: &str) -> Value {
        json!({
            "service_account_key": key_json,
            "spreadsheet_id": self.emu.spreadsheet_id(),
            "sheet": TAB,
            "api_url": self.emu.url(),
        })
    }

    /// The header row now.
    fn header(&self) -> Vec<String> {
        self.emu
            .cells(TAB)
            .unwrap_or_default()
            .first()
            .map(|row| {
                row.iter()
                    .map(retl_testkit::emulators::google_sheets::text)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .expect("integer id")
}

impl Subject for SheetsSubject {
    fn destination_type(&self) -> &'static str {
        "google-sheets"
    }

    fn config(&self) -> Value {
        self.config_with(&self.emu.service_account_key_json())
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_rows", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_rows", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let rows = match change {
            "added" => self.emu.written(),
            "deleted" => self.emu.deleted(),
            _ => Vec::new(),
        };
        rows.iter().filter_map(|row| row.first().map(int)).collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        // A key of a service account the token endpoint does not know.
        let stranger = GoogleOAuthOptions {
            client_email: "stranger@elsewhere.iam.gserviceaccount.com".to_string(),
            ..GoogleOAuthOptions::default()
        }
        .service_account_key_json(&self.emu.token_uri());
        Ok((
            self.config_with(&stranger),
            "Invalid grant: account not found",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let header = self.header();
        let as_record = |row: &Vec<Value>| {
            let fields: Map<String, Value> = header
                .iter()
                .zip(row)
                .skip(1)
                .filter(|(_, cell)| !cell.is_null())
                .map(|(name, cell)| (name.clone(), cell.clone()))
                .collect();
            json!({"key": row.first().cloned().unwrap_or(Value::Null), "change": "added", "fields": fields})
        };
        let mut observed: Vec<Observed> = self
            .emu
            .oauth()
            .token_requests()
            .iter()
            .filter(|r| r.status != 200)
            .map(|r| Observed {
                status: r.status,
                records: Vec::new(),
                at: std::time::SystemTime::UNIX_EPOCH,
            })
            .collect();
        for r in self.emu.requests() {
            let records: Vec<Value> = r
                .written
                .iter()
                .map(as_record)
                .chain(
                    r.deleted
                        .iter()
                        .map(|row| json!({"key": row.first().cloned().unwrap_or(Value::Null), "change": "deleted"})),
                )
                .collect();
            if records.is_empty() && (200..300).contains(&r.status) {
                continue;
            }
            observed.push(Observed {
                status: r.status,
                records,
                at: r.received_at,
            });
        }
        Ok(observed)
    }

    fn observes_unchanged(&self) -> Capability<()> {
        Err(NotApplicable(
            "a delete of a key no row holds sends no request naming it: retl reads the key column and deletes only the rows it finds",
        ))
    }

    fn reject_keys(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "the Sheets API applies a request atomically with no per-record results: one invalid value fails the whole request (retl itself rejects, per record, values over a cell's 50,000 characters, checked in the connector's tests)",
        ))
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        // Google's own 429 carries no Retry-After (the engine backs off, checked in the
        // connector's tests); the suite's 1 s throttle sends one.
        self.emu.fail_next(1, 429, Some(seconds));
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.emu.fail_everything();
        Ok(())
    }

    fn recover(&self) {
        self.emu.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        let keys: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.emu.forget(TAB, &keys);
        Ok(())
    }
}

conformance_suite!(SheetsSubject::start().await);

/// The tab after syncs through the daemon: a header row and one row per record in key order
/// of arrival; a changed value updates its row in place and a deleted record's row goes,
/// the rows below moving up.
#[tokio::test]
async fn a_sync_mirrors_the_model_into_the_tab() {
    let subject = SheetsSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(4)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("sheet", "google-sheets", subject.config())
        .await
        .unwrap();
    let tested = h
        .client
        .destinations()
        .test_destination(v1::TestDestinationRequest {
            destination_id: "sheet".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        tested.message.contains("tab 'Customers' found"),
        "{tested:?}"
    );
    let fields = vec![column("Email", "email"), column("Plan", "plan")];
    h.create_mapping_with("rows", "m", "sheet", "mirror_rows", fields, None)
        .await
        .unwrap();
    let run = h.sync("rows").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let plan = |id: i64| ["free", "pro", "enterprise"][usize::try_from(id % 3).unwrap()];
    let row = |id: i64, p: &str| vec![json!(id), json!(format!("user{id}@example.com")), json!(p)];
    let mut expected = vec![vec![json!("id"), json!("Email"), json!("Plan")]];
    expected.extend((1..=4).map(|id| row(id, plan(id))));
    assert_eq!(subject.emu.cells(TAB).unwrap(), expected);

    // Customer 2 changes plan and customer 3 goes: row 3 is updated, row 4 deleted.
    let mut next = customers(4);
    next[1].plan = Some("enterprise".to_string());
    next.remove(2);
    retl_tests::write_parquet(&h.path("customers.parquet"), &next);
    let run = h.sync("rows").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        subject.emu.cells(TAB).unwrap(),
        vec![
            vec![json!("id"), json!("Email"), json!("Plan")],
            row(1, plan(1)),
            row(2, "enterprise"),
            row(4, plan(4)),
        ]
    );
    let token_requests = subject.emu.oauth().token_requests();
    assert!(!token_requests.is_empty());
    for request in token_requests {
        assert_eq!(request.status, 200);
        assert_eq!(
            request.claims["scope"],
            "https://www.googleapis.com/auth/spreadsheets"
        );
    }
}
