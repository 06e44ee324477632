//! The `postgres` destination against a real PostgreSQL started by the testkit.
//!
//! The destination writes table `customers` (id, email, plan) as role `writer`, which has only
//! the grants the connector documents. Statement-level triggers with transition tables log
//! every committed statement's rows in `retl_audit` (with the transaction id): that is what
//! [`Observed`] shows, one request per transaction, each row in the suite's record shape.
//! Injected failures are real server behaviour: a `CHECK` constraint rejects keys (the
//! connector falls back to row-by-row savepoints), and a role made read-only
//! (`default_transaction_read_only`, as a standby after a failover) fails every write.

use std::future::Future;
use std::time::{Duration, SystemTime};

use retl_proto::v1;
use retl_testkit::postgres::PostgresServer;
use retl_tests::{Harness, column, customers, expression, template};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const USER: &str = "writer";
const PASSWORD: &str = "writer-secret";

/// The table, its audit, and the writer role with the documented grants.
const SETUP: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, plan text);
CREATE TABLE retl_audit (seq bigserial PRIMARY KEY, tx bigint NOT NULL DEFAULT txid_current(),
    op text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), rows jsonb NOT NULL);
CREATE FUNCTION retl_audit_rows() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO retl_audit (op, rows)
      SELECT 'deleted', jsonb_agg(to_jsonb(o) ORDER BY o.id) FROM old_rows o HAVING count(*) > 0;
  ELSE
    INSERT INTO retl_audit (op, rows)
      SELECT CASE TG_OP WHEN 'INSERT' THEN 'added' ELSE 'updated' END,
             jsonb_agg(to_jsonb(n) ORDER BY n.id) FROM new_rows n HAVING count(*) > 0;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER audit_insert AFTER INSERT ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION retl_audit_rows();
CREATE TRIGGER audit_update AFTER UPDATE ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION retl_audit_rows();
CREATE TRIGGER audit_delete AFTER DELETE ON customers REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION retl_audit_rows();
GRANT SELECT, INSERT, UPDATE, DELETE ON customers TO writer;";

/// Runs `future` to completion on a runtime of its own (the suite's controls are not async).
fn blocking<T: Send>(future: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the subject's controls")
                    .block_on(future)
            })
            .join()
            .expect("the subject's control ran")
    })
}

/// A PostgreSQL server with the audited `customers` table.
pub(crate) struct PostgresSubject {
    pg: PostgresServer,
}

impl PostgresSubject {
    async fn start() -> Self {
        let pg = PostgresServer::start().await.unwrap();
        pg.create_user(USER, PASSWORD).await.unwrap();
        pg.psql(SETUP).await.unwrap();
        PostgresSubject { pg }
    }

    /// Runs SQL as the superuser; the output of the last statement.
    fn sql(&self, sql: &str) -> String {
        blocking(self.pg.psql(sql)).unwrap()
    }

    fn config_with(&self, password: &str) -> Value {
        json!({"host": self.pg.host(), "port": self.pg.port(), "database": self.pg.database(),
               "user": USER, "password": password, "sslmode": "disable", "table": "customers"})
    }

    /// Makes the writer's sessions read-only (or writable again) and ends its open sessions.
    fn read_only(&self, on: bool) {
        let setting = if on {
            "SET default_transaction_read_only = on"
        } else {
            "RESET default_transaction_read_only"
        };
        self.sql(&format!("ALTER ROLE {USER} {setting}"));
        self.sql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '{USER}'"
        ));
    }
}

/// A row of the audit as the suite's record: `key`, `change`, and the written `fields`.
fn record(op: &str, row: &Value) -> Value {
    if op == "deleted" {
        json!({"key": row["id"], "change": "deleted"})
    } else {
        json!({"key": row["id"], "change": op,
               "fields": {"email": row["email"], "plan": row["plan"]}})
    }
}

