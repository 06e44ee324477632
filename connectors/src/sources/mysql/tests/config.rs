//! Config unit tests: defaults, errors naming the field, the catalog entry.

use super::*;

#[test]
fn config_defaults() {
    let config: MySqlConfig = serde_json::from_value(minimal()).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.port, 3306);
    assert_eq!(valid.sslmode, SslMode::Preferred);
    assert_eq!(valid.connect_timeout.as_millis(), 10_000);
    assert_eq!(valid.query_timeout.map(|t| t.as_millis()), Some(3_600_000));
    assert!(valid.password.is_none());
    assert!(valid.sslrootcert.is_none());

    let full: MySqlConfig = serde_json::from_value(with(
        minimal(),
        json!({"port": 3307, "password": 1234, "sslmode": "verify_identity",
               "sslrootcert": "/etc/ssl/ca.pem", "connect_timeout_ms": 500,
               "query_timeout_ms": 0}),
    ))
    .unwrap();
    let valid = full.validate().unwrap();
    assert_eq!(valid.port, 3307);
    assert_eq!(valid.password.as_ref().map(|p| p.expose()), Some("1234"));
    assert_eq!(valid.sslmode, SslMode::VerifyIdentity);
    assert_eq!(valid.sslrootcert.as_deref(), Some("/etc/ssl/ca.pem"));
    assert_eq!(valid.query_timeout, None);
    assert_eq!(valid.address(), "127.0.0.1:3307");
    assert!(!format!("{valid:?}").contains("1234"), "password redacted");
    for mode in ["disabled", "preferred", "required", "verify_identity"] {
        let config: MySqlConfig =
            serde_json::from_value(with(minimal(), json!({ "sslmode": mode }))).unwrap();
        assert_eq!(config.validate().unwrap().sslmode.as_str(), mode);
    }
}

#[test]
fn config_errors_name_the_field() {
    assert_eq!(build_error(json!({"host": "h", "database": "d"})).0, "user");
    assert!(
        build_error(with(minimal(), json!({"hots": "x"})))
            .1
            .contains("hots")
    );
    assert!(
        build_error(with(minimal(), json!({"sslmode": "verify-full"})))
            .1
            .contains("verify-full")
    );
    assert_eq!(build_error(with(minimal(), json!({"host": ""}))).0, "host");
    assert_eq!(
        build_error(with(minimal(), json!({"host": "db.example.com/analytics"}))).0,
        "host"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"host": "a b"}))).0,
        "host"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"database": " "}))).0,
        "database"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"database": "x".repeat(65)}))).0,
        "database"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"user": "a\nb"}))).0,
        "user"
    );
    assert_eq!(build_error(with(minimal(), json!({"port": 0}))).0, "port");
    assert_eq!(
        build_error(with(minimal(), json!({"sslrootcert": "/ca.pem"}))).0,
        "sslrootcert"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"connect_timeout_ms": 0}))).0,
        "connect_timeout_ms"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"query_timeout_ms": 5}))).0,
        "query_timeout_ms"
    );
    // User, database and password may hold characters a URL would need escaped.
    build(with(
        minimal(),
        json!({"user": "o'brien@x", "database": "my-db", "password": "a b'c\"d=e\\f@/:?#%"}),
    ));
}

#[test]
fn building_touches_no_network() {
    // Nothing listens on port 1; build must still succeed.
    let source = build(with(minimal(), json!({"port": 1})));
    assert!(format!("{source:?}").contains("MySqlSource"));
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "mysql");
    let names: Vec<_> = ty.config.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "host",
            "port",
            "database",
            "user",
            "password",
            "sslmode",
            "sslrootcert",
            "connect_timeout_ms",
            "query_timeout_ms"
        ]
    );
    let secrets: Vec<_> = ty
        .config
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect();
    assert_eq!(secrets, ["password"]);
}
