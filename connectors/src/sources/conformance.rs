//! The contract every source passes, as reusable checks each source's tests run against a
//! real warehouse (a PostgreSQL or MariaDB server from the testkit, real SQLite and data files):
//!
//! 1. **Config errors name the field** ([`config_errors_name_the_field`]): a value of the wrong
//!    type for any field of the catalog entry is an `InvalidConfig` on that field saying what
//!    it must be.
//! 2. **Connect errors are classified** ([`unreachable_is_unavailable`],
//!    [`refused_credentials_are_an_auth_error`], [`a_missing_table_is_a_user_error`]): an
//!    unreachable server is `Unavailable` (transient: the engine retries, clients may) from
//!    every entry point; refused credentials are `Authentication` and never echo the password;
//!    a model naming a table that does not exist is the user's to fix (`INVALID_ARGUMENT`).
//! 3. **Sessions are read-only** ([`sessions_are_read_only`]): DML over the registered tables
//!    fails, also outside the model planner's guard, and so does a write sent on the source's
//!    own connection; the table is unchanged afterwards.
//! 4. **A read cut short is an error** ([`a_read_cut_short_is_an_error`]): a stream whose
//!    connection or file goes away mid-read ends with an error, never as a short extract taken
//!    for complete, and the source classifies that error.
//! 5. **The type table round-trips** ([`type_table_round_trip`]): each warehouse type listed in
//!    the connector's `types.rs` arrives as the documented Arrow type (in the stream and in
//!    `list_tables`), with the value destinations expect, and NULL stays NULL.
//!
//! The model is `engine/src/state/conformance.rs`: the checks know the [`Source`] trait only;
//! each source's tests bring the warehouse and the configs.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use futures::future::BoxFuture;
use retl_engine::connector::SourceType;
use retl_engine::destination::FieldType;
use retl_engine::error::ErrorCategory;
use retl_engine::model::ModelSession;
use retl_engine::source::{Source, SourceError};
use serde_json::{Value, json};

use super::test_support::{MEMORY, build, json_rows, run, with};

/// How long any connect check may take: the configs the tests pass use short connect timeouts.
const CONNECT_BOUND: Duration = Duration::from_secs(30);

// ---- 1. config ------------------------------------------------------------------------------

/// A value of the wrong JSON type for `field_type`.
fn wrong_value(field_type: FieldType) -> Value {
    match field_type {
        FieldType::String | FieldType::Datetime => json!(42),
        FieldType::Integer | FieldType::Number => json!("ten"),
        FieldType::Boolean => json!("yes"),
        FieldType::Object | FieldType::Array => json!(7),
        FieldType::Any => json!(null),
    }
}

/// Each field of `ty`'s catalog entry, set to a value of the wrong type on top of the valid
/// `config`, is refused as `InvalidConfig` naming that field, saying what it must be and
/// what it got. (`Any` fields and secrets that accept numbers are skipped.)
pub(crate) fn config_errors_name_the_field(ty: &SourceType, config: &Value) {
    let checked: Vec<_> = ty
        .config
        .iter()
        .filter(|f| f.field_type != FieldType::Any && !f.secret)
        .collect();
    assert!(
        !checked.is_empty(),
        "{} has no typed config fields",
        ty.name
    );
    for spec in checked {
        let bad = wrong_value(spec.field_type);
        let config = with(config.clone(), json!({ spec.name: bad }));
        match (ty.build)(&config) {
            Err(SourceError::InvalidConfig { field, message }) => {
                assert_eq!(field, spec.name, "{}: {message}", ty.name);
                assert!(
                    message.starts_with("must be ") && message.ends_with(&describe(&bad)),
                    "{}.{}: {message}",
                    ty.name,
                    spec.name
                );
            }
            Err(other) => panic!(
                "{}.{}: expected InvalidConfig, got {other:?}",
                ty.name, spec.name
            ),
            Ok(source) => panic!("{}.{} = {bad} was accepted: {source:?}", ty.name, spec.name),
        }
    }
}

/// How the config error shows a wrong value (see `retl_engine::config_field`).
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("not the text \"{s}\""),
        Value::Number(n) => format!("not the number {n}"),
        other => format!("not {other}"),
    }
}

// ---- 2. connect errors ----------------------------------------------------------------------

/// The error of registering `source` in a fresh session.
async fn register_error(source: &Arc<dyn Source>) -> Option<SourceError> {
    source.register(&SessionContext::new()).await.err()
}

/// Runs `check` and fails when it takes longer than [`CONNECT_BOUND`].
async fn bounded<T>(what: &str, check: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = check.await;
    assert!(
        started.elapsed() < CONNECT_BOUND,
        "{what} took {:?}",
        started.elapsed()
    );
    out
}

