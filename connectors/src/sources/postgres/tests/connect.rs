//! Connecting: `test` and `list_tables` against a real server, each failure told apart, TLS modes.

use super::*;

#[tokio::test]
async fn test_reports_each_failure_distinctly() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();

    // Wrong password.
    let source = build(config_for(&pg, pg.user(), "wrong"));
    match source.test().await {
        Err(SourceError::Authentication { message }) => {
            assert!(
                message.contains("password authentication failed"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Missing database.
    let source = build(with(superuser_config(&pg), json!({"database": "nosuchdb"})));
    match source.test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "database");
            assert!(
                message.contains("nosuchdb") && message.contains("does not exist"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing listens on the port.
    let port = retl_testkit::free_port().unwrap();
    let source = build(with(superuser_config(&pg), json!({"port": port})));
    match source.test().await {
        Err(SourceError::Unavailable { message }) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("cannot connect"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Missing schema.
    let source = build(with(superuser_config(&pg), json!({"schema": "nope"})));
    match source.test().await {
        Err(SourceError::InvalidConfig { field, .. }) => assert_eq!(field, "schema"),
        other => panic!("{other:?}"),
    }

    // A role without USAGE on the schema.
    pg.create_user("outsider", "pw1").await.unwrap();
    let source = build(with(
        config_for(&pg, "outsider", "pw1"),
        json!({"schema": "sales"}),
    ));
    match source.test().await {
        Err(SourceError::PermissionDenied { message }) => {
            assert!(
                message.contains("GRANT USAGE ON SCHEMA \"sales\""),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Usage but no SELECT on any table of the schema.
    pg.psql("GRANT USAGE ON SCHEMA sales TO outsider")
        .await
        .unwrap();
    match source.test().await {
        Err(SourceError::PermissionDenied { message }) => {
            assert!(
                message.contains("orders") && message.contains("GRANT SELECT"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // And the same at query time.
    let error = run_error(&source, "SELECT * FROM orders").await;
    assert!(
        error.contains("may not read table sales.orders") && error.contains("GRANT SELECT"),
        "{error}"
    );

    // A read-only role: passes with no warnings.
    pg.create_user("reader", "pw2").await.unwrap();
    pg.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
        .await
        .unwrap();
    let report = build(config_for(&pg, "reader", "pw2"))
        .test()
        .await
        .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.message.contains("PostgreSQL") && report.message.contains("'reader'"),
        "{}",
        report.message
    );
    // A role that can write: a warning naming the tables.
    pg.create_user("writer", "pw3").await.unwrap();
    pg.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO writer; GRANT INSERT, DELETE ON users TO writer")
        .await
        .unwrap();
    let report = build(config_for(&pg, "writer", "pw3"))
        .test()
        .await
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("public.users"),
        "{:?}",
        report.warnings
    );
    // The superuser: a warning too.
    let report = build(superuser_config(&pg)).test().await.unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("superuser")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn list_tables_shows_what_the_user_can_read() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let all = build(superuser_config(&pg)).list_tables().await.unwrap();
    let names = table_labels(&all);
    assert_eq!(
        names,
        [
            "public.active_users view",
            "public.users table",
            "sales.orders table"
        ]
    );
    let users = &all[1];
    let columns = column_shapes(users);
    assert_eq!(
        columns,
        [
            ("id", "Int64", false),
            ("email", "Utf8", false),
            ("plan", "Utf8", true),
            ("active", "Boolean", true)
        ]
    );
    assert_eq!(all[2].columns[2].data_type, "Decimal128(12, 2)");

    pg.create_user("reader", "pw").await.unwrap();
    pg.psql("GRANT SELECT ON users TO reader").await.unwrap();
    let some = build(config_for(&pg, "reader", "pw"))
        .list_tables()
        .await
        .unwrap();
    let names: Vec<&str> = some.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["users"]);
}

#[tokio::test]
async fn tls_modes_against_a_server_without_tls() {
    // The testkit's server has no certificate: `prefer` falls back to plain TCP, `require`
    // and `verify-full` must refuse to go on without TLS, and say why.
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let prefer = build(with(superuser_config(&pg), json!({"sslmode": "prefer"})));
    prefer.test().await.unwrap();
    for mode in ["require", "verify-full"] {
        let source = build(with(superuser_config(&pg), json!({"sslmode": mode})));
        match source.test().await {
            Err(SourceError::Unavailable { message }) => {
                assert!(
                    message.contains(&format!("sslmode={mode}")) && message.contains("TLS"),
                    "{mode}: {message}"
                );
            }
            other => panic!("{mode}: expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tls_modes_against_a_server_with_a_private_certificate_authority() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let ca = pg.enable_tls().await.unwrap();
    let ca = ca.display().to_string();
    // The certificate is not checked: TLS with any certificate.
    for mode in ["prefer", "require"] {
        let source = build(with(superuser_config(&pg), json!({"sslmode": mode})));
        source.test().await.unwrap();
    }
    // Checked against the system roots only: the private authority is unknown.
    let source = build(with(
        superuser_config(&pg),
        json!({"sslmode": "verify-full"}),
    ));
    match source.test().await {
        Err(SourceError::Unavailable { message }) => {
            assert!(
                message.contains("certificate") && message.contains("sslrootcert"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // With the authority: verified (the certificate names 127.0.0.1).
    for mode in ["verify-ca", "verify-full"] {
        let config = with(
            superuser_config(&pg),
            json!({"sslmode": mode, "sslrootcert": ca}),
        );
        let source = build(config);
        source.test().await.unwrap();
        let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM users").await);
        assert!(rows[0]["n"].as_i64().unwrap_or_default() > 0, "{rows:?}");
    }
    // A missing authority file is the config's fault.
    let source = build(with(
        superuser_config(&pg),
        json!({"sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.pem"}),
    ));
    match source.test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "sslrootcert");
            assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}
