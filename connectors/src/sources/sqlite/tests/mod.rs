//! SQLite source tests: config and type-mapping unit tests, then tests against real database
//! files created in temp dirs (no mocks).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use futures::StreamExt;
use retl_engine::model::ModelSession;
use retl_engine::source::{Source, SourceError};
use serde_json::{Value, json};

use super::config::SqliteConfig;
use super::source_type;
use super::types::arrow_type;
use super::values::{parse_datetime, parse_decimal_literal, rescale_exact};
use crate::sources::conformance::{TypeCase, case, type_table_round_trip, type_table_sql};
use crate::sources::test_support::{
    self, MEMORY, column_shapes, explain, json_rows, run, run_error, table_labels, with,
};

mod config;
mod conformance;
mod connect;
mod reads;
mod types;

fn build(config: Value) -> Arc<dyn Source> {
    test_support::build(&source_type(), config)
}

fn build_error(config: Value) -> (String, String) {
    test_support::build_error(&source_type(), config)
}

/// A database file created with `sql` in a fresh temp dir.
fn database(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warehouse.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    (dir, path)
}

fn config(path: &Path) -> Value {
    json!({"path": path.display().to_string()})
}

const SAMPLE: &str = "
CREATE TABLE Users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, plan TEXT, active BOOLEAN);
INSERT INTO Users VALUES (1, 'a@example.com', 'pro', 1), (2, 'b@example.com', 'free', 1),
                         (3, 'c@example.com', NULL, 0);
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, amount DECIMAL(12,2));
INSERT INTO orders VALUES (10, 1, 19.99), (11, 1, 5.01), (12, 2, 100.00);
CREATE VIEW active_users AS SELECT id, email FROM users WHERE active;
";