/// A source whose server (or path) cannot be reached fails `test`, `list_tables` and
/// `register` with `Unavailable` — transient, so the engine retries and clients may — whose
/// message contains each of `words` (what was tried, what to check).
pub(crate) async fn unreachable_is_unavailable(ty: &SourceType, config: Value, words: &[&str]) {
    let source = build(ty, config);
    let errors = [
        ("test", bounded("test", source.test()).await.err()),
        (
            "list_tables",
            bounded("list_tables", source.list_tables()).await.err(),
        ),
        (
            "register",
            bounded("register", register_error(&source)).await,
        ),
    ];
    for (call, error) in errors {
        let error = error.unwrap_or_else(|| panic!("{}: {call} succeeded", ty.name));
        assert!(
            matches!(error, SourceError::Unavailable { .. }),
            "{}: {call}: {error:?}",
            ty.name
        );
        assert_eq!(error.category(), ErrorCategory::Unavailable, "{error}");
        assert!(error.is_transient(), "{error}");
        let message = error.to_string();
        for word in words {
            assert!(message.contains(word), "{}: {call}: {message}", ty.name);
        }
    }
}

/// Credentials the warehouse refuses fail `test`, `list_tables` and `register` with
/// `Authentication` (not retried: a retry cannot fix a password), naming the user and never
/// showing the password.
pub(crate) async fn refused_credentials_are_an_auth_error(ty: &SourceType, config: Value) {
    let password = config["password"].as_str().unwrap_or_default().to_string();
    let user = config["user"].as_str().unwrap_or_default().to_string();
    assert!(!password.is_empty() && !user.is_empty(), "{config}");
    let source = build(ty, config);
    let errors = [
        ("test", source.test().await.err()),
        ("list_tables", source.list_tables().await.err()),
        ("register", register_error(&source).await),
    ];
    for (call, error) in errors {
        let error = error.unwrap_or_else(|| panic!("{}: {call} succeeded", ty.name));
        assert!(
            matches!(error, SourceError::Authentication { .. }),
            "{}: {call}: {error:?}",
            ty.name
        );
        assert_eq!(error.category(), ErrorCategory::ExternalAuth);
        assert!(!error.is_transient());
        let message = error.to_string();
        assert!(message.contains(&user), "{message}");
        assert!(
            !message.contains(&password),
            "the password leaked: {message}"
        );
    }
}

/// A model naming a table the source does not have is refused when it is planned, as the
/// user's error (`INVALID_ARGUMENT`) naming the table.
pub(crate) async fn a_missing_table_is_a_user_error(source: &Arc<dyn Source>) {
    const MISSING: &str = "retl_no_such_table";
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let error = session
        .plan(&format!("SELECT * FROM {MISSING}"))
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::InvalidArgument, "{error}");
    assert!(error.to_string().contains(MISSING), "{error}");
}

// ---- 3. read-only ---------------------------------------------------------------------------

/// Rows of `table`, counted through the source.
async fn count(source: &Arc<dyn Source>, table: &str) -> Value {
    let rows = json_rows(&run(source, &format!("SELECT count(*) AS n FROM {table}")).await);
    rows[0]["n"].clone()
}

/// Nothing writes through `source`: DML over its registered tables fails — refused by the
/// model planner, and failing also in a plain DataFusion session that has no such guard —
/// and `write_on_session` (a write sent on the source's own connection, as models use it;
/// `None` for a source without connections, such as files) fails; `table` (which has rows) is
/// unchanged afterwards.
pub(crate) async fn sessions_are_read_only(
    source: &Arc<dyn Source>,
    table: &str,
    write_on_session: Option<BoxFuture<'_, Result<(), String>>>,
) {
    let before = count(source, table).await;
    assert_ne!(before, json!(0), "{table} needs rows for this check");
    let statements = [
        format!("INSERT INTO {table} SELECT * FROM {table}"),
        format!("DELETE FROM {table}"),
    ];
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    for statement in &statements {
        let error = session.plan(statement).await.unwrap_err();
        assert_eq!(error.category(), ErrorCategory::InvalidArgument, "{error}");
        // Without the planner's guard, the table itself refuses.
        let ctx = SessionContext::new();
        source.register(&ctx).await.unwrap();
        let outcome = match ctx.sql(statement).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(outcome.is_err(), "{statement} went through");
    }
    if let Some(write) = write_on_session {
        assert!(
            write.await.is_err(),
            "a write on the source's own connection went through"
        );
    }
    assert_eq!(count(source, table).await, before, "{table} changed");
}

// ---- 4. reads cut short ---------------------------------------------------------------------

