//! Opening: `test` and `list_tables` against real files, each failure told apart, locks and WAL mode.

use super::*;

#[tokio::test]
async fn list_tables_shows_tables_and_views_with_columns() {
    let (_dir, path) = database(SAMPLE);
    let all = build(config(&path)).list_tables().await.unwrap();
    let names = table_labels(&all);
    assert_eq!(
        names,
        [
            "main.Users table",
            "main.active_users view",
            "main.orders table"
        ]
    );
    let users = &all[0];
    let columns = column_shapes(users);
    assert_eq!(
        columns,
        [
            ("id", "Int64", true),
            ("email", "Utf8", false),
            ("plan", "Utf8", true),
            ("active", "Boolean", true)
        ]
    );
    assert_eq!(all[2].columns[2].data_type, "Decimal128(12, 2)");
    assert!(users.location.ends_with("warehouse.db#Users"), "{users:?}");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test]
async fn test_reports_each_failure_distinctly() {
    let dir = tempfile::tempdir().unwrap();

    // Missing file: an error naming `path`, and no file is created.
    let missing = dir.path().join("missing.db");
    match build(config(&missing)).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "path");
            assert!(
                message.contains("no file") && message.contains("missing.db"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!missing.exists(), "retl must never create the database");
    // Registering for a model fails the same way.
    let error = run_error(&build(config(&missing)), "SELECT 1").await;
    assert!(
        error.contains("path") && error.contains("no file"),
        "{error}"
    );
    assert!(!missing.exists());

    // Not a SQLite database.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "these are notes, not a database; long enough to have a header\n".repeat(20),
    )
    .unwrap();
    match build(config(&text)).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "path");
            assert!(message.contains("not a SQLite database"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A directory.
    match build(config(dir.path())).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "path");
            assert!(message.contains("directory"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Unreadable. As root, chmod does not deny reads, so there is nothing to test.
    let (_db_dir, db) = database(SAMPLE);
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
        match build(config(&db)).test().await {
            Err(SourceError::PermissionDenied { message }) => {
                assert!(message.contains("may not read"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    // An empty database (a zero-byte file is one): passes with a warning.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let report = build(config(&empty)).test().await.unwrap();
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(report.warnings[0].contains("no tables"), "{report:?}");

    // Success: the version, the counts, and read-only.
    let report = build(config(&db)).test().await.unwrap();
    assert!(report.warnings.is_empty(), "{report:?}");
    let message = &report.message;
    assert!(
        message.contains("SQLite 3.")
            && message.contains("2 tables and 1 view;")
            && message.contains("read-only"),
        "{message}"
    );
}

#[tokio::test]
async fn a_database_locked_by_a_writer_is_a_clear_busy_error() {
    let (_dir, path) = database(SAMPLE);
    let writer = rusqlite::Connection::open(&path).unwrap();
    // Rollback-journal mode: an exclusive transaction keeps readers out.
    writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let source = build(with(config(&path), json!({"busy_timeout_ms": 200})));
    let started = Instant::now();
    let error = run_error(&source, "SELECT id FROM users").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        error.contains("locked") && error.contains("busy_timeout_ms = 200"),
        "{error}"
    );
    match source.test().await {
        Err(SourceError::Unavailable { message }) => assert!(message.contains("locked")),
        other => panic!("{other:?}"),
    }
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(run(&source, "SELECT id FROM users").await[0].num_rows(), 3);
}

#[tokio::test]
async fn in_wal_mode_readers_never_wait_for_a_writer() {
    let (_dir, path) = database(&format!("PRAGMA journal_mode=WAL; {SAMPLE}"));
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO users VALUES (4, 'd@example.com', NULL, 1);")
        .unwrap();
    let source = build(with(config(&path), json!({"busy_timeout_ms": 0})));
    // The committed snapshot, without waiting.
    assert_eq!(run(&source, "SELECT id FROM users").await[0].num_rows(), 3);
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(run(&source, "SELECT id FROM users").await[0].num_rows(), 4);
    let mode: String = writer
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
