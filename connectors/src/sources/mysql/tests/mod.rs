//! MySQL source tests: config and type-mapping unit tests, then tests against a real MariaDB
//! started by the testkit (one throwaway server per test).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use retl_engine::model::ModelSession;
use retl_engine::source::{Source, SourceError};
use retl_testkit::MariaDbServer;
use serde_json::{Value, json};

use super::config::{MySqlConfig, SslMode};
use super::source_type;
use super::types::{MySqlType, arrow_type};
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

fn minimal() -> Value {
    json!({"host": "127.0.0.1", "database": "analytics", "user": "retl"})
}

async fn server() -> MariaDbServer {
    MariaDbServer::start().await.unwrap()
}

fn config_for(db: &MariaDbServer, user: &str, password: &str) -> Value {
    json!({
        "host": db.host(),
        "port": db.port(),
        "database": db.database(),
        "user": user,
        "password": password,
        "sslmode": "disabled",
    })
}

fn root_config(db: &MariaDbServer) -> Value {
    json!({
        "host": db.host(),
        "port": db.port(),
        "database": db.database(),
        "user": db.root_user(),
    })
}

const SAMPLE: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email varchar(100) NOT NULL, plan text, active boolean);
INSERT INTO users VALUES (1, 'a@example.com', 'pro', true), (2, 'b@example.com', 'free \"x\"', true),
                         (3, 'c@example.com', NULL, false);
CREATE DATABASE sales;
CREATE TABLE sales.orders (id int PRIMARY KEY, user_id bigint, amount decimal(12,2));
INSERT INTO sales.orders VALUES (10, 1, 19.99), (11, 1, 5.01), (12, 2, 100.00);
CREATE VIEW active_users AS SELECT id, email FROM users WHERE active;
";
