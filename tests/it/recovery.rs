//! What a restart cleans up after an interrupted daemon.

use retl_tests::{Harness, customers};
use serde_json::json;

#[tokio::test]
async fn a_restart_empties_what_interrupted_runs_left_in_tmp() {
    let mut h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination(
        "out",
        "file",
        json!({"directory": h.path("out").display().to_string()}),
    )
    .await
    .unwrap();
    h.create_mapping(
        "up",
        "m",
        "out",
        "append_changes",
        &[("email", "email")],
        None,
    )
    .await
    .unwrap();
    // What a run killed after its extract leaves behind: a key index, a delete spill file and
    // DataFusion's spill directories.
    let tmp = h.data_dir.path().join("tmp");
    std::fs::create_dir_all(tmp.join("datafusion-abc123")).unwrap();
    std::fs::write(tmp.join("datafusion-abc123").join("spill.arrow"), b"x").unwrap();
    std::fs::write(tmp.join("keys-0192.idx"), vec![0_u8; 4096]).unwrap();
    std::fs::write(tmp.join("deletes-0192.spill"), b"k").unwrap();
    h.restart().await;
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Runs still work, and leave nothing behind either.
    let run = h.sync("up").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "a finished run leaves nothing in tmp: {left:?}"
    );
}
