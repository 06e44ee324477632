//! File destination tests: line encoding, rotation per run, errors.

use std::sync::Arc;

use retl_engine::destination::spec::{ActionKind, ChangeKind};
use retl_engine::destination::{
    Action, ActionSpec, DeliveryContext, Destination, DestinationError, FieldInfo, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use serde_json::{Value, json};

use super::{FileDestination, destination_type};

fn ctx(mapping: &str, run: &str) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("out"),
        mapping_id: MappingId::new(mapping),
        run_id: RunId::new(run),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: i64, change: ChangeKind) -> Payload {
    let fields = if change == ChangeKind::Deleted {
        serde_json::Map::new()
    } else {
        json!({"email": format!("u{key}@example.com")})
            .as_object()
            .cloned()
            .unwrap()
    };
    Payload {
        key: json!(key),
        change,
        fields: fields.into(),
        fingerprint: None,
    }
}

fn destination(dir: &std::path::Path) -> FileDestination {
    FileDestination::new(&json!({"directory": dir.to_str().unwrap()})).unwrap()
}

/// The action of this name, resolved against the type's specs the way the engine does.
fn action(destination: &FileDestination, name: &str) -> Arc<dyn Action> {
    let spec = destination_type().action(name).unwrap();
    destination.action(spec).unwrap()
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn config_and_catalog() {
    let ty = destination_type();
    assert_eq!(ty.name, "file");
    assert_eq!(ty.actions.len(), 1);
    assert_eq!(ty.actions[0].name, "append_changes");
    assert!(ty.actions[0].accepts(ChangeKind::Deleted));
    assert!(ty.actions[0].accepts(ChangeKind::Added));
    assert_eq!((ty.default_limits)().max_in_flight, 1);
    for bad in [
        json!({}),
        json!({"directory": ""}),
        json!({"directory": "/x", "extra": 1}),
    ] {
        assert!(matches!(
            FileDestination::new(&bad),
            Err(DestinationError::InvalidConfig { .. })
        ));
    }
    // build does not touch the filesystem.
    assert!(FileDestination::new(&json!({"directory": "/nonexistent/retl/out"})).is_ok());
}

#[tokio::test]
async fn writes_one_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let destination = destination(&out);
    let action = action(&destination, "append_changes");
    let batch = vec![
        payload(1, ChangeKind::Added),
        payload(2, ChangeKind::Updated),
        payload(3, ChangeKind::Deleted),
    ];
    let outcome = action.send(&ctx("m1", "run-a"), &batch).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 3]);
    action
        .send(&ctx("m1", "run-a"), &[payload(4, ChangeKind::Added)])
        .await
        .unwrap();

    let lines = read_lines(&out.join("m1").join("run-a.jsonl"));
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        json!({"op": "upsert", "change": "added", "key": 1,
               "fields": {"email": "u1@example.com"}, "mapping": "m1", "run": "run-a"})
    );
    assert_eq!(lines[1]["change"], "updated");
    assert_eq!(lines[1]["op"], "upsert");
    assert_eq!(
        lines[2],
        json!({"op": "delete", "change": "deleted", "key": 3, "mapping": "m1", "run": "run-a"})
    );
    assert_eq!(lines[3]["key"], 4);
}

#[tokio::test]
async fn one_file_per_run_and_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let destination = destination(dir.path());
    let action = action(&destination, "append_changes");
    let one = [payload(1, ChangeKind::Added)];
    action.send(&ctx("m1", "run-a"), &one).await.unwrap();
    action.send(&ctx("m1", "run-b"), &one).await.unwrap();
    action.send(&ctx("m2", "run-a"), &one).await.unwrap();
    for (mapping, run) in [("m1", "run-a"), ("m1", "run-b"), ("m2", "run-a")] {
        let lines = read_lines(&dir.path().join(mapping).join(format!("{run}.jsonl")));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["run"], run);
        assert_eq!(lines[0]["mapping"], mapping);
    }
}

#[tokio::test]
async fn unsafe_ids_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let destination = destination(dir.path());
    let action = action(&destination, "append_changes");
    let one = [payload(1, ChangeKind::Added)];
    for (mapping, run) in [("../etc", "r"), ("m", "a/b"), ("m", "..")] {
        assert!(matches!(
            action.send(&ctx(mapping, run), &one).await,
            Err(DestinationError::Rejected { .. })
        ));
    }
}

#[tokio::test]
async fn test_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a").join("b");
    let message = destination(&out).test().await.unwrap();
    assert!(message.contains("writable"), "{message}");
    assert!(out.is_dir());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "probe removed");
}

#[tokio::test]
async fn unknown_action() {
    // The engine resolves names against the type's specs: the error lists the valid ones.
    match destination_type().action("upsert") {
        Err(DestinationError::UnknownAction { available, .. }) => {
            assert_eq!(available, "append_changes")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("expected UnknownAction"),
    }
    // A spec of another type is a bug in retl, not a user error.
    static FOREIGN: ActionSpec = ActionSpec {
        name: "upsert",
        display_name: "Upsert",
        description: "",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        destination(dir.path()).action(&FOREIGN),
        Err(DestinationError::Internal { .. })
    ));
}

#[tokio::test]
async fn every_action_spec_is_bound_and_fields_default_to_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let destination = destination(dir.path());
    for spec in destination_type().actions {
        let bound = destination.action(spec).unwrap();
        assert!(std::ptr::eq(bound.spec(), spec));
        assert_eq!(
            destination.fields(spec).await.unwrap(),
            FieldInfo::from_specs(spec.fields)
        );
    }
}

#[test]
fn config_fields_match_the_typed_config() {
    let ty = destination_type();
    retl_engine::config_fields::check_config_fields::<super::config::FileConfig>(ty.config)
        .unwrap();
}

#[tokio::test]
async fn unwritable_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the directory should be: fails even when running as root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let destination = destination(&blocker);
    match destination.test().await {
        Err(DestinationError::Io { path, .. }) => assert!(path.contains("not-a-dir")),
        other => panic!("{other:?}"),
    }
    let action = action(&destination, "append_changes");
    let error = action
        .send(&ctx("m", "r"), &[payload(1, ChangeKind::Added)])
        .await
        .unwrap_err();
    assert!(matches!(error, DestinationError::Io { .. }), "{error:?}");
}
