//! The `mysql` destination against a real MariaDB started by the testkit.
//!
//! The destination writes table `customers` (id, email, plan) as user `writer`, which has only
//! the grants the connector documents. Row triggers log every written row in `retl_audit`, a
//! table with transaction-precise system versioning, so each audit row carries the id of the
//! transaction that wrote it: that is what [`Observed`] shows, one request per transaction,
//! each row in the suite's record shape (a rolled-back savepoint takes its audit rows with it).
//! Injected failures are real server behaviour: a `CHECK` constraint rejects keys (the
//! connector falls back to row-by-row savepoints), and the server made read-only
//! (`read_only`, as a replica after a failover) fails every write.

use std::future::Future;
use std::time::{Duration, SystemTime};

use retl_proto::v1;
use retl_testkit::MariaDbServer;
use retl_tests::{Harness, customers, expression, template};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const USER: &str = "writer";
const PASSWORD: &str = "writer-secret";

/// The audit's row trigger for `event` (`INSERT`, `UPDATE`, `DELETE`) logged as `op`.
fn trigger(event: &str, op: &str, row: &str) -> String {
    format!(
        "CREATE TRIGGER audit_{op} AFTER {event} ON customers FOR EACH ROW \
         INSERT INTO retl_audit (op, at, id, email, plan) \
         VALUES ('{op}', SYSDATE(6), {row}.id, {row}.email, {row}.plan);"
    )
}

/// The table, its audit, and the writer with the documented grants.
fn setup() -> String {
    format!(
        "CREATE TABLE customers (id bigint PRIMARY KEY, email varchar(255) NOT NULL, plan varchar(50));
         CREATE TABLE retl_audit (seq bigint AUTO_INCREMENT PRIMARY KEY,
             op varchar(10) NOT NULL, at datetime(6) NOT NULL, id bigint, email varchar(255),
             plan varchar(50),
             tx bigint unsigned GENERATED ALWAYS AS ROW START INVISIBLE,
             tx_end bigint unsigned GENERATED ALWAYS AS ROW END INVISIBLE,
             PERIOD FOR SYSTEM_TIME (tx, tx_end)) WITH SYSTEM VERSIONING;
         {}{}{}
         GRANT SELECT, INSERT, UPDATE, DELETE ON retl_test.customers TO '{USER}'@'%';",
        trigger("INSERT", "added", "NEW"),
        trigger("UPDATE", "updated", "NEW"),
        trigger("DELETE", "deleted", "OLD"),
    )
}

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

/// A MariaDB server with the audited `customers` table.
pub(crate) struct MySqlSubject {
    db: MariaDbServer,
}

impl MySqlSubject {
    async fn start() -> Self {
        let db = MariaDbServer::start().await.unwrap();
        db.create_user(USER, PASSWORD).await.unwrap();
        db.sql(&setup()).await.unwrap();
        MySqlSubject { db }
    }

    /// Runs SQL as root; the output of the last statement.
    fn sql(&self, sql: &str) -> String {
        blocking(self.db.sql(sql)).unwrap()
    }

    fn config_with(&self, password: &str) -> Value {
        json!({"host": self.db.host(), "port": self.db.port(), "database": self.db.database(),
               "user": USER, "password": password, "sslmode": "disabled", "table": "customers"})
    }
}

/// A cell of the client's output as JSON (`NULL` → null).
fn cell(text: &str) -> Value {
    if text == "NULL" {
        Value::Null
    } else {
        Value::String(text.to_string())
    }
}

/// A row of the audit as the suite's record: `key`, `change`, and the written `fields`.
fn record(op: &str, id: i64, email: &str, plan: &str) -> Value {
    if op == "deleted" {
        json!({"key": id, "change": "deleted"})
    } else {
        json!({"key": id, "change": op, "fields": {"email": cell(email), "plan": cell(plan)}})
    }
}

