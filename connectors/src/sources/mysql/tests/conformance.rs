//! The sources conformance suite (`sources/conformance.rs`) against a real MariaDB.

use mysql_async::prelude::Queryable;

use super::*;
use crate::sources::conformance;
use crate::sources::mysql::source::MySqlSource;

#[test]
fn conformance_config_errors_name_the_field() {
    conformance::config_errors_name_the_field(&source_type(), &minimal());
}

#[tokio::test]
async fn conformance_connect_errors_are_classified() {
    let db = server().await;
    let ty = source_type();
    // Nothing listens on the port.
    let closed = retl_testkit::launch::free_port().unwrap();
    conformance::unreachable_is_unavailable(
        &ty,
        with(
            root_config(&db),
            json!({"port": closed, "connect_timeout_ms": 2000}),
        ),
        &["cannot connect to MySQL", &closed.to_string()],
    )
    .await;
    // A host name that does not resolve.
    conformance::unreachable_is_unavailable(
        &ty,
        with(
            root_config(&db),
            json!({"host": "no-such-host.invalid", "connect_timeout_ms": 2000}),
        ),
        &["no-such-host.invalid"],
    )
    .await;
    // A password the server refuses.
    db.create_user("reader", "reader-pw-1").await.unwrap();
    db.grant_select("reader", db.database()).await.unwrap();
    conformance::refused_credentials_are_an_auth_error(
        &ty,
        config_for(&db, "reader", "wrong-pw-9"),
    )
    .await;
    // A table that is not there.
    conformance::a_missing_table_is_a_user_error(&build(root_config(&db))).await;
}

#[tokio::test]
async fn conformance_sessions_are_read_only() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    // Root, whom no grant stops: the session models run on must refuse writes itself.
    let config = root_config(&db);
    let source = build(config.clone());
    let own = MySqlSource::new(
        serde_json::from_value::<MySqlConfig>(config)
            .unwrap()
            .validate()
            .unwrap(),
    );
    let write = async {
        let shared = own.shared().await.map_err(|e| e.to_string())?;
        let conn = shared.model_connection().await.map_err(|e| e.to_string())?;
        let mut conn = conn.conn.lock().await;
        match conn
            .query_drop("INSERT INTO users (id, email) VALUES (99, 'x@example.com')")
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("READ ONLY"), "{text}");
                Err(text)
            }
        }
    };
    conformance::sessions_are_read_only(&source, "users", Some(Box::pin(write))).await;
}
