//! Reading: registration, whole-query pushdown, name resolution, timeouts, and how a failed read is classified.

use super::*;

#[test]
fn a_lost_connection_is_told_from_a_failing_statement_by_its_words() {
    use crate::sources::postgres::errors::lost_connection;
    // As the table providers' row stream words them (the driver error is text only).
    assert!(lost_connection(
        "Execution error: Failed to fetch batch: Query execution failed.\nconnection closed\nFor details, refer to the PostgreSQL manual: https://www.postgresql.org/docs/17/index.html"
    ));
    assert!(lost_connection(
        "db error: FATAL: terminating connection due to administrator command"
    ));
    assert!(!lost_connection(
        "db error: ERROR: canceling statement due to statement timeout"
    ));
    assert!(!lost_connection("db error: ERROR: division by zero"));
}

#[test]
fn a_read_error_of_the_stream_is_classified_as_unavailable_only_when_the_connection_went_away() {
    let source = build(minimal());
    let lost = datafusion::error::DataFusionError::Execution(
        "Failed to fetch batch: Query execution failed.\nconnection closed\nFor details, refer to the PostgreSQL manual: https://www.postgresql.org/docs/17/index.html".to_string(),
    );
    match source.classify_read_error(&lost) {
        Some(SourceError::Unavailable { message }) => {
            assert!(message.contains("127.0.0.1:5432"), "{message}");
            assert!(
                message.contains("while reading (connection closed)"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let failing = datafusion::error::DataFusionError::Execution(
        "Failed to fetch batch: Query execution failed.\ndb error: ERROR: division by zero"
            .to_string(),
    );
    assert!(source.classify_read_error(&failing).is_none());
}

#[tokio::test]
async fn registers_and_queries_tables() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let source = build(superuser_config(&pg));

    let rows = json_rows(
        &run(
            &source,
            "SELECT id, email FROM users WHERE id >= 2 ORDER BY id",
        )
        .await,
    );
    assert_eq!(
        rows,
        [
            json!({"id": 2, "email": "b@example.com"}),
            json!({"id": 3, "email": "c@example.com"})
        ]
    );
    // A schema-qualified table, a view, a join and an aggregate.
    let sql = "SELECT u.id, u.email, sum(o.amount) AS total, count(*) AS orders \
               FROM active_users u JOIN sales.orders o ON o.user_id = u.id \
               GROUP BY u.id, u.email ORDER BY u.id";
    let rows = json_rows(&run(&source, sql).await);
    assert_eq!(
        rows,
        [
            json!({"id": 1, "email": "a@example.com", "total": "25.00", "orders": 2}),
            json!({"id": 2, "email": "b@example.com", "total": "100.00", "orders": 1})
        ]
    );
    // Unknown tables are the planner's usual error.
    let error = run_error(&source, "SELECT * FROM nope").await;
    assert!(
        error.contains("nope") && error.contains("not found"),
        "{error}"
    );
    let error = run_error(&source, "SELECT * FROM nope.users").await;
    assert!(error.contains("not found"), "{error}");
    // An empty result.
    assert!(json_rows(&run(&source, "SELECT id FROM users WHERE id > 100").await).is_empty());
}

#[tokio::test]
async fn a_model_over_one_database_is_pushed_down_whole() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let source = build(superuser_config(&pg));
    let sql = "SELECT u.id, count(*) AS orders FROM users u JOIN sales.orders o \
               ON o.user_id = u.id WHERE u.active GROUP BY u.id ORDER BY u.id LIMIT 5";
    let plan = explain(&source, sql).await;
    println!("{plan}");
    // One federated scan that carries the whole statement; no DataFusion join or aggregate.
    assert!(plan.contains("VirtualExecutionPlan"), "{plan}");
    assert!(
        plan.contains("JOIN") && plan.contains("GROUP BY") && plan.contains("LIMIT"),
        "{plan}"
    );
    assert!(!plan.contains("HashJoinExec"), "{plan}");
    assert!(!plan.contains("AggregateExec"), "{plan}");
    let rows = json_rows(&run(&source, sql).await);
    assert_eq!(
        rows,
        [json!({"id": 1, "orders": 2}), json!({"id": 2, "orders": 1})]
    );
}

#[tokio::test]
async fn bare_names_resolve_in_the_configured_schema() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let source = build(with(superuser_config(&pg), json!({"schema": "sales"})));
    let rows = json_rows(&run(&source, "SELECT id FROM orders ORDER BY id").await);
    assert_eq!(rows.len(), 3);
    let rows = json_rows(&run(&source, "SELECT id FROM public.users ORDER BY id").await);
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn query_timeout_cancels_slow_queries() {
    let pg = server().await;
    pg.psql("CREATE VIEW slow AS SELECT 1 AS id, pg_sleep(2)::text AS nap")
        .await
        .unwrap();
    let source = build(with(
        superuser_config(&pg),
        json!({"query_timeout_ms": 200}),
    ));
    let started = std::time::Instant::now();
    let error = run_error(&source, "SELECT id FROM slow").await;
    assert!(started.elapsed() < std::time::Duration::from_millis(1_800));
    assert!(error.contains("statement timeout"), "{error}");
}
