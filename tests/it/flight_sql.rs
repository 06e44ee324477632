//! Arrow Flight SQL on the daemon's port through arrow-flight's `FlightSqlServiceClient`: the
//! catalog listings (staging and system tables, filters, schemas), statements over a staged model
//! and a system table, prepared statements, SqlInfo, and the refusals (writes, parameters,
//! unknown tables, missing or wrong tokens, unsupported commands).

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use arrow_flight::{FlightInfo, IpcMessage};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Schema;
use futures::TryStreamExt;
use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, TOKEN, customers, text_rows as rows};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

type Client = FlightSqlServiceClient<Channel>;

async fn connect(h: &Harness, token: Option<&str>) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(h.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(token) = token {
        client.set_token(token.to_string());
    }
    client
}

/// The gRPC status of a failed call.
fn status_of(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(status) => *status,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Every batch of every endpoint of `info`.
async fn fetch(client: &mut Client, info: FlightInfo) -> Result<Vec<RecordBatch>, tonic::Status> {
    let mut all = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream: FlightRecordBatchStream = client.do_get(ticket).await.map_err(status_of)?;
        all.extend(stream.try_collect::<Vec<_>>().await.map_err(status_of)?);
    }
    Ok(all)
}

/// Runs `sql` as a statement.
async fn query(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, tonic::Status> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(status_of)?;
    fetch(client, info).await
}