impl Subject for PostgresSubject {
    fn destination_type(&self) -> &'static str {
        "postgres"
    }

    fn config(&self) -> Value {
        self.config_with(PASSWORD)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        self.sql(&format!(
            "SELECT (r.value->>'id') FROM retl_audit a, jsonb_array_elements(a.rows) WITH ORDINALITY r \
             WHERE a.op = '{change}' ORDER BY a.seq, r.ordinality"
        ))
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_with("not-the-password"),
            "password authentication failed",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let rows = self.sql(
            "SELECT tx, op, extract(epoch FROM at)::float8, rows FROM retl_audit ORDER BY seq",
        );
        let mut observed: Vec<(String, Observed)> = Vec::new();
        for line in rows.lines() {
            let mut parts = line.splitn(4, '|');
            let (Some(tx), Some(op), Some(at), Some(rows)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rows: Vec<Value> = serde_json::from_str(rows).unwrap();
            let records = rows.iter().map(|row| record(op, row));
            match observed.last_mut() {
                Some((last, request)) if last == tx => request.records.extend(records),
                _ => {
                    let seconds: f64 = at.parse().unwrap();
                    observed.push((
                        tx.to_string(),
                        Observed {
                            status: 200,
                            records: records.collect(),
                            at: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds),
                        },
                    ));
                }
            }
        }
        Ok(observed.into_iter().map(|(_, request)| request).collect())
    }

    fn observes_unchanged(&self) -> Capability<()> {
        Err(NotApplicable(
            "PostgreSQL keeps a trace only of statements that committed changes: a refused login, a rolled-back transaction or a DELETE of a missing row leave none; the run's counts and the table's rows are checked instead",
        ))
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        let list: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.sql(&format!(
            "ALTER TABLE customers ADD CONSTRAINT retl_rejected CHECK (id NOT IN ({})) NOT VALID",
            list.join(", ")
        ));
        Ok(())
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        Err(NotApplicable(
            "a database does not throttle: PostgreSQL has no request rate limit or Retry-After",
        ))
    }

    fn fail_everything(&self) -> Capability<()> {
        self.read_only(true);
        Ok(())
    }

    fn recover(&self) {
        self.read_only(false);
        self.sql("ALTER TABLE customers DROP CONSTRAINT IF EXISTS retl_rejected");
        self.sql("TRUNCATE retl_audit");
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        let list: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.sql(&format!(
            "DELETE FROM customers WHERE id IN ({})",
            list.join(", ")
        ));
        Ok(())
    }
}

conformance_suite!(PostgresSubject::start().await);

/// A daemon with model `m` (`sql` over three customers) and destination `app_db`: table
/// `accounts` of `pg`, written as the superuser.
async fn app_db(pg: &PostgresServer, sql: &str) -> Harness {
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model(sql).await;
    let config = json!({"host": pg.host(), "port": pg.port(), "database": pg.database(),
        "user": pg.user(), "password": pg.superuser_password(), "sslmode": "disable",
        "table": "accounts"});
    h.create_destination("app_db", "postgres", config)
        .await
        .unwrap();
    h
}

