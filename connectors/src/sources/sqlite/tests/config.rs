//! Config unit tests: defaults, errors naming the field, the catalog entry.

use super::*;

#[test]
fn config_defaults() {
    let config: SqliteConfig = serde_json::from_value(json!({"path": "/data/app.db"})).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.path, PathBuf::from("/data/app.db"));
    assert_eq!(valid.busy_timeout, Duration::from_millis(5_000));
    assert_eq!(valid.query_timeout, Some(Duration::from_millis(3_600_000)));

    let config: SqliteConfig = serde_json::from_value(
        json!({"path": "/data/app.db", "busy_timeout_ms": 0, "query_timeout_ms": 0}),
    )
    .unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.busy_timeout, Duration::ZERO);
    assert_eq!(valid.query_timeout, None);
}

#[test]
fn config_errors_name_the_field() {
    assert_eq!(build_error(json!({})).0, "path");
    let (field, message) = build_error(json!({"path": "/a.db", "file": "x"}));
    assert_eq!(field, "file");
    assert!(message.contains("file"), "{message}");
    let (field, message) = build_error(json!({"path": ""}));
    assert_eq!(field, "path");
    assert!(message.contains("absolute"), "{message}");
    let (field, message) = build_error(json!({"path": "data/app.db"}));
    assert_eq!(field, "path");
    assert!(
        message.contains("relative") && message.contains("data/app.db"),
        "{message}"
    );
    assert_eq!(build_error(json!({"path": ":memory:"})).0, "path");
    assert_eq!(build_error(json!({"path": "file:/a.db?mode=rw"})).0, "path");
    assert_eq!(
        build_error(json!({"path": "/a.db", "busy_timeout_ms": 10_000_000})).0,
        "busy_timeout_ms"
    );
    assert_eq!(
        build_error(json!({"path": "/a.db", "query_timeout_ms": 5})).0,
        "query_timeout_ms"
    );
    let (field, message) = build_error(json!({"path": "/a.db", "query_timeout_ms": "soon"}));
    assert_eq!(field, "query_timeout_ms");
    assert!(
        message.starts_with("must be a whole number, 0 or more (")
            && message.ends_with("not the text \"soon\""),
        "{message}"
    );
}

#[test]
fn building_touches_no_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet.db");
    let source = build(json!({"path": path.display().to_string()}));
    assert!(format!("{source:?}").contains("SqliteSource"));
    assert!(!path.exists());
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "sqlite");
    let names: Vec<_> = ty.config.iter().map(|f| f.name).collect();
    assert_eq!(names, ["path", "busy_timeout_ms", "query_timeout_ms"]);
    assert!(ty.config.iter().all(|f| !f.secret));
    assert!(ty.config.iter().filter(|f| f.required).count() == 1);
}