/// A warehouse of 25 customers, model `m` over it, a webhook mapping `up`, one sync: `m` is staged.
async fn staged(h: &Harness, hook: &WebhookEmulator) -> String {
    h.warehouse(&customers(25)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.create_mapping("up", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    run.id
}

#[tokio::test]
async fn flight_sql_lists_and_queries_the_staged_and_system_tables() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let run_id = staged(&h, &hook).await;
    let mut client = connect(&h, Some(TOKEN)).await;

    // Catalogs and schemas (with a pattern).
    let info = client.get_catalogs().await.unwrap();
    let catalogs = rows(&fetch(&mut client, info).await.unwrap());
    assert_eq!(catalogs, vec![vec!["retl".to_string()]]);
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas: Vec<String> = rows(&fetch(&mut client, info).await.unwrap())
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(schemas, ["information_schema", "retl", "staging"]);
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("retl".into()),
            db_schema_filter_pattern: Some("st%".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        rows(&fetch(&mut client, info).await.unwrap()),
        vec![vec!["retl".to_string(), "staging".to_string()]]
    );

    // Tables: the model's newest extract, its run, the system tables; filtered by type.
    let tables = |schema: Option<&str>, name: Option<&str>, types: &[&str], include: bool| {
        CommandGetTables {
            catalog: Some("retl".into()),
            db_schema_filter_pattern: schema.map(Into::into),
            table_name_filter_pattern: name.map(Into::into),
            table_types: types.iter().map(|t| t.to_string()).collect(),
            include_schema: include,
        }
    };
    let info = client
        .get_tables(tables(None, None, &["TABLE"], false))
        .await
        .unwrap();
    let listed: Vec<(String, String, String)> = rows(&fetch(&mut client, info).await.unwrap())
        .into_iter()
        .map(|r| (r[1].clone(), r[2].clone(), r[3].clone()))
        .collect();
    let table = |s: &str, t: &str| (s.to_string(), t.to_string(), "TABLE".to_string());
    for want in [
        table("staging", "m"),
        table("staging", &format!("m@{run_id}")),
        table("retl", "sync_runs"),
        table("retl", "run_errors"),
        table("retl", "mappings"),
    ] {
        assert!(listed.contains(&want), "{want:?} missing from {listed:?}");
    }
    assert!(
        listed.iter().all(|(s, _, _)| s != "information_schema"),
        "{listed:?}"
    );
    let info = client
        .get_tables(tables(
            Some("information%"),
            Some("tables"),
            &["VIEW"],
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        rows(&fetch(&mut client, info).await.unwrap()),
        vec![vec![
            "retl".to_string(),
            "information_schema".to_string(),
            "tables".to_string(),
            "VIEW".to_string()
        ]]
    );
    // With a name pattern and the Arrow schema of each table, IPC-encoded.
    let info = client
        .get_tables(tables(Some("staging"), Some("m"), &[], true))
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let encoded = batches[0].column(4).as_binary::<i32>().value(0).to_vec();
    let schema = Schema::try_from(IpcMessage(encoded.into())).unwrap();
    let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(fields, ["id", "email", "plan"]);
    let info = client.get_table_types().await.unwrap();
    assert_eq!(
        rows(&fetch(&mut client, info).await.unwrap()),
        vec![vec!["TABLE".to_string()], vec!["VIEW".to_string()]]
    );

    // Statements over the staged model and a system table.
    let count = rows(&query(&mut client, "SELECT count(*) FROM m").await.unwrap());
    assert_eq!(count, vec![vec!["25".to_string()]]);
    let email = rows(
        &query(&mut client, "SELECT email FROM staging.m WHERE id = 7")
            .await
            .unwrap(),
    );
    assert_eq!(email, vec![vec!["user7@example.com".to_string()]]);
    let runs = rows(
        &query(&mut client, "SELECT run_id, status FROM retl.sync_runs")
            .await
            .unwrap(),
    );
    assert_eq!(runs, vec![vec![run_id.clone(), "succeeded".to_string()]]);
    // No rows still carries the schema.
    let info = client
        .execute("SELECT id, email FROM m WHERE id < 0".into(), None)
        .await
        .unwrap();
    let planned = info.clone().try_decode_schema().unwrap();
    assert_eq!(planned.fields().len(), 2);
    assert!(rows(&fetch(&mut client, info).await.unwrap()).is_empty());

    // A prepared statement: its dataset schema, then its rows; no parameters.
    let mut prepared = client
        .prepare(
            "SELECT plan, count(*) AS n FROM m GROUP BY plan ORDER BY plan".into(),
            None,
        )
        .await
        .unwrap();
    let fields: Vec<String> = prepared
        .dataset_schema()
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(fields, ["plan", "n"]);
    assert!(prepared.parameter_schema().unwrap().fields().is_empty());
    let info = prepared.execute().await.unwrap();
    let counted = rows(&fetch(&mut client, info).await.unwrap());
    let total: u64 = counted.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 25, "{counted:?}");
    prepared.close().await.unwrap();

    // SqlInfo: the server's name, read-only.
    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let answered = fetch(&mut client, info).await.unwrap();
    assert_eq!(answered.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

#[tokio::test]
async fn flight_sql_refuses_writes_unknown_tables_parameters_and_bad_tokens() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    staged(&h, &hook).await;
    let mut client = connect(&h, Some(TOKEN)).await;

    for sql in [
        "DELETE FROM m",
        "INSERT INTO m VALUES (1, 'a', 'b')",
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE m",
        "SELECT 1; SELECT 2",
    ] {
        let err = query(&mut client, sql).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{sql}: {err:?}");
        assert!(err.message().contains("read-only"), "{sql}: {err:?}");
        let err = client
            .prepare(sql.into(), None)
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status_of(err).code(), Code::InvalidArgument, "{sql}");
    }
    let err = query(&mut client, "SELECT * FROM nope").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("nope") && err.message().contains("staging.m"),
        "{err:?}"
    );
    let err = query(&mut client, "SELEC 1").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = query(&mut client, "SELECT * FROM m WHERE id = $1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("parameters"), "{err:?}");

    // Updates and keys: UNIMPLEMENTED, saying why.
    let err = status_of(
        client
            .execute_update("DELETE FROM m".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("read-only"), "{err:?}");
    let err = status_of(
        client
            .get_primary_keys(CommandGetPrimaryKeys {
                catalog: None,
                db_schema: None,
                table: "m".into(),
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    // Tokens: none, wrong, and basic auth through the handshake.
    for token in [None, Some("wrong")] {
        let mut other = connect(&h, token).await;
        let err = status_of(other.get_catalogs().await.unwrap_err());
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
        assert!(err.message().contains("Bearer"), "{err:?}");
        assert!(!err.message().contains(TOKEN));
    }
    let mut basic = connect(&h, None).await;
    assert!(basic.handshake("dbeaver", "wrong").await.is_err());
    basic.handshake("dbeaver", TOKEN).await.unwrap();
    assert_eq!(basic.token().map(String::as_str), Some(TOKEN));
    let count = rows(&query(&mut basic, "SELECT count(*) FROM m").await.unwrap());
    assert_eq!(count, vec![vec!["25".to_string()]]);
}
