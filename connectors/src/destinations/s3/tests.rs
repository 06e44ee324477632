//! S3 destination tests: object keys, config, and writes through `object_store`'s local
//! filesystem backend.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, Destination, DestinationError, Payload, RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use serde_json::{Value, json};

use super::actions::object_key;
use super::{S3Destination, destination_type};

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("lake"),
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

fn destination(config: Value) -> Result<S3Destination, DestinationError> {
    S3Destination::new(&config, &(destination_type().default_limits)())
}

#[test]
fn object_keys_are_per_run_and_stable_for_a_batch() {
    let batch = [upsert(json!(1), json!({"a": 1})), Payload::delete(json!(2))];
    let key = object_key("exports/", &ctx(), &batch);
    assert!(
        key.starts_with("exports/users/run-1/part-") && key.ends_with(".jsonl"),
        "{key}"
    );
    assert_eq!(
        key,
        object_key("exports/", &ctx(), &batch),
        "a re-sent batch overwrites its object"
    );
    assert_ne!(key, object_key("exports/", &ctx(), &batch[..1]));
}

#[test]
fn config_errors_name_the_field() {
    assert!(destination(json!({"url": "s3://bucket/exports"})).is_ok());
    for (config, field) in [
        (json!({"url": "gs://bucket/x"}), "url"),
        (json!({"url": "s3:///x"}), "url"),
        (
            json!({"url": "s3://b/x", "access_key_id": "AKIA"}),
            "secret_access_key",
        ),
        (
            json!({"url": "s3://b/x", "endpoint": "http://127.0.0.1:9000"}),
            "allow_http",
        ),
        (
            json!({"url": "file:///tmp/x", "access_key_id": "AKIA", "secret_access_key": "s"}),
            "url",
        ),
    ] {
        match destination(config.clone()) {
            Err(DestinationError::InvalidConfig { field: f, .. }) => {
                assert_eq!(f, field, "{config}")
            }
            other => panic!("{config}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn each_batch_is_one_object_of_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let dest = destination(json!({"url": format!("file://{}/", root.display())})).unwrap();
    let message = dest.test().await.unwrap();
    assert!(message.contains("0 objects"), "{message}");
    let action = dest.action(spec("write_changes")).unwrap();
    let batch = [
        upsert(json!(1), json!({"email": "a@example.com"})),
        Payload::delete(json!(2)),
    ];
    let outcome = action.send(&ctx(), &batch).await.unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    // Sent again (a lost answer): the same object, not a second one.
    action.send(&ctx(), &batch).await.unwrap();
    let run = root.join("users").join("run-1");
    let objects: Vec<_> = std::fs::read_dir(&run).unwrap().flatten().collect();
    assert_eq!(objects.len(), 1);
    let text = std::fs::read_to_string(objects[0].path()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"op": "upsert", "change": "added", "key": 1, "fields": {"email": "a@example.com"}, "mapping": "users", "run": "run-1"}),
            json!({"op": "delete", "change": "deleted", "key": 2, "mapping": "users", "run": "run-1"}),
        ]
    );

    // A store that cannot be written fails the batch (retried), nothing acknowledged.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let error = action.send(&ctx(), &batch[..1]).await.unwrap_err();
    assert!(
        matches!(error, DestinationError::Transient { .. }),
        "{error}"
    );
}
