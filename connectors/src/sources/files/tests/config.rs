//! Config unit tests: table names, validation, relative paths, mistyped fields, the catalog entry.

use super::*;

#[test]
fn default_table_names() {
    let name = |p: &str| default_table_name(Path::new(p));
    assert_eq!(name("/data/users.parquet"), "users");
    assert_eq!(name("/data/Users 2024.csv"), "users_2024");
    assert_eq!(name("/data/exports/"), "exports");
    assert_eq!(name("/data/2024-events.jsonl"), "t_2024_events");
    assert_eq!(name("/data/archive.v2"), "archive_v2");
    assert_eq!(name("/"), "data");
}

#[test]
fn config_validation() {
    assert_eq!(build_error(json!({})).0, "path");
    assert_eq!(build_error(json!({"path": ""})).0, "path");
    assert_eq!(
        build_error(json!({"path": "/x", "format": "xml"})).0,
        "format"
    );
    assert_eq!(
        build_error(json!({"path": "/x", "unknown": 1})).0,
        "unknown"
    );
    assert_eq!(
        build_error(json!({"path": "/x", "table": "Users"})).0,
        "table"
    );
    assert_eq!(build_error(json!({"path": "/x", "table": "1x"})).0, "table");
    assert_eq!(
        build_error(json!({"path": "/x.csv", "delimiter": ",,"})).0,
        "delimiter"
    );
    assert_eq!(
        build_error(json!({"path": "/x", "format": "parquet", "has_header": false})).0,
        "has_header"
    );
    // Building touches no file.
    build(json!({"path": "/does/not/exist.csv"}));
    let config: FilesConfig =
        serde_json::from_value(json!({"path": "/x", "format": "jsonl", "delimiter": "tab"}))
            .unwrap();
    assert_eq!(config.format, Some(FileFormat::Ndjson));
    assert!(config.validate().is_err(), "delimiter with ndjson");
    let config: FilesConfig =
        serde_json::from_value(json!({"path": "/x", "delimiter": "tab"})).unwrap();
    assert_eq!(config.validate().unwrap().delimiter, Some(b'\t'));
}

#[test]
fn a_relative_path_is_rejected_naming_the_fix() {
    for relative in ["data/users.parquet", "./users.csv", "users.csv", "../x"] {
        let (field, message) = build_error(json!({"path": relative}));
        assert_eq!(field, "path");
        assert!(
            message.contains("relative")
                && message.contains("absolute path")
                && message.contains(relative),
            "{message}"
        );
    }
}

#[test]
fn a_mistyped_field_is_named_with_its_expected_form() {
    let error = match (source_type().build)(&json!({"path": 42})) {
        Err(e) => e.to_string(),
        Ok(source) => panic!("{source:?}"),
    };
    assert_eq!(
        error,
        "invalid source config field 'path': must be a text value (absolute path of a Parquet, CSV or NDJSON file, or of a directory of such files (subdirectories are ignored), on the daemon's machine), not the number 42"
    );
    let (field, message) = build_error(json!({"path": "/x.csv", "has_header": "yes"}));
    assert_eq!(field, "has_header");
    assert!(
        message.starts_with("must be true or false (CSV only: ")
            && message.ends_with("not the text \"yes\""),
        "{message}"
    );
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "files");
    let names: Vec<_> = ty.config.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["path", "format", "table", "has_header", "delimiter"]
    );
    assert!(ty.config.iter().all(|f| !f.secret));
}
