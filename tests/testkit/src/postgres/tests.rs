//! Tests of the PostgreSQL launcher against real server binaries.

use std::time::Instant;

use super::*;

#[test]
fn quoting() {
    assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
    assert_eq!(quote_literal("it's"), "'it''s'");
}

#[tokio::test]
async fn start_create_insert_and_query_back() {
    let started = Instant::now();
    let pg = PostgresServer::start().await.unwrap();
    eprintln!("PostgreSQL started in {:?}", started.elapsed());
    assert_ne!(pg.port(), 0);
    assert_eq!(
        pg.url(),
        format!(
            "postgres://retl:retl-superuser@127.0.0.1:{}/postgres",
            pg.port()
        )
    );
    pg.psql("CREATE TABLE users (id int PRIMARY KEY, email text, note text)")
        .await
        .unwrap();
    pg.psql("INSERT INTO users VALUES (1, 'a@example.com', 'héllo'), (2, 'b@example.com', NULL)")
        .await
        .unwrap();
    let rows = pg
        .psql("SELECT id, email, note FROM users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows, "1|a@example.com|héllo\n2|b@example.com|");
    assert_eq!(pg.psql("SHOW server_encoding").await.unwrap(), "UTF8");
    assert_eq!(pg.psql("SHOW TimeZone").await.unwrap(), "UTC");
    // The superuser password works over TCP.
    let who = pg
        .psql_as(pg.user(), pg.superuser_password(), "SELECT current_user")
        .await
        .unwrap();
    assert_eq!(who, "retl");
}

#[tokio::test]
async fn sql_errors_carry_the_server_message() {
    let pg = PostgresServer::start().await.unwrap();
    let err = pg.psql("SELECT * FROM no_such_table").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LaunchError::Failed { .. }), "{text}");
    assert!(
        text.contains(r#"relation "no_such_table" does not exist"#),
        "{text}"
    );
}

#[tokio::test]
async fn wrong_password_is_refused_over_tcp() {
    let pg = PostgresServer::start().await.unwrap();
    pg.create_user("alice", "right horse").await.unwrap();
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7); GRANT SELECT ON t TO alice")
        .await
        .unwrap();
    assert_eq!(
        pg.psql_as("alice", "right horse", "SELECT current_user, x FROM t")
            .await
            .unwrap(),
        "alice|7"
    );
    let err = pg
        .psql_as("alice", "wrong", "SELECT 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"password authentication failed for user "alice""#),
        "{err}"
    );
    let err = pg
        .psql_as("retl", "wrong", "SELECT 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    // The URL encodes what needs encoding.
    assert!(
        pg.url_for("alice", "right horse")
            .contains("alice:right%20horse@")
    );
}

#[tokio::test]
async fn stop_and_start_again_keep_the_data_and_the_port() {
    let mut pg = PostgresServer::start().await.unwrap();
    let port = pg.port();
    pg.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    let started = Instant::now();
    pg.stop().await.unwrap();
    eprintln!("PostgreSQL stopped in {:?}", started.elapsed());
    assert!(pg.psql("SELECT 1").await.is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    pg.stop().await.unwrap(); // idempotent
    let started = Instant::now();
    pg.start_again().await.unwrap();
    eprintln!("PostgreSQL started again in {:?}", started.elapsed());
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT v FROM kept").await.unwrap(), "still here");
}

#[tokio::test]
async fn start_again_on_a_taken_port_reports_the_server_log() {
    let mut pg = PostgresServer::start().await.unwrap();
    pg.stop().await.unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", pg.port())).unwrap();
    let err = pg.start_again().await.unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("pg_ctl start"), "{err}");
    assert!(err.contains("server log (end):"), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
}

#[tokio::test]
async fn kill_connections_terminates_client_sessions() {
    let pg = std::sync::Arc::new(PostgresServer::start().await.unwrap());
    let sleeper = {
        let pg = std::sync::Arc::clone(&pg);
        tokio::spawn(async move {
            pg.psql_as(pg.user(), pg.superuser_password(), "SELECT pg_sleep(30)")
                .await
        })
    };
    crate::launch::wait_until(
        "the sleeping session shows up",
        Duration::from_secs(10),
        || {
            let pg = std::sync::Arc::clone(&pg);
            async move {
                let n = pg
                    .psql(
                        "SELECT count(*) FROM pg_stat_activity \
                     WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()",
                    )
                    .await?;
                Ok(n == "1")
            }
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(pg.kill_connections().await.unwrap(), 1);
    let err = sleeper.await.unwrap().unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(err.contains("terminat"), "{err}");
}

#[tokio::test]
async fn drop_stops_the_server_and_deletes_its_dir() {
    let pg = PostgresServer::start().await.unwrap();
    let dir = pg.socket_dir().to_path_buf();
    let port = pg.port();
    assert!(dir.join("data").is_dir());
    drop(pg);
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
