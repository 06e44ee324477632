//! The connector types the API serves: a drift test of `ListDestinationTypes` against a
//! checked-in snapshot, so any change to a type's config fields, actions, action fields or
//! default limits is a visible diff in review.

use retl_proto::v1;
use retl_tests::Harness;

/// The checked-in snapshot, relative to this crate.
const SNAPSHOT: &str = "it/snapshots/list_destination_types.json";

/// Set to regenerate the snapshots instead of comparing with them.
const UPDATE_ENV: &str = "RETL_UPDATE_SNAPSHOTS";

#[tokio::test]
async fn list_destination_types_matches_the_snapshot() {
    let h = Harness::start().await;
    let types = h
        .client
        .destinations()
        .list_destination_types(v1::ListDestinationTypesRequest {})
        .await
        .unwrap()
        .into_inner()
        .destination_types;
    let rendered: Vec<_> = types
        .iter()
        .map(retl::grpc::json::destination_type)
        .collect();
    let mut actual = serde_json::to_string_pretty(&rendered).unwrap();
    actual.push('\n');
    // Nested action fields are served and rendered (none of today's types has any, so check
    // the renderer on its own too).
    let nested = retl::grpc::json::field_spec(&v1::FieldSpec {
        name: "address".to_string(),
        children: vec![v1::FieldSpec {
            name: "city".to_string(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(nested["children"][0]["name"], "city");

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "ListDestinationTypes differs from the snapshot {}.\n\
         If the change is intended, regenerate it with\n  \
         {UPDATE_ENV}=1 cargo test -p retl-tests list_destination_types_matches_the_snapshot\n\
         and review the diff of the file.\n--- actual ---\n{actual}",
        path.display()
    );
}