impl Subject for MySqlSubject {
    fn destination_type(&self) -> &'static str {
        "mysql"
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
            "SELECT id FROM retl_audit WHERE op = '{change}' ORDER BY seq"
        ))
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_with("not-the-password"),
            "access denied for user 'writer'",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let rows = self
            .sql("SELECT tx, op, UNIX_TIMESTAMP(at), id, email, plan FROM retl_audit ORDER BY seq");
        let mut observed: Vec<(String, Observed)> = Vec::new();
        for line in rows.lines() {
            let parts: Vec<&str> = line.split('\t').collect();
            let [tx, op, at, id, email, plan] = parts[..] else {
                continue;
            };
            let record = record(op, id.parse().unwrap(), email, plan);
            match observed.last_mut() {
                Some((last, request)) if last == tx => request.records.push(record),
                _ => {
                    let seconds: f64 = at.parse().unwrap();
                    observed.push((
                        tx.to_string(),
                        Observed {
                            status: 200,
                            records: vec![record],
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
            "MariaDB's triggers log only rows that a committed statement wrote: a refused login, a rolled-back transaction or a DELETE of a missing row leave none; the run's counts and the table's rows are checked instead",
        ))
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        let list: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.sql(&format!(
            "ALTER TABLE customers ADD CONSTRAINT retl_rejected CHECK (id NOT IN ({}))",
            list.join(", ")
        ));
        Ok(())
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        Err(NotApplicable(
            "a database does not throttle: MariaDB has no request rate limit or Retry-After",
        ))
    }

    fn fail_everything(&self) -> Capability<()> {
        self.sql("SET GLOBAL read_only = ON");
        Ok(())
    }

    fn recover(&self) {
        self.sql("SET GLOBAL read_only = OFF");
        self.sql("ALTER TABLE customers DROP CONSTRAINT IF EXISTS retl_rejected");
        // A system-versioned table cannot be truncated: delete the rows and their history.
        self.sql("DELETE FROM retl_audit; DELETE HISTORY FROM retl_audit");
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

conformance_suite!(MySqlSubject::start().await);

/// A sync through the daemon: templates and expressions land in typed columns, a re-sync
/// updates in place keeping unmapped columns, and the test record shows the statement.
#[tokio::test]
async fn a_sync_writes_typed_rows_and_updates_them_in_place() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql(
        "CREATE TABLE accounts (customer_id bigint PRIMARY KEY, label varchar(200) NOT NULL, \
         seats int, synced_at datetime DEFAULT CURRENT_TIMESTAMP, note varchar(50) DEFAULT 'kept')",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let config = json!({"host": db.host(), "port": db.port(), "database": db.database(),
        "user": db.root_user(), "sslmode": "disabled", "table": "accounts"});
    h.create_destination("app_db", "mysql", config)
        .await
        .unwrap();
    let fields = vec![
        template("label", "{{ email }} ({{ plan | upper }})"),
        expression("seats", "id * 10"),
    ];
    h.create_mapping_with("up", "m", "app_db", "upsert", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let rows = db
        .sql("SELECT customer_id, label, seats, note FROM accounts ORDER BY 1")
        .await
        .unwrap();
    let expected: Vec<String> = customers(3)
        .iter()
        .map(|c| {
            let plan = c.plan.clone().unwrap();
            format!(
                "{}\t{} ({})\t{}\tkept",
                c.id.unwrap(),
                c.email,
                plan.to_uppercase(),
                c.id.unwrap() * 10
            )
        })
        .collect();
    assert_eq!(rows, expected.join("\n"));

    // A changed plan updates its row in place; unmapped columns keep their values.
    db.sql("UPDATE accounts SET note = 'edited by the app' WHERE customer_id = 2")
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
        db.sql("SELECT label, note FROM accounts WHERE customer_id = 2")
            .await
            .unwrap(),
        "user2@example.com (TEAM)\tedited by the app"
    );
    assert_eq!(db.sql("SELECT count(*) FROM accounts").await.unwrap(), "4");

    // The test record shows the statement and the rows it carried.
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
            .contains("INSERT INTO `retl_test`.`accounts`")
            && exchange.request.contains("ON DUPLICATE KEY UPDATE"),
        "{exchange:?}"
    );
    let body: Value = serde_json::from_str(&exchange.request_body_json).unwrap();
    assert_eq!(body[0]["customer_id"], json!(1), "{body}");
    assert_eq!(body[0]["seats"], json!(10), "{body}");
}
