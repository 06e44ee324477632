//! Tests of the MariaDB launcher against real server binaries.

use std::sync::Arc;
use std::time::Instant;

use super::*;

#[test]
fn quoting() {
    assert_eq!(quote_literal(r"it's a \ path"), r"'it\'s a \\ path'");
    assert_eq!(quote_ident("we`ird"), "`we``ird`");
}

#[tokio::test]
async fn start_create_insert_and_query_back() {
    let started = Instant::now();
    let db = MariaDbServer::start().await.unwrap();
    eprintln!("MariaDB started in {:?}", started.elapsed());
    assert_ne!(db.port(), 0);
    assert_eq!(
        db.url(),
        format!("mysql://root@127.0.0.1:{}/retl_test", db.port())
    );
    db.sql("CREATE TABLE users (id int PRIMARY KEY, email varchar(100), note text)")
        .await
        .unwrap();
    db.sql("INSERT INTO users VALUES (1, 'a@example.com', 'héllo'), (2, 'b@example.com', NULL)")
        .await
        .unwrap();
    let rows = db
        .sql("SELECT id, email, note FROM users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows, "1\ta@example.com\théllo\n2\tb@example.com\tNULL");
    assert_eq!(
        db.sql("SELECT @@character_set_server, @@time_zone")
            .await
            .unwrap(),
        "utf8mb4\t+00:00"
    );
    // root over TCP without password, as `url()` says.
    assert_eq!(
        db.sql_as("root", "", "SELECT DATABASE()").await.unwrap(),
        "retl_test"
    );
}

#[tokio::test]
async fn sql_errors_carry_the_server_message() {
    let db = MariaDbServer::start().await.unwrap();
    let err = db.sql("SELECT * FROM no_such_table").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LaunchError::Failed { .. }), "{text}");
    assert!(
        text.contains("Table 'retl_test.no_such_table' doesn't exist"),
        "{text}"
    );
}

#[tokio::test]
async fn wrong_password_is_refused_over_tcp() {
    let db = MariaDbServer::start().await.unwrap();
    db.create_user("alice", "right horse").await.unwrap();
    db.grant_select("alice", db.database()).await.unwrap();
    db.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    assert_eq!(
        db.sql_as("alice", "right horse", "SELECT CURRENT_USER(), x FROM t")
            .await
            .unwrap(),
        "alice@%\t7"
    );
    let err = db
        .sql_as("alice", "wrong", "SELECT 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Access denied for user 'alice'"), "{err}");
    // SELECT only: writes are refused.
    let err = db
        .sql_as("alice", "right horse", "INSERT INTO t VALUES (8)")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("INSERT command denied"), "{err}");
    assert!(
        db.url_for("alice", "right horse")
            .contains("alice:right%20horse@")
    );
}

#[tokio::test]
async fn stop_and_start_again_keep_the_data_and_the_port() {
    let mut db = MariaDbServer::start().await.unwrap();
    let port = db.port();
    db.sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    let started = Instant::now();
    db.stop().await.unwrap();
    eprintln!("MariaDB stopped in {:?}", started.elapsed());
    assert!(db.sql("SELECT 1").await.is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    db.stop().await.unwrap(); // idempotent
    let started = Instant::now();
    db.start_again().await.unwrap();
    eprintln!("MariaDB started again in {:?}", started.elapsed());
    assert_eq!(db.port(), port);
    assert_eq!(db.sql("SELECT v FROM kept").await.unwrap(), "still here");
}

#[tokio::test]
async fn start_again_on_a_taken_port_reports_the_server_log() {
    let mut db = MariaDbServer::start().await.unwrap();
    db.stop().await.unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", db.port())).unwrap();
    let err = db.start_again().await.unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("mariadbd (start MariaDB)"), "{err}");
    assert!(err.contains("server log (end):"), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
}

#[tokio::test]
async fn kill_connections_ends_client_sessions() {
    let db = Arc::new(MariaDbServer::start().await.unwrap());
    let sleeper = {
        let db = Arc::clone(&db);
        tokio::spawn(async move { db.sql_as("root", "", "SELECT SLEEP(30)").await })
    };
    wait_until(
        "the sleeping session shows up",
        Duration::from_secs(10),
        || {
            let db = Arc::clone(&db);
            async move {
                let n = db
                    .sql(
                        "SELECT count(*) FROM information_schema.processlist \
                     WHERE info LIKE 'SELECT SLEEP%'",
                    )
                    .await?;
                Ok(n == "1")
            }
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(db.kill_connections().await.unwrap(), 1);
    let err = sleeper.await.unwrap().unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        err.contains("Lost connection") || err.contains("server has gone away"),
        "{err}"
    );
}

#[tokio::test]
async fn enable_tls_restarts_with_tls_on_the_same_port_and_data() {
    let mut db = MariaDbServer::start().await.unwrap();
    let port = db.port();
    db.sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    assert_ne!(db.sql("SELECT @@have_ssl").await.unwrap(), "YES");
    let ca = db.enable_tls().await.unwrap();
    assert!(ca.is_file(), "{}", ca.display());
    assert_eq!(db.port(), port);
    assert_eq!(db.sql("SELECT @@have_ssl").await.unwrap(), "YES");
    assert_eq!(db.sql("SELECT v FROM kept").await.unwrap(), "still here");
    // It stays on across a restart.
    db.stop().await.unwrap();
    db.start_again().await.unwrap();
    assert_eq!(db.sql("SELECT @@have_ssl").await.unwrap(), "YES");
}

#[tokio::test]
async fn drop_kills_the_server_and_deletes_its_dir() {
    let db = MariaDbServer::start().await.unwrap();
    let dir = db.dir().to_path_buf();
    let port = db.port();
    assert!(dir.join("data").is_dir());
    drop(db);
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
