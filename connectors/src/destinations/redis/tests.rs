//! Redis destination tests: commands and config, then deliveries into a real `redis-server`
//! started by the testkit (hash fields, nulls, per-command rejections, deletes of missing
//! keys, refused passwords, a read-only replica).

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::RedisServer;
use serde_json::{Value, json};

use super::actions::{RedisAction, commands};
use super::{RedisDestination, destination_type};

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("cache"),
        mapping_id: MappingId::new("users"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn upsert(key: Value, fields: Value) -> Payload {
    Payload {
        key,
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn destination(config: Value) -> Result<RedisDestination, DestinationError> {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    RedisDestination::new(&config, &limits)
}

fn config(redis: &RedisServer) -> Value {
    json!({"host": redis.host(), "port": redis.port(), "password": redis.password(),
           "key_prefix": "user:", "database": 2})
}

#[test]
fn records_become_hset_hdel_and_del() {
    let p = upsert(
        json!(7),
        json!({"email": "a@example.com", "plan": null, "seats": 3, "vip": true, "tags": ["x"]}),
    );
    let got = commands(RedisAction::SetHash, "user:", &p).unwrap();
    assert_eq!(
        got,
        [
            (
                "HSET",
                [
                    "user:7",
                    "email",
                    "a@example.com",
                    "seats",
                    "3",
                    "tags",
                    "[\"x\"]",
                    "vip",
                    "true"
                ]
                .map(String::from)
                .to_vec()
            ),
            ("HDEL", ["user:7", "plan"].map(String::from).to_vec()),
        ]
    );
    assert_eq!(
        commands(
            RedisAction::DeleteHash,
            "user:",
            &Payload::delete(json!("u-1"))
        )
        .unwrap(),
        [("DEL", vec!["user:u-1".to_string()])]
    );
    assert!(
        commands(
            RedisAction::DeleteHash,
            "user:",
            &Payload::delete(Value::Null)
        )
        .is_err()
    );
}

#[test]
fn config_errors_name_the_field() {
    let base = json!({"host": "127.0.0.1", "key_prefix": "user:"});
    assert!(destination(base.clone()).is_ok());
    for (field, value, named) in [
        ("key_prefix", json!(""), "key_prefix"),
        ("port", json!(0), "port"),
        ("username", json!("app"), "password"),
        ("host", json!("a b"), "host"),
    ] {
        let mut config = base.clone();
        config[field] = value;
        match destination(config) {
            Err(DestinationError::InvalidConfig { field, .. }) => assert_eq!(field, named),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_batch_is_one_pipeline_with_per_command_outcomes() {
    let redis = RedisServer::start_with_password("r-secret").await.unwrap();
    let dest = destination(config(&redis)).unwrap();
    let message = dest.test().await.unwrap();
    assert!(message.contains("PONG"), "{message}");

    redis
        .cli(&["-n", "2", "SET", "user:2", "a string"])
        .await
        .unwrap();
    redis
        .cli(&["-n", "2", "HSET", "user:1", "kept", "yes", "plan", "old"])
        .await
        .unwrap();
    let action = dest.action(spec("set_hash")).unwrap();
    let batch = [
        upsert(
            json!(1),
            json!({"email": "a@example.com", "plan": null, "seats": 3}),
        ),
        upsert(
            json!(2),
            json!({"email": "b@example.com", "plan": "pro", "seats": 4}),
        ),
        upsert(
            json!("3"),
            json!({"email": "c@example.com", "plan": "team", "seats": 5}),
        ),
    ];
    let outcome = action.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcome.records[1], RecordOutcome::Rejected { reason } if reason.contains("WRONGTYPE")),
        "{:?}",
        outcome.records[1]
    );
    assert_eq!(outcome.records[2], RecordOutcome::Accepted);
    let hash = redis.cli(&["-n", "2", "HGETALL", "user:1"]).await.unwrap();
    let mut pairs: Vec<&str> = hash.lines().collect();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    while pairs.len() >= 2 {
        let value = pairs.pop().unwrap();
        let name = pairs.pop().unwrap();
        fields.push((name, value));
    }
    fields.sort_unstable();
    assert_eq!(
        fields,
        [("email", "a@example.com"), ("kept", "yes"), ("seats", "3")],
        "null plan removed, unmapped field kept"
    );

    let delete = dest.action(spec("delete_hash")).unwrap();
    let outcome = delete
        .send(
            &ctx(),
            &[Payload::delete(json!(3)), Payload::delete(json!(99))],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert_eq!(
        redis.cli(&["-n", "2", "EXISTS", "user:3"]).await.unwrap(),
        "0"
    );
}

#[tokio::test]
async fn refused_passwords_and_read_only_replicas_are_named() {
    let redis = RedisServer::start_with_password("r-secret").await.unwrap();
    let mut wrong = config(&redis);
    wrong["password"] = json!("not-it");
    let error = destination(wrong).unwrap().test().await.unwrap_err();
    assert!(
        matches!(&error, DestinationError::Authentication { message } if message.contains("authentication failed") && !message.contains("not-it")),
        "{error}"
    );

    let dest = destination(config(&redis)).unwrap();
    let action = dest.action(spec("set_hash")).unwrap();
    redis.cli(&["REPLICAOF", "127.0.0.1", "1"]).await.unwrap();
    let error = action
        .send(
            &ctx(),
            &[upsert(json!(1), json!({"email": "a@example.com"}))],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DestinationError::Transient { .. }) && !error.stops_run(),
        "{error}"
    );
    redis.cli(&["REPLICAOF", "NO", "ONE"]).await.unwrap();
    let outcome = action
        .send(
            &ctx(),
            &[upsert(json!(1), json!({"email": "a@example.com"}))],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
}
