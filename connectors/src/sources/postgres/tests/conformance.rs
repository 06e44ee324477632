//! The sources conformance suite (`sources/conformance.rs`) against a real PostgreSQL.

use super::*;
use crate::sources::conformance;
use crate::sources::postgres::source::PostgresSource;

#[test]
fn conformance_config_errors_name_the_field() {
    conformance::config_errors_name_the_field(&source_type(), &minimal());
}

#[tokio::test]
async fn conformance_connect_errors_are_classified() {
    let pg = server().await;
    let ty = source_type();
    // Nothing listens on the port.
    let closed = retl_testkit::launch::free_port().unwrap();
    conformance::unreachable_is_unavailable(
        &ty,
        with(
            superuser_config(&pg),
            json!({"port": closed, "connect_timeout_ms": 2000}),
        ),
        &["cannot connect to PostgreSQL", &closed.to_string()],
    )
    .await;
    // A host name that does not resolve.
    conformance::unreachable_is_unavailable(
        &ty,
        with(
            superuser_config(&pg),
            json!({"host": "no-such-host.invalid", "connect_timeout_ms": 2000}),
        ),
        &["no-such-host.invalid"],
    )
    .await;
    // A password the server refuses.
    pg.create_user("reader", "reader-pw-1").await.unwrap();
    conformance::refused_credentials_are_an_auth_error(
        &ty,
        config_for(&pg, "reader", "wrong-pw-9"),
    )
    .await;
    // A table that is not there.
    conformance::a_missing_table_is_a_user_error(&build(superuser_config(&pg))).await;
}

#[tokio::test]
async fn conformance_sessions_are_read_only() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    // A superuser, whom no grant stops: the session itself must refuse writes.
    let config = superuser_config(&pg);
    let source = build(config.clone());
    let own = PostgresSource::new(
        serde_json::from_value::<PostgresConfig>(config)
            .unwrap()
            .validate()
            .unwrap(),
    );
    let write = async {
        let pool = own.pool().await.map_err(|e| e.to_string())?;
        let conn = pool.connect_direct().await.map_err(|e| e.to_string())?;
        match conn
            .conn
            .execute(
                "INSERT INTO users (id, email) VALUES (99, 'x@example.com')",
                &[],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("{e:?}");
                assert!(text.contains("read-only transaction"), "{text}");
                Err(text)
            }
        }
    };
    conformance::sessions_are_read_only(&source, "users", Some(Box::pin(write))).await;
}

#[tokio::test]
async fn conformance_a_read_cut_short_is_an_error() {
    const ROWS: usize = 300_000;
    let pg = server().await;
    pg.psql(&format!(
        "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, {ROWS}) g"
    ))
    .await
    .unwrap();
    let source = build(superuser_config(&pg));
    let error = conformance::a_read_cut_short_is_an_error(
        &source,
        "SELECT id, pad FROM big",
        ROWS,
        async {
            assert!(pg.kill_connections().await.unwrap() >= 1);
        },
    )
    .await;
    // A lost connection: the engine starts the extract again.
    assert!(
        matches!(error, SourceError::Unavailable { .. }) && error.is_transient(),
        "{error:?}"
    );
    let address = format!("{}:{}", pg.host(), pg.port());
    assert!(error.to_string().contains(&address), "{error}");
}
