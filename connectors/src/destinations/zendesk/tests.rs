//! Zendesk tests: config, encoding, job results, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::ZendeskEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client::{self, JobStatus};
use super::config::{CONFIG_FIELDS, ZendeskConfig};
use super::{ZendeskDestination, destination_type};

const EMAIL: &str = "admin@acme.com";
const TOKEN: &str = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("zendesk"),
        mapping_id: MappingId::new("users"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn added(key: i64, fields: Value) -> Payload {
    Payload {
        key: json!(key),
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(url: &str, token: &str) -> ZendeskDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    ZendeskDestination::new(
        &json!({"email": EMAIL, "api_token": token, "base_url": url}),
        limits,
    )
    .unwrap()
}

fn job(status: &str, results: Value) -> JobStatus {
    serde_json::from_value(json!({"id": "j1", "status": status, "results": results})).unwrap()
}

#[test]
fn config_validation_and_drift() {
    retl_engine::config_fields::check_config_fields::<ZendeskConfig>(CONFIG_FIELDS).unwrap();
    assert!(
        CONFIG_FIELDS
            .iter()
            .any(|f| f.name == "api_token" && f.secret)
    );
    let error = |config: Value| match ZendeskDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        error(json!({"email": EMAIL, "api_token": "t"})),
        "subdomain"
    );
    assert_eq!(
        error(json!({"subdomain": "acme.zendesk.com", "email": EMAIL, "api_token": "t"})),
        "subdomain"
    );
    assert_eq!(
        error(json!({"subdomain": "acme", "email": "admin", "api_token": "t"})),
        "email"
    );
    assert_eq!(
        error(json!({"subdomain": "acme", "email": EMAIL, "api_token": " "})),
        "api_token"
    );
    assert_eq!(
        error(json!({"base_url": "ftp://x", "email": EMAIL, "api_token": "t"})),
        "base_url"
    );
    let ok = ZendeskDestination::new(
        &json!({"subdomain": "acme", "email": EMAIL, "api_token": TOKEN}),
        DeliveryLimits::default(),
    )
    .unwrap();
    assert!(!format!("{ok:?}").contains(TOKEN));
}

#[test]
fn a_record_encodes_as_a_user() {
    let p = added(
        4,
        json!({"name": "Ann", "email": "a@x.io", "organization_id": "12", "tags": ["vip"],
               "verified": true, "phone": null, "plan": "pro", "user_fields": {"seats": 3}}),
    );
    assert_eq!(
        actions::user(spec("upsert_user"), &p).unwrap(),
        json!({"external_id": "4", "name": "Ann", "email": "a@x.io", "organization_id": 12,
               "tags": ["vip"], "verified": true, "phone": null,
               "user_fields": {"seats": 3, "plan": "pro"}})
    );
    for bad in [
        json!({"external_id": ""}),
        json!({"tags": "vip"}),
        json!({"organization_id": "x"}),
        json!({"verified": "yes"}),
        json!({"address": {"city": "Oslo"}}),
    ] {
        assert!(
            actions::user(spec("upsert_user"), &added(1, bad.clone())).is_err(),
            "{bad}"
        );
    }
    assert_eq!(actions::delete_id(&Payload::delete(json!(7))).unwrap(), "7");
    assert!(actions::delete_id(&Payload::delete(json!("a,b"))).is_err());
}

#[test]
fn job_results_map_to_records() {
    let done = job(
        "completed",
        json!([
            {"id": 11, "status": "Created", "email": "a@x.io"},
            {"id": 1, "status": "Failed", "error": "UserUpdateError", "details": "Email: x is not properly formatted"},
            {"id": 12, "status": "Updated"},
        ]),
    );
    let outcomes = client::upsert_outcomes(&done, 3);
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Rejected {
            reason: "Zendesk UserUpdateError: Email: x is not properly formatted".into()
        }
    );
    assert_eq!(outcomes[2], RecordOutcome::Accepted);
    // Fewer results than users: the unaccounted ones are not acknowledged.
    let short = job("completed", json!([{"id": 11, "status": "Created"}]));
    let outcomes = client::upsert_outcomes(&short, 2);
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("unknown"))
    );
    // Deletes: results name only the users found; a failure naming an id rejects it.
    let deleted = job(
        "completed",
        json!([{"id": 5, "action": "delete", "success": true, "status": "Deleted"},
               {"external_id": "b", "success": false, "error": "PermissionDenied", "details": "agent"}]),
    );
    let outcomes = client::delete_outcomes(&deleted, &["a".into(), "b".into(), "c".into()]);
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert!(matches!(&outcomes[1], RecordOutcome::Rejected { .. }));
    assert_eq!(outcomes[2], RecordOutcome::Accepted);
}

