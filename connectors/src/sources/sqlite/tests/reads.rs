//! Reading: registration, whole-query pushdown, streaming in bounded batches, timeouts, and files changed mid-read.

use super::*;

#[tokio::test]
async fn registers_and_queries_tables() {
    let (_dir, path) = database(SAMPLE);
    let source = build(config(&path));
    // `Users` is found as `users` (SQLite names are case-insensitive), and as `main.users`.
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
    let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM main.users").await);
    assert_eq!(rows, [json!({"n": 3})]);
    // A view, a join and an aggregate over decimals: SQLite sums floats, the exact cents come
    // back.
    let sql = "SELECT u.id, u.email, sum(o.amount) AS total, count(*) AS orders \
               FROM active_users u JOIN orders o ON o.user_id = u.id \
               GROUP BY u.id, u.email ORDER BY u.id";
    let rows = json_rows(&run(&source, sql).await);
    assert_eq!(
        rows,
        [
            json!({"id": 1, "email": "a@example.com", "total": "25.00", "orders": 2}),
            json!({"id": 2, "email": "b@example.com", "total": "100.00", "orders": 1})
        ]
    );
    let error = run_error(&source, "SELECT * FROM nope").await;
    assert!(
        error.contains("nope") && error.contains("not found"),
        "{error}"
    );
    let error = run_error(&source, "SELECT * FROM other.users").await;
    assert!(error.contains("other"), "{error}");
    assert!(json_rows(&run(&source, "SELECT id FROM users WHERE id > 100").await).is_empty());
}

#[tokio::test]
async fn a_model_over_one_database_is_pushed_down_whole() {
    let (_dir, path) = database(SAMPLE);
    let source = build(config(&path));
    let sql = "SELECT u.id, count(*) AS orders FROM users u JOIN orders o \
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
async fn reading_never_changes_the_file() {
    let (_dir, path) = database(SAMPLE);
    let before = std::fs::read(&path).unwrap();
    let source = build(config(&path));
    source.test().await.unwrap();
    source.list_tables().await.unwrap();
    run(&source, "SELECT * FROM users").await;
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let siblings: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(siblings, ["warehouse.db"], "no journal or WAL files");
}

/// A table of `rows` rows of about 100 bytes.
fn big_database(rows: u64) -> (tempfile::TempDir, PathBuf) {
    database(&format!(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO events SELECT x, printf('%.90d', x) FROM c;"
    ))
}

/// Starts the model `SELECT id, payload FROM events`, reads its first batch, calls `meddle`,
/// then reads the rest: (rows read, the error if the stream failed).
async fn meddle_mid_read(
    source: &Arc<dyn Source>,
    meddle: impl FnOnce(),
) -> (usize, Option<String>) {
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let plan = session
        .plan("SELECT id, payload FROM events")
        .await
        .unwrap();
    let mut stream = session.execute(plan).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let mut rows = first.num_rows();
    meddle();
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(batch) => rows += batch.num_rows(),
            Err(e) => return (rows, Some(e.to_string())),
        }
    }
    (rows, None)
}

#[tokio::test]
async fn a_file_overwritten_mid_read_fails_the_read_instead_of_ending_it_short() {
    const ROWS: u64 = 200_000;
    let (_dir, path) = big_database(ROWS);
    let source = build(config(&path));
    let error = crate::sources::conformance::a_read_cut_short_is_an_error(
        &source,
        "SELECT id, payload FROM events",
        ROWS as usize,
        async {
            // Overwritten in place without SQLite's locking (as `cp other.db warehouse.db` does).
            std::fs::write(&path, vec![0_u8; 64 * 1024]).unwrap();
        },
    )
    .await;
    // The file may be complete again by the next try: the engine starts the extract again.
    assert!(
        matches!(error, SourceError::Unavailable { .. }) && error.is_transient(),
        "{error:?}"
    );
    let error = error.to_string();
    assert!(
        error.contains("changed or became unreadable while it was being read")
            && error.contains("warehouse.db"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_deleted_or_replaced_mid_read_still_yields_the_whole_snapshot() {
    const ROWS: u64 = 50_000;
    let (_dir, path) = big_database(ROWS);
    let source = build(config(&path));
    let (replacement_dir, replacement) =
        database("CREATE TABLE events (id INTEGER, payload TEXT);");
    let target = path.clone();
    let (rows, error) = meddle_mid_read(&source, move || {
        std::fs::rename(&replacement, &target).unwrap();
    })
    .await;
    drop(replacement_dir);
    assert_eq!(error, None);
    assert_eq!(rows as u64, ROWS);
    // The next read sees the new (empty) file.
    assert!(run(&source, "SELECT id FROM events").await.is_empty());
}

#[tokio::test]
async fn query_timeout_interrupts_slow_queries() {
    let (_dir, path) = database(
        "CREATE VIEW slow AS WITH RECURSIVE c(x) AS
           (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
         SELECT max(x) AS n FROM c;",
    );
    let source = build(with(config(&path), json!({"query_timeout_ms": 200})));
    let started = Instant::now();
    let error = run_error(&source, "SELECT n FROM slow").await;
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    assert!(error.contains("query_timeout_ms = 200"), "{error}");
}

#[tokio::test]
async fn rows_stream_in_bounded_batches() {
    let (_dir, path) = big_database(20_000);
    let source = build(config(&path));
    let batches = run(&source, "SELECT id, payload FROM events").await;
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        20_000
    );
    assert!(batches.len() >= 3, "{} batches", batches.len());
    assert!(batches.iter().all(|b| b.num_rows() <= 8_192));
}