/// The `SourceError` a failed read becomes, as the engine's staging words it: the connector's
/// own error when a provider raised one, else the source's classification.
fn classified(source: &Arc<dyn Source>, error: &DataFusionError) -> Option<SourceError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(own) = e.downcast_ref::<SourceError>() {
            return Some(match own {
                SourceError::Unavailable { message } => SourceError::Unavailable {
                    message: message.clone(),
                },
                other => SourceError::Read {
                    message: other.to_string(),
                },
            });
        }
        current = e.source();
    }
    source.classify_read_error(error)
}

/// Runs `sql` (at least two batches, `total` rows), reads the first batch, calls `cut` (kill
/// the connection, truncate or overwrite the file), and reads on: the stream must end with an
/// error before `total` rows, and the source must classify that error. Returns it, so the
/// caller can check its category and words.
pub(crate) async fn a_read_cut_short_is_an_error<F>(
    source: &Arc<dyn Source>,
    sql: &str,
    total: usize,
    cut: F,
) -> SourceError
where
    F: Future<Output = ()>,
{
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let plan = session.plan(sql).await.unwrap();
    let mut stream = session.execute(plan).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let mut rows = first.num_rows();
    assert!(rows < total, "the first batch held every row ({rows})");
    cut.await;
    let error = loop {
        match stream.next().await {
            Some(Ok(batch)) => rows += batch.num_rows(),
            Some(Err(e)) => break e,
            None => panic!("the read ended without an error after {rows} of {total} rows"),
        }
    };
    assert!(rows < total, "{rows} of {total} rows and then {error}");
    classified(source, &error).unwrap_or_else(|| panic!("not classified by the source: {error}"))
}

// ---- 5. type table --------------------------------------------------------------------------

/// One row of a source's type table: a warehouse type as `types.rs` lists it, a value of it,
/// and what retl must make of them.
#[derive(Debug, Clone)]
pub(crate) struct TypeCase {
    /// Column name.
    pub(crate) column: &'static str,
    /// The column's declaration in the warehouse (its type, as `types.rs` lists it).
    pub(crate) declared: &'static str,
    /// A SQL literal of that type, stored in the first row.
    pub(crate) literal: &'static str,
    /// The Arrow type `types.rs` documents for it.
    pub(crate) arrow: DataType,
    /// The JSON value destinations receive for `literal`; `None` when the caller checks it.
    pub(crate) json: Option<Value>,
}

/// Shorthand for a [`TypeCase`].
pub(crate) fn case(
    column: &'static str,
    declared: &'static str,
    literal: &'static str,
    arrow: DataType,
    json: impl Into<Option<Value>>,
) -> TypeCase {
    TypeCase {
        column,
        declared,
        literal,
        arrow,
        json: json.into(),
    }
}

/// The SQL that creates `table` with one column per case (the first is the key, literal `1`)
/// and inserts two rows: the literals, and a row with key `2` and every other column NULL.
pub(crate) fn type_table_sql(table: &str, cases: &[TypeCase]) -> String {
    let columns: Vec<String> = cases
        .iter()
        .map(|c| {
            format!("{} {}", c.column, c.declared)
                .trim_end()
                .to_string()
        })
        .collect();
    let literals: Vec<&str> = cases.iter().map(|c| c.literal).collect();
    format!(
        "CREATE TABLE {table} ({});\nINSERT INTO {table} VALUES ({});\nINSERT INTO {table} ({}) VALUES (2);\n",
        columns.join(", "),
        literals.join(", "),
        cases[0].column
    )
}

/// Reads `table` (made by [`type_table_sql`]) through `source`: every column arrives as its
/// case's Arrow type, `list_tables` reports the same types, the first row holds each case's
/// JSON value and the second row NULL in every column but the key. Returns the rows as JSON.
pub(crate) async fn type_table_round_trip(
    source: &Arc<dyn Source>,
    table: &str,
    cases: &[TypeCase],
) -> Vec<Value> {
    let key = cases[0].column;
    let batches = run(source, &format!("SELECT * FROM {table} ORDER BY {key}")).await;
    let streamed: Vec<(String, String)> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let documented: Vec<(String, String)> = cases
        .iter()
        .map(|c| (c.column.to_string(), c.arrow.to_string()))
        .collect();
    assert_eq!(streamed, documented, "streamed types of {table}");

    let tables = source.list_tables().await.unwrap();
    let listed = tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("{table} is not listed"));
    let listed: Vec<(String, String)> = listed
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    assert_eq!(listed, documented, "listed types of {table}");

    let rows = json_rows(&batches);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for c in cases {
        if let Some(json) = &c.json {
            assert_eq!(
                &rows[0][c.column], json,
                "column {} ({})",
                c.column, c.declared
            );
        }
        if c.column != key {
            assert_eq!(
                rows[1][c.column],
                Value::Null,
                "column {} of the NULL row",
                c.column
            );
        }
    }
    rows
}
