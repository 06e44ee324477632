//! The black-box harness: a real `retl` daemon in-process on 127.0.0.1:0 with a temp data dir,
//! a gRPC client carrying the token, and helpers that write Parquet/CSV "warehouses".

#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod counts;
mod query;

pub use counts::assert_counts_add_up;
pub use query::{query, query_text, text_rows};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use retl::cli::Client;
use retl::{DaemonConfig, InProcessDaemon, spawn_in_process};
use retl_proto::v1;
use retl_testkit::emulators::webhook::WebhookEmulator;
use serde_json::{Value, json};

/// The token every harness daemon requires.
pub const TOKEN: &str = "test-token-7f3a9c";

/// The `retl` binary for tests that run it as a child process: `RETL_BINARY`, else `retl` in the
/// target directory of this test binary. `cargo test` does not build it (it belongs to another
/// package): `scripts/test.sh` runs `cargo build --bin retl` first.
pub fn retl_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RETL_BINARY") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/it-<hash> -> <target>/debug/retl
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join(format!("retl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --bin retl` (scripts/test.sh does), or set RETL_BINARY",
        bin.display()
    );
    bin
}

/// One customer row of the sample warehouse.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Unique id (nullable to test null keys).
    pub id: Option<i64>,
    /// Email.
    pub email: String,
    /// Plan (mapped in most tests).
    pub plan: Option<String>,
    /// Last login (never mapped: changing it must send nothing).
    pub last_login: String,
    /// Active flag.
    pub active: bool,
}

/// `n` customers with ids 1..=n.
pub fn customers(n: i64) -> Vec<Customer> {
    (1..=n)
        .map(|i| Customer {
            id: Some(i),
            email: format!("user{i}@example.com"),
            plan: Some(["free", "pro", "enterprise"][(i % 3) as usize].to_string()),
            last_login: format!("2026-01-{:02}", i % 28 + 1),
            active: true,
        })
        .collect()
}

fn batch(rows: &[Customer]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("email", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, true),
        Field::new("last_login", DataType::Utf8, false),
        Field::new("active", DataType::Boolean, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.plan.as_deref()).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| r.last_login.as_str())
                .collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.active).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

/// Writes `rows` as a Parquet file at `path`, atomically (write + rename).
pub fn write_parquet(path: &Path, rows: &[Customer]) {
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let b = batch(rows);
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes `rows` as CSV with a header at `path`; `bad_line_after` inserts a malformed line
/// (too many fields) after that many rows.
pub fn write_csv(path: &Path, rows: &[Customer], bad_line_after: Option<usize>) {
    let mut out = String::from("id,email,plan,last_login,active\n");
    for (i, r) in rows.iter().enumerate() {
        if bad_line_after == Some(i) {
            out.push_str("this,line,has,far,too,many,fields,for,the,schema\n");
        }
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            r.id.map(|v| v.to_string()).unwrap_or_default(),
            r.email,
            r.plan.clone().unwrap_or_default(),
            r.last_login,
            r.active
        ));
    }
    std::fs::write(path, out).unwrap();
}

/// A daemon with its data dir, a work dir for warehouse files, and a client.
pub struct Harness {
    daemon: Option<InProcessDaemon>,
    /// The daemon's data directory (kept across restarts).
    pub data_dir: tempfile::TempDir,
    /// Where tests put their warehouse files.
    pub work: tempfile::TempDir,
    /// A client with the right token.
    pub client: Client,
    /// The config every (re)start uses.
    config: DaemonConfig,
}

impl Harness {
    /// Starts a daemon requiring [`TOKEN`].
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// Starts a daemon requiring [`TOKEN`], its config changed by `configure` (e.g. engine
    /// options, or metrics on `127.0.0.1:0`); restarts use the same config.
    pub async fn start_with(configure: impl FnOnce(&mut DaemonConfig)) -> Harness {
        Harness::start_in(tempfile::tempdir().unwrap(), configure).await
    }

