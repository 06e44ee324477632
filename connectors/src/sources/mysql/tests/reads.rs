//! Reading: registration, whole-query pushdown, timeouts, and a connection lost mid-read.

use super::*;

#[tokio::test]
async fn registers_and_queries_tables() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    let source = build(root_config(&db));

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
    // A table of another database, a view, a join and an aggregate.
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
    // Computed columns keep the model's names and types; string literals keep their quotes.
    let rows = json_rows(
        &run(
            &source,
            "SELECT id, upper(email) AS shout, id * 2 AS twice, plan = 'free \"x\"' AS quoted \
             FROM users WHERE id = 2",
        )
        .await,
    );
    assert_eq!(
        rows,
        [json!({"id": 2, "shout": "B@EXAMPLE.COM", "twice": 4, "quoted": true})]
    );
    // Unknown tables are the planner's usual error.
    let error = run_error(&source, "SELECT * FROM nope").await;
    assert!(
        error.contains("nope") && error.contains("not found"),
        "{error}"
    );
    let error = run_error(&source, "SELECT * FROM nodb.users").await;
    assert!(error.contains("not found"), "{error}");
    // An empty result.
    assert!(json_rows(&run(&source, "SELECT id FROM users WHERE id > 100").await).is_empty());
}

#[tokio::test]
async fn a_model_over_one_database_is_pushed_down_whole() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    let source = build(root_config(&db));
    let sql = "SELECT u.id, count(*) AS orders FROM users u JOIN sales.orders o \
               ON o.user_id = u.id WHERE u.active = 1 GROUP BY u.id ORDER BY u.id LIMIT 5";
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
async fn query_timeout_interrupts_slow_queries() {
    let db = server().await;
    db.sql("CREATE VIEW slow AS SELECT 1 AS id, SLEEP(3) AS nap")
        .await
        .unwrap();
    let source = build(with(root_config(&db), json!({"query_timeout_ms": 300})));
    let started = std::time::Instant::now();
    let error = run_error(&source, "SELECT id, nap FROM slow").await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error.contains("query_timeout_ms (300 ms)") && error.contains("1969"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_killed_mid_read_fails_the_read() {
    let db = Arc::new(server().await);
    db.sql("CREATE VIEW big AS SELECT seq AS id, REPEAT('x', 200) AS pad FROM seq_1_to_300000")
        .await
        .unwrap();
    let source = build(root_config(&db));
    let error = crate::sources::conformance::a_read_cut_short_is_an_error(
        &source,
        "SELECT id, pad FROM big",
        300_000,
        async {
            assert!(db.kill_connections().await.unwrap() >= 1);
        },
    )
    .await;
    assert!(
        matches!(error, SourceError::Unavailable { .. }) && error.is_transient(),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("127.0.0.1") && (text.contains("lost") || text.contains("ended")),
        "{text}"
    );
    // The next read works on fresh connections.
    let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM big").await);
    assert_eq!(rows, [json!({"n": 300000})]);
}