#[tokio::test]
async fn upserts_and_deletes_round_trip_through_jobs() {
    let emu = ZendeskEmulator::start(EMAIL, TOKEN).await.unwrap();
    emu.set_polls_until_done(2);
    emu.insert(json!({"name": "Old", "email": "b@x.io"}));
    let dest = destination(&emu.base_url(), TOKEN);
    let upsert = dest.action(spec("upsert_user")).unwrap();
    emu.reject_keys(["3".to_string()]);
    let batch = [
        added(1, json!({"name": "Ann", "email": "a@x.io"})),
        added(2, json!({"name": "Bo", "email": "b@x.io"})),
        added(3, json!({"name": "Cy"})),
        added(4, json!({"email": "d@x.io"})),
    ];
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert_eq!(outcome.records[1], RecordOutcome::Accepted);
    assert!(
        matches!(&outcome.records[2], RecordOutcome::Rejected { reason } if reason.contains("reject_keys"))
    );
    assert!(
        matches!(&outcome.records[3], RecordOutcome::Rejected { reason } if reason.contains("Name"))
    );
    // b@x.io existed: matched by email and given the external id.
    assert_eq!(emu.user("2").unwrap()["name"], "Bo");
    assert_eq!(emu.users().len(), 2);
    let requests = emu.requests();
    let calls: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(calls[0], "POST /api/v2/users/create_or_update_many");
    assert_eq!(calls.len(), 4, "the request and three polls: {calls:?}");
    assert!(calls[1].starts_with("GET /api/v2/job_statuses/"));
    assert!(
        requests[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        requests[0].basic_user().as_deref(),
        Some("admin@acme.com/token")
    );
    let too_many: Vec<Payload> = (0..101).map(|k| added(k, json!({}))).collect();
    assert!(matches!(
        upsert.send(&ctx(), &too_many).await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
    // Deletes: one held, one never written.
    emu.set_polls_until_done(0);
    let delete = dest.action(spec("delete_user")).unwrap();
    let outcome = delete
        .send(
            &ctx(),
            &[Payload::delete(json!(1)), Payload::delete(json!(99))],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(emu.user("1").is_none());
    let last_delete = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(last_delete.path, "/api/v2/users/destroy_many");
    // A failed job is transient.
    emu.fail_jobs(true);
    assert!(matches!(
        delete.send(&ctx(), &[Payload::delete(json!(2))]).await,
        Err(DestinationError::Transient { .. })
    ));
}

#[tokio::test]
async fn test_reads_me_and_refusals_are_named() {
    let emu = ZendeskEmulator::start(EMAIL, TOKEN).await.unwrap();
    let summary = destination(&emu.base_url(), TOKEN).test().await.unwrap();
    assert!(summary.contains("admin@example.com"), "{summary}");
    match destination(&emu.base_url(), "wrong").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Couldn't authenticate you"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    emu.throttle_next(1, 3);
    let upsert = destination(&emu.base_url(), TOKEN)
        .action(spec("upsert_user"))
        .unwrap();
    match upsert.send(&ctx(), &[added(1, json!({"name": "A"}))]).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(std::time::Duration::from_secs(3))),
        other => panic!("{other:?}"),
    }
    assert!(emu.writes().is_empty());
}