    /// [`Harness::start_with`] over `data_dir`.
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut DaemonConfig),
    ) -> Harness {
        let work = tempfile::tempdir().unwrap();
        let mut config = DaemonConfig::new(data_dir.path(), Some(TOKEN.to_string()));
        configure(&mut config);
        let daemon = spawn_in_process(config.clone()).await.unwrap();
        let client = Client::connect(&daemon.url(), Some(TOKEN)).await.unwrap();
        Harness {
            daemon: Some(daemon),
            data_dir,
            work,
            client,
            config,
        }
    }

    /// The daemon's URL.
    pub fn url(&self) -> String {
        self.daemon.as_ref().unwrap().url()
    }

    /// Runs the `retl` binary ([`retl_binary`]) against this daemon (`--addr`, [`TOKEN`])
    /// with `args`, stdin closed, and returns what it printed and its exit status.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(retl_binary())
            .args(["--addr", &self.url()])
            .args(args)
            .env("RETL_TOKEN", TOKEN)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// The daemon's Prometheus endpoint (started with metrics).
    pub fn metrics_url(&self) -> String {
        self.daemon
            .as_ref()
            .unwrap()
            .metrics_url()
            .expect("the daemon was started with metrics_listen")
    }

    /// Stops the daemon and starts a new one over the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Stops the daemon (as at SIGTERM: running syncs get the shutdown grace period).
    pub async fn stop(&mut self) {
        self.daemon.take().unwrap().stop().await.unwrap();
    }

    /// Starts a daemon over the data directory after [`Harness::stop`].
    pub async fn start_again(&mut self) {
        let daemon = spawn_in_process(self.config.clone()).await.unwrap();
        self.client = Client::connect(&daemon.url(), Some(TOKEN)).await.unwrap();
        self.daemon = Some(daemon);
    }

    /// A path in the work dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Writes `rows` to `customers.parquet` and creates the `files` source `wh` over it.
    pub async fn warehouse(&self, rows: &[Customer]) {
        write_parquet(&self.path("customers.parquet"), rows);
        let path = self.path("customers.parquet").display().to_string();
        self.create_source("wh", json!({ "path": path }))
            .await
            .unwrap();
    }

    /// Creates the model `m` over source `wh` with unique id `id`.
    pub async fn model(&self, sql: &str) {
        self.create_model("m", "wh", sql, "id").await.unwrap();
    }

    /// Creates a source of type `source_type` through the API.
    pub async fn create_typed_source(
        &self,
        id: &str,
        source_type: &str,
        config: Value,
    ) -> Result<v1::Source, tonic::Status> {
        self.client
            .sources()
            .create_source(v1::CreateSourceRequest {
                source_id: id.to_string(),
                source: Some(v1::Source {
                    r#type: source_type.to_string(),
                    config: Some(to_struct(config)),
                    ..Default::default()
                }),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Creates a `files` source.
    pub async fn create_source(
        &self,
        id: &str,
        config: Value,
    ) -> Result<v1::Source, tonic::Status> {
        self.create_typed_source(id, "files", config).await
    }

    /// Creates a model.
    pub async fn create_model(
        &self,
        id: &str,
        source: &str,
        sql: &str,
        unique_id: &str,
    ) -> Result<v1::Model, tonic::Status> {
        self.client
            .models()
            .create_model(v1::CreateModelRequest {
                model_id: id.to_string(),
                model: Some(v1::Model {
                    source_id: source.to_string(),
                    sql: sql.to_string(),
                    unique_id: unique_id.to_string(),
                    ..Default::default()
                }),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Creates a destination of `kind` with `config`.
    pub async fn create_destination(
        &self,
        id: &str,
        kind: &str,
        config: Value,
    ) -> Result<v1::Destination, tonic::Status> {
        self.client
            .destinations()
            .create_destination(v1::CreateDestinationRequest {
                destination_id: id.to_string(),
                destination: Some(v1::Destination {
                    r#type: kind.to_string(),
                    config: Some(to_struct(config)),
                    ..Default::default()
                }),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A `webhook` destination `hook` at `url`, an `upsert` mapping `up` of `model` with
    /// `fields` (destination field, column), and a `delete` mapping `del` of the same model.
    pub async fn webhook_mappings(&self, model: &str, url: &str, fields: &[(&str, &str)]) {
        self.create_destination("hook", "webhook", json!({ "url": url }))
            .await
            .expect("create destination hook");
        self.create_mapping("up", model, "hook", "upsert", fields, None)
            .await
            .expect("create mapping up");
        self.create_mapping("del", model, "hook", "delete", &[], None)
            .await
            .expect("create mapping del");
    }

    /// Creates a mapping; `fields` are (destination field, model column) pairs; `selection`
    /// (added, updated, deleted) or the action's default.
    pub async fn create_mapping(
        &self,
        id: &str,
        model: &str,
        destination: &str,
        action: &str,
        fields: &[(&str, &str)],
        selection: Option<(bool, bool, bool)>,
    ) -> Result<v1::Mapping, tonic::Status> {
        let fields = fields.iter().map(|(f, c)| column(f, c)).collect();
        self.create_mapping_with(id, model, destination, action, fields, selection)
            .await
    }

    /// Creates mapping `id` with any field sources (columns, literals, templates, expressions).
    pub async fn create_mapping_with(
        &self,
        id: &str,
        model: &str,
        destination: &str,
        action: &str,
        fields: Vec<v1::FieldMapping>,
        selection: Option<(bool, bool, bool)>,
    ) -> Result<v1::Mapping, tonic::Status> {
        self.client
            .mappings()
            .create_mapping(v1::CreateMappingRequest {
                mapping_id: id.to_string(),
                mapping: Some(v1::Mapping {
                    model_id: model.to_string(),
                    destination_id: destination.to_string(),
                    action: action.to_string(),
                    fields,
                    selection: selection.map(|(added, updated, deleted)| v1::RecordSelection {
                        added,
                        updated,
                        deleted,
                    }),
                    ..Default::default()
                }),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Triggers a sync and waits (through WatchSyncRun) for its final record.
    pub async fn sync(&self, mapping: &str) -> v1::SyncRun {
        self.sync_with(mapping, false).await
    }

    /// Triggers a sync (without waiting for it).
    pub async fn trigger(
        &self,
        mapping: &str,
        confirm_mass_delete: bool,
    ) -> Result<v1::SyncRun, tonic::Status> {
        self.client
            .syncs()
            .trigger_sync(v1::TriggerSyncRequest {
                mapping_id: mapping.to_string(),
                confirm_mass_delete,
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Triggers a sync, optionally confirming a mass delete, and waits for its end.
    pub async fn sync_with(&self, mapping: &str, confirm_mass_delete: bool) -> v1::SyncRun {
        let run = self.trigger(mapping, confirm_mass_delete).await.unwrap();
        self.wait(&run.id).await
    }

    /// Every mapping the daemon has.
    pub async fn mappings(&self) -> Vec<v1::Mapping> {
        self.client
            .mappings()
            .list_mappings(v1::ListMappingsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .mappings
    }

    /// Creates a `postgres` source over a testkit server, as `user` (no TLS: the test server
    /// has none); `extra` config keys are added.
    pub async fn create_postgres_source(
        &self,
        id: &str,
        pg: &retl_testkit::PostgresServer,
        user: &str,
        password: &str,
        extra: Value,
    ) -> Result<v1::Source, tonic::Status> {
        let config = json!({
            "host": "127.0.0.1", "port": pg.port(), "database": pg.database(),
            "user": user, "password": password, "sslmode": "disable",
        });
        self.create_typed_source(id, "postgres", with_keys(config, extra))
            .await
    }

    /// Creates a `mysql` source over the throwaway MariaDB `db`, as `user` with `password`
    /// (TLS off); `extra` config keys are added.
    pub async fn create_mysql_source(
        &self,
        id: &str,
        db: &retl_testkit::MariaDbServer,
        user: &str,
        password: &str,
        extra: Value,
    ) -> Result<v1::Source, tonic::Status> {
        let config = json!({
            "host": db.host(), "port": db.port(), "database": db.database(),
            "user": user, "password": password, "sslmode": "disabled",
        });
        self.create_typed_source(id, "mysql", with_keys(config, extra))
            .await
    }

    /// Creates a `sqlite` source over the database file at `path`; `extra` config keys are
    /// added.
    pub async fn create_sqlite_source(
        &self,
        id: &str,
        path: &Path,
        extra: Value,
    ) -> Result<v1::Source, tonic::Status> {
        let config = json!({ "path": path.display().to_string() });
        self.create_typed_source(id, "sqlite", with_keys(config, extra))
            .await
    }

    /// TestSource's answer (or error) for source `id`.
    pub async fn test_source(&self, id: &str) -> Result<v1::TestSourceResponse, tonic::Status> {
        self.client
            .sources()
            .test_source(v1::TestSourceRequest {
                source_id: id.to_string(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Watches a run to its end and returns the final record.
    pub async fn wait(&self, run_id: &str) -> v1::SyncRun {
        let mut stream = self
            .client
            .syncs()
            .watch_sync_run(v1::WatchSyncRunRequest {
                run_id: run_id.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        let watch = async {
            while let Some(msg) = stream.message().await.unwrap() {
                last = msg.run;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .expect("run did not end within 60 s");
        let run = last.expect("WatchSyncRun sent no snapshot");
        assert!(
            retl::grpc::convert::is_terminal(run.status()),
            "the watch stream ended before the run did: {run:?}"
        );
        assert_counts_add_up(&run);
        run
    }
}

/// JSON object -> protobuf Struct.
pub fn to_struct(value: Value) -> prost_types::Struct {
    match value {
        Value::Object(map) => retl::grpc::convert::map_to_struct(map),
        _ => retl::grpc::convert::map_to_struct(serde_json::Map::new()),
    }
}

/// The integer keys of the records `hook` received with change `change`, from the
/// `from`-th record on.
pub fn keys_of(hook: &WebhookEmulator, from: usize, change: &str) -> BTreeSet<i64> {
    hook.records()
        .into_iter()
        .skip(from)
        .filter(|r| r.change.as_deref() == Some(change))
        .map(|r| r.key.as_i64().expect("integer key"))
        .collect()
}

/// The counts of a run as (added, updated, deleted, delivered, failed).
pub fn counts(run: &v1::SyncRun) -> (u64, u64, u64, u64, u64) {
    let c = run.counts.unwrap_or_default();
    (c.added, c.updated, c.deleted, c.delivered, c.failed)
}

/// `base` with the keys of `extra` added (or replaced).
fn with_keys(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// `json!` re-export for tests.
pub fn obj(v: Value) -> Value {
    json!(v)
}

/// Field mapping: destination `field` from model column `column`.
pub fn column(field: &str, column: &str) -> v1::FieldMapping {
    v1::FieldMapping {
        field: field.to_string(),
        source: Some(v1::field_mapping::Source::Column(column.to_string())),
    }
}

/// Field mapping: destination `field` set to the constant `value`.
pub fn literal(field: &str, value: serde_json::Value) -> v1::FieldMapping {
    v1::FieldMapping {
        field: field.to_string(),
        source: Some(v1::field_mapping::Source::Literal(json_to_proto(value))),
    }
}

/// Field mapping: destination `field` rendered from the MiniJinja template `text`.
pub fn template(field: &str, text: &str) -> v1::FieldMapping {
    v1::FieldMapping {
        field: field.to_string(),
        source: Some(v1::field_mapping::Source::Template(text.to_string())),
    }
}

/// Field mapping: destination `field` computed by the SQL expression `sql`.
pub fn expression(field: &str, sql: &str) -> v1::FieldMapping {
    v1::FieldMapping {
        field: field.to_string(),
        source: Some(v1::field_mapping::Source::Expression(sql.to_string())),
    }
}

/// A JSON value as `google.protobuf.Value`.
fn json_to_proto(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_to_proto).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, json_to_proto(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}
