//! The sources conformance suite (`sources/conformance.rs`) against real SQLite files.

use super::*;
use crate::sources::conformance;
use crate::sources::sqlite::database::Database;

#[test]
fn conformance_config_errors_name_the_field() {
    conformance::config_errors_name_the_field(&source_type(), &json!({"path": "/data/app.db"}));
}

#[tokio::test]
async fn conformance_connect_errors_are_classified() {
    let (_dir, path) = database(SAMPLE);
    // A file has no server to be unreachable: what a retry can cure is a writer's lock.
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conformance::unreachable_is_unavailable(
        &source_type(),
        with(config(&path), json!({"busy_timeout_ms": 100})),
        &["locked", "warehouse.db", "busy_timeout_ms"],
    )
    .await;
    writer.execute_batch("COMMIT").unwrap();
    // SQLite has no credentials; a table that is not there is the user's to fix.
    conformance::a_missing_table_is_a_user_error(&build(config(&path))).await;
}

#[tokio::test]
async fn conformance_sessions_are_read_only() {
    let (_dir, path) = database(SAMPLE);
    let source = build(config(&path));
    let own = Database {
        config: serde_json::from_value::<SqliteConfig>(config(&path))
            .unwrap()
            .validate()
            .unwrap(),
    };
    let write = async {
        let conn = own.open().map_err(|e| e.to_string())?;
        match conn.execute(
            "INSERT INTO users (id, email) VALUES (99, 'x@example.com')",
            [],
        ) {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("readonly"), "{text}");
                Err(text)
            }
        }
    };
    conformance::sessions_are_read_only(&source, "users", Some(Box::pin(write))).await;
}