/// A sync through the daemon: templates and expressions land in typed columns, a re-sync
/// updates in place, an update-only mapping rejects a row the table lacks, and the test
/// record shows the statement.
#[tokio::test]
async fn a_sync_writes_typed_rows_and_updates_them_in_place() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql(
        "CREATE TABLE accounts (customer_id bigint PRIMARY KEY, label text NOT NULL, \
         seats integer, tags text[], synced_at timestamptz DEFAULT now(), note text DEFAULT 'kept')",
    )
    .await
    .unwrap();
    let h = app_db(&pg, "SELECT id, email, plan FROM customers").await;
    let fields = vec![
        template("label", "{{ email }} ({{ plan | upper }})"),
        expression("seats", "id * 10"),
        expression("tags", "make_array(plan, 'retl')"),
    ];
    h.create_mapping_with("up", "m", "app_db", "upsert", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let rows = pg
        .psql("SELECT customer_id, label, seats, tags, note FROM accounts ORDER BY 1")
        .await
        .unwrap();
    let expected: Vec<String> = customers(3)
        .iter()
        .map(|c| {
            let plan = c.plan.clone().unwrap();
            format!(
                "{}|{} ({})|{}|{{{plan},retl}}|kept",
                c.id.unwrap(),
                c.email,
                plan.to_uppercase(),
                c.id.unwrap() * 10
            )
        })
        .collect();
    assert_eq!(rows, expected.join("\n"));

    // A changed plan updates its row in place; unmapped columns keep their values.
    pg.psql("UPDATE accounts SET note = 'edited by the app' WHERE customer_id = 2")
        .await
        .unwrap();
    let mut changed = customers(4);
    changed[1].plan = Some("team".to_string());
    retl_tests::write_parquet(&h.path("customers.parquet"), &changed);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let c = run.counts.unwrap();
    assert_eq!((c.added, c.updated, c.delivered), (1, 1, 2), "{c:?}");
    assert_eq!(
        pg.psql("SELECT label, note FROM accounts WHERE customer_id = 2")
            .await
            .unwrap(),
        "user2@example.com (TEAM)|edited by the app"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM accounts").await.unwrap(), "4");

    // The test record shows the statement and the document it carried.
    let answer = h
        .client
        .mappings()
        .send_test_record(v1::SendTestRecordRequest {
            mapping_id: "up".to_string(),
            key: "1".to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let exchange = answer.exchanges.first().expect("the statement is shown");
    assert!(
        exchange
            .request
            .contains("INSERT INTO \"public\".\"accounts\""),
        "{exchange:?}"
    );
    let body: Value = serde_json::from_str(&exchange.request_body_json).unwrap();
    assert_eq!(body[0]["customer_id"], json!(1), "{body}");
    assert_eq!(body[0]["seats"], json!(10), "{body}");
}

/// A mapping to a column the table lacks stops the run with the fix, and loses nothing.
#[tokio::test]
async fn a_field_without_a_column_stops_the_run_with_the_fix() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE accounts (id bigint PRIMARY KEY, email text)")
        .await
        .unwrap();
    let h = app_db(&pg, "SELECT id, email, plan FROM customers").await;
    h.create_mapping_with(
        "up",
        "m",
        "app_db",
        "upsert",
        vec![column("email", "email"), column("plan", "plan")],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains("has no column 'plan'") && run.error.contains("ADD COLUMN"),
        "{}",
        run.error
    );
    assert_eq!(pg.psql("SELECT count(*) FROM accounts").await.unwrap(), "0");
    pg.psql("ALTER TABLE accounts ADD COLUMN plan text")
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(pg.psql("SELECT count(*) FROM accounts").await.unwrap(), "3");
}

/// The table's columns are the action's fields over the API, and suggestions match the
/// model's columns to them.
#[tokio::test]
async fn fields_and_suggestions_come_from_the_table() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql(
        "CREATE TABLE accounts (customer_id bigint PRIMARY KEY, email_address text NOT NULL, \
         tier text, seats integer, full_name_upper text GENERATED ALWAYS AS (upper(email_address)) STORED)",
    )
    .await
    .unwrap();
    let h = app_db(&pg, "SELECT id, email, plan, active FROM customers").await;
    let fields = h
        .client
        .destinations()
        .list_action_fields(v1::ListActionFieldsRequest {
            destination_id: "app_db".to_string(),
            action: "upsert".to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .fields;
    let listed: Vec<(&str, v1::FieldType, bool)> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.r#type(), f.required))
        .collect();
    assert_eq!(
        listed,
        [
            ("email_address", v1::FieldType::String, true),
            ("tier", v1::FieldType::String, false),
            ("seats", v1::FieldType::Integer, false),
        ],
        "the key column and the generated column are not fields"
    );

    let suggestions = h
        .client
        .mappings()
        .suggest_mappings(v1::SuggestMappingsRequest {
            model_id: "m".to_string(),
            destination_id: "app_db".to_string(),
            action: "upsert".to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    let pairs: Vec<(&str, &str)> = suggestions
        .iter()
        .map(|s| (s.field.as_str(), s.column.as_str()))
        .collect();
    assert!(
        pairs.contains(&("email_address", "email")),
        "{suggestions:?}"
    );
    assert!(pairs.contains(&("tier", "plan")), "{suggestions:?}");
    assert!(
        !pairs.iter().any(|(field, _)| *field == "seats"),
        "no column means seats: {suggestions:?}"
    );
    assert!(
        suggestions
            .iter()
            .all(|s| !s.reason.is_empty() && s.score > 0.0)
    );
}
