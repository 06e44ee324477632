//! Config unit tests: defaults, errors naming the field, the catalog entry.

use super::*;

#[test]
fn config_defaults() {
    let config: PostgresConfig = serde_json::from_value(minimal()).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.port, 5432);
    assert_eq!(valid.sslmode, SslMode::Prefer);
    assert_eq!(valid.schema, "public");
    assert_eq!(valid.connect_timeout.as_millis(), 10_000);
    assert_eq!(valid.query_timeout.map(|t| t.as_millis()), Some(3_600_000));
    assert_eq!(valid.flavor, Flavor::Postgres);
    assert!(valid.password.is_none());

    let redshift: PostgresConfig =
        serde_json::from_value(with(minimal(), json!({"flavor": "redshift"}))).unwrap();
    let valid = redshift.validate().unwrap();
    assert_eq!(valid.port, 5439);
    assert_eq!(valid.sslmode, SslMode::Require);

    let full: PostgresConfig = serde_json::from_value(with(
        minimal(),
        json!({"port": 6543, "password": 1234, "sslmode": "verify-full", "schema": "Sales",
               "connect_timeout_ms": 500, "query_timeout_ms": 0}),
    ))
    .unwrap();
    let valid = full.validate().unwrap();
    assert_eq!(valid.port, 6543);
    assert_eq!(valid.password.as_ref().map(|p| p.expose()), Some("1234"));
    assert_eq!(valid.sslmode, SslMode::VerifyFull);
    assert_eq!(valid.schema, "Sales");
    assert_eq!(valid.query_timeout, None);
    assert!(!format!("{valid:?}").contains("1234"), "password redacted");
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
        build_error(with(minimal(), json!({"sslmode": "allow"})))
            .1
            .contains("allow")
    );
    assert_eq!(build_error(with(minimal(), json!({"host": ""}))).0, "host");
    assert_eq!(
        build_error(with(minimal(), json!({"host": "a b"}))).0,
        "host"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"database": "x=y"}))).0,
        "database"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"user": "it's"}))).0,
        "user"
    );
    assert_eq!(build_error(with(minimal(), json!({"port": 0}))).0, "port");
    assert_eq!(
        build_error(with(minimal(), json!({"schema": " "}))).0,
        "schema"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"connect_timeout_ms": 0}))).0,
        "connect_timeout_ms"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"query_timeout_ms": 5}))).0,
        "query_timeout_ms"
    );
    // A password may hold anything.
    build(with(minimal(), json!({"password": "a b'c\"d=e\\f"})));
}

#[test]
fn building_touches_no_network() {
    // Nothing listens on port 1; build must still succeed.
    let source = build(with(minimal(), json!({"port": 1})));
    assert!(format!("{source:?}").contains("PostgresSource"));
}

#[test]
fn sslrootcert_needs_a_verifying_mode_and_an_absolute_path() {
    let (field, message) = build_error(with(
        minimal(),
        json!({"sslmode": "require", "sslrootcert": "/etc/ca.pem"}),
    ));
    assert_eq!(field, "sslrootcert");
    assert!(message.contains("verify-ca or verify-full"), "{message}");
    let (field, message) = build_error(with(
        minimal(),
        json!({"sslmode": "verify-full", "sslrootcert": "ca.pem"}),
    ));
    assert_eq!(field, "sslrootcert");
    assert!(message.contains("absolute path"), "{message}");
    let valid: PostgresConfig = serde_json::from_value(with(
        minimal(),
        json!({"sslmode": "verify-ca", "sslrootcert": "/etc/ca.pem"}),
    ))
    .unwrap();
    let valid = valid.validate().unwrap();
    assert_eq!(valid.sslmode, SslMode::VerifyCa);
    assert_eq!(valid.sslrootcert.as_deref(), Some("/etc/ca.pem"));
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "postgres");
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
            "schema",
            "connect_timeout_ms",
            "query_timeout_ms",
            "flavor"
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
