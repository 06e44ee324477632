//! Connecting: `test` and `list_tables` against a real server, each failure told apart, TLS modes.

use super::*;

fn expect_error(result: Result<impl std::fmt::Debug, SourceError>) -> SourceError {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn test_reports_each_failure_distinctly() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();

    // Wrong password.
    db.create_user("reader", "pw2").await.unwrap();
    db.grant_select("reader", db.database()).await.unwrap();
    let source = build(config_for(&db, "reader", "wrong"));
    match expect_error(source.test().await) {
        SourceError::Authentication { message } => {
            assert!(
                message.contains("access denied for user 'reader'") && message.contains("1045"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Missing database.
    let source = build(with(root_config(&db), json!({"database": "nosuchdb"})));
    match expect_error(source.test().await) {
        SourceError::InvalidConfig { field, message } => {
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
    let source = build(with(root_config(&db), json!({"port": port})));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("cannot connect"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A host that does not resolve.
    let source = build(with(
        root_config(&db),
        json!({"host": "no-such-host.invalid", "connect_timeout_ms": 3000}),
    ));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            assert!(message.contains("no-such-host.invalid"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // TLS required, but the server offers none.
    let source = build(with(root_config(&db), json!({"sslmode": "required"})));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            assert!(message.contains("does not offer TLS"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A user without any privilege on the database.
    db.create_user("outsider", "pw1").await.unwrap();
    let source = build(config_for(&db, "outsider", "pw1"));
    match expect_error(source.test().await) {
        SourceError::PermissionDenied { message } => {
            assert!(
                message.contains("GRANT SELECT ON `retl_test`.* TO 'outsider'@'%'"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A user that may insert into a table but read nothing.
    db.sql("GRANT INSERT ON retl_test.users TO 'outsider'@'%'")
        .await
        .unwrap();
    match expect_error(source.test().await) {
        SourceError::PermissionDenied { message } => {
            assert!(
                message.contains("users") && message.contains("GRANT SELECT"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A user that may read one table: another one is denied at query time, naming the grant.
    db.create_user("partial", "pw4").await.unwrap();
    db.sql("GRANT SELECT ON retl_test.users TO 'partial'@'%'")
        .await
        .unwrap();
    let source = build(config_for(&db, "partial", "pw4"));
    let report = source.test().await.unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let error = run_error(&source, "SELECT * FROM active_users").await;
    assert!(
        error.contains("may not read table retl_test.active_users")
            && error.contains("GRANT SELECT ON `retl_test`.`active_users` TO 'partial'@'%'"),
        "{error}"
    );
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    match session.plan("SELECT * FROM sales.orders").await {
        Err(retl_engine::error::Error::Source(SourceError::PermissionDenied { message })) => {
            assert!(message.contains("`sales`.`orders`"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // A read-only user: passes with no warnings.
    let report = build(config_for(&db, "reader", "pw2"))
        .test()
        .await
        .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.message.contains("MariaDB") && report.message.contains("'reader@%'"),
        "{}",
        report.message
    );
    // A user that can write: a warning naming the privileges and the table.
    db.create_user("writer", "pw3").await.unwrap();
    db.sql(
        "GRANT SELECT ON retl_test.* TO 'writer'@'%'; \
         GRANT INSERT, DELETE ON retl_test.users TO 'writer'@'%'",
    )
    .await
    .unwrap();
    let report = build(config_for(&db, "writer", "pw3"))
        .test()
        .await
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let warning = &report.warnings[0];
    assert!(
        warning.contains("retl_test.users")
            && warning.contains("INSERT")
            && warning.contains("DELETE"),
        "{warning}"
    );
    // Root: a warning too.
    let report = build(root_config(&db)).test().await.unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("SUPER")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn list_tables_shows_what_the_user_can_read() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    let all = build(root_config(&db)).list_tables().await.unwrap();
    let names = table_labels(&all);
    assert_eq!(
        names,
        [
            "retl_test.active_users view",
            "retl_test.users table",
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
            ("active", "Int8", true)
        ]
    );
    assert_eq!(all[2].columns[2].data_type, "Decimal128(12, 2)");

    db.create_user("reader", "pw").await.unwrap();
    db.sql("GRANT SELECT ON retl_test.users TO 'reader'@'%'; GRANT INSERT ON sales.orders TO 'reader'@'%'")
        .await
        .unwrap();
    let some = build(config_for(&db, "reader", "pw"))
        .list_tables()
        .await
        .unwrap();
    let names: Vec<&str> = some.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["users"]);
}

/// The TLS cipher of the connection a model runs on, read through the source (empty over
/// plain TCP).
async fn model_cipher(source: &Arc<dyn Source>) -> String {
    let rows = json_rows(
        &run(
            source,
            "SELECT \"VARIABLE_VALUE\" AS cipher FROM information_schema.SESSION_STATUS \
             WHERE \"VARIABLE_NAME\" = 'SSL_CIPHER'",
        )
        .await,
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["cipher"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn tls_modes_against_a_server_with_a_private_certificate_authority() {
    let mut db = server().await;
    db.sql(SAMPLE).await.unwrap();
    // Without TLS on the server: preferred falls back to plain TCP.
    let plain = build(with(root_config(&db), json!({"sslmode": "preferred"})));
    plain.test().await.unwrap();
    assert_eq!(model_cipher(&plain).await, "");
    drop(plain);

    let ca = db.enable_tls().await.unwrap();
    let ca = ca.display().to_string();
    // A user the server lets in over TLS only.
    db.sql("CREATE USER 'tls_only'@'%' IDENTIFIED BY 'pw' REQUIRE SSL; GRANT SELECT ON retl_test.* TO 'tls_only'@'%'")
        .await
        .unwrap();
    match expect_error(build(config_for(&db, "tls_only", "pw")).test().await) {
        SourceError::Authentication { message } => assert!(message.contains("1045"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The certificate is not checked: TLS with any certificate.
    for mode in ["preferred", "required"] {
        let source = build(with(
            config_for(&db, "tls_only", "pw"),
            json!({ "sslmode": mode }),
        ));
        source.test().await.unwrap();
        let cipher = model_cipher(&source).await;
        assert!(!cipher.is_empty(), "{mode}: no TLS cipher");
    }
    // Checked against the system roots only: the private authority is unknown.
    let source = build(with(
        root_config(&db),
        json!({"sslmode": "verify_identity"}),
    ));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            eprintln!("{message}");
            assert!(
                message.contains("certificate") && message.contains("sslrootcert"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // With the authority: verified (the certificate names 127.0.0.1), end to end.
    let source = build(with(
        config_for(&db, "tls_only", "pw"),
        json!({"sslmode": "verify_identity", "sslrootcert": ca}),
    ));
    source.test().await.unwrap();
    let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM users").await);
    assert_eq!(rows[0]["n"].as_i64(), Some(3), "{rows:?}");
    assert!(!model_cipher(&source).await.is_empty());
    // A missing authority file is the config's fault.
    let source = build(with(
        root_config(&db),
        json!({"sslmode": "verify_identity", "sslrootcert": "/nonexistent/ca.pem"}),
    ));
    match expect_error(source.test().await) {
        SourceError::InvalidConfig { field, message } => {
            eprintln!("{message}");
            assert_eq!(field, "sslrootcert");
            assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    // A file that is not a PEM certificate, and a directory: the config's fault too.
    let garbage = std::env::temp_dir().join(format!("retl-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (path, words) in [
        (garbage.display().to_string(), "holds no PEM certificate"),
        (std::env::temp_dir().display().to_string(), "cannot read"),
    ] {
        let source = build(with(
            root_config(&db),
            json!({"sslmode": "verify_identity", "sslrootcert": path}),
        ));
        match expect_error(source.test().await) {
            SourceError::InvalidConfig { field, message } => {
                assert_eq!(field, "sslrootcert");
                assert!(
                    message.contains(&path) && message.contains(words),
                    "{message}"
                );
            }
            other => panic!("{path}: expected InvalidConfig, got {other:?}"),
        }
    }
    let _ = std::fs::remove_file(&garbage);
}
