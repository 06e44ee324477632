//! The destination conformance suite: what every destination must do, checked through a real
//! daemon against the destination's emulator (or, for a local destination, its output).
//!
//! A destination joins with one file here (`<name>.rs`) that implements [`Subject`] over its
//! emulator and expands [`conformance_suite!`]. A check is skipped only where the subject
//! declares it does not apply ([`NotApplicable`], with the reason, printed when skipped), and
//! every check that runs asserts a minimum of real traffic, so none can pass vacuously.
//!
//! The checks:
//! - refused credentials stop the run, with the API's reason in the run's error;
//! - batches are split at the type's documented count limit and at the byte limit, as the
//!   emulator sees the requests (the byte check does not apply to an API taking one record
//!   per request);
//! - a per-record rejection leaves only the rejected records pending: the others are not sent
//!   again, the rejected ones are;
//! - throttling (429, or the API's own throttle status, + `Retry-After`) is obeyed: no request before `Retry-After` elapses;
//! - nothing is acknowledged that the API did not accept: after failed deliveries every
//!   record is sent again;
//! - a re-sent delete of a record that is already gone succeeds.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use retl_proto::v1;
use retl_tests::{Harness, column, counts, customers};
use serde_json::{Value, json};

/// Why a check does not apply to a destination (a reason a reader can check).
#[derive(Debug)]
pub(crate) struct NotApplicable(pub(crate) &'static str);

/// What a check may ask of a destination; `Err` = the check does not apply.
pub(crate) type Capability<T> = Result<T, NotApplicable>;

/// One request as the destination's API (its emulator) received it.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// The status the API answered.
    pub(crate) status: u16,
    /// The records of the request, each as the JSON the API received.
    pub(crate) records: Vec<Value>,
    /// When it arrived.
    pub(crate) at: SystemTime,
}

/// A destination under test, with the controls of its emulator.
pub(crate) trait Subject {
    /// The destination type, e.g. `webhook`.
    fn destination_type(&self) -> &'static str;
    /// The config of a destination that works (credentials included; no `limits`).
    fn config(&self) -> Value;
    /// The action receiving added and updated records, and its selection (`None` = default).
    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>);
    /// The field mappings of the upsert action over model `m` (columns `id`, `email`, `plan`);
    /// by default `email` and `plan` from the columns of the same names.
    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![column("email", "email"), column("plan", "plan")]
    }
    /// The action receiving deleted records, and its selection (`None` = default). Not called
    /// when [`Subject::deletes`] says the destination has none.
    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>);
    /// Whether the destination type can delete records at all (an API without deletes, such as
    /// an event tracking API, declares no delete action).
    fn deletes(&self) -> Capability<()> {
        Ok(())
    }
    /// Keys the destination accepted with this change (`added`, `updated`, `deleted`), in
    /// order, duplicates kept.
    fn accepted(&self, change: &str) -> Vec<i64>;
    /// A config whose credentials the API refuses, and the reason the API gives.
    fn refused_credentials(&self) -> Capability<(Value, &'static str)>;
    /// Every request the API received so far.
    fn requests(&self) -> Capability<Vec<Observed>>;
    /// Whether [`Subject::requests`] also shows requests that changed nothing: refused,
    /// failed, or deleting a record that is not there. A database keeps a trace only of what
    /// committed, so there the checks rely on the run's counts and the rows instead.
    fn observes_unchanged(&self) -> Capability<()> {
        Ok(())
    }
    /// The API rejects these records (per record, the rest of the batch being accepted).
    fn reject_keys(&self, keys: &[i64]) -> Capability<()>;
    /// The API answers the next request as throttled, asking to wait `seconds`.
    fn throttle_next(&self, seconds: u64) -> Capability<()>;
    /// Whether a batch can be seen closing at the suite's byte budget: not when the API
    /// receives other bytes than the engine measured (e.g. hashes of the mapped values), nor
    /// when the API's record count limit closes every batch first.
    fn splits_by_bytes(&self) -> Capability<()> {
        Ok(())
    }
    /// The status the API throttles with (429 unless its documented signal differs).
    fn throttle_status(&self) -> u16 {
        429
    }
    /// Every request fails until [`Subject::recover`].
    fn fail_everything(&self) -> Capability<()>;
    /// Ends every injected failure and rejection; forgets what was received (not what the
    /// destination holds).
    fn recover(&self);
    /// The destination loses these records (deleted on its side), and answers a delete of a
    /// missing record the way its API does.
    fn forget(&self, keys: &[i64]) -> Capability<()>;
}

/// Expands to one `#[tokio::test]` per check of the suite for the subject `$start` (an async
/// expression returning the subject).
macro_rules! conformance_suite {
    ($start:expr) => {
        #[tokio::test]
        async fn refused_credentials_stop_the_run_with_the_reason() {
            super::refused_credentials_stop_the_run_with_the_reason(&$start).await;
        }
        #[tokio::test]
        async fn batches_split_at_the_documented_count_limit() {
            super::batches_split_at_the_documented_count_limit(&$start).await;
        }
        #[tokio::test]
        async fn batches_split_at_the_byte_limit() {
            super::batches_split_at_the_byte_limit(&$start).await;
        }
        #[tokio::test]
        async fn a_per_record_rejection_leaves_only_the_rejected_pending() {
            super::a_per_record_rejection_leaves_only_the_rejected_pending(&$start).await;
        }
        #[tokio::test]
        async fn throttling_is_obeyed() {
            super::throttling_is_obeyed(&$start).await;
        }
        #[tokio::test]
        async fn nothing_is_acknowledged_that_was_not_accepted() {
            super::nothing_is_acknowledged_that_was_not_accepted(&$start).await;
        }
        #[tokio::test]
        async fn a_resent_delete_of_a_missing_record_succeeds() {
            super::a_resent_delete_of_a_missing_record_succeeds(&$start).await;
        }
    };
}

// Declared after the macro, which they expand.
mod activecampaign;
mod airtable;
mod amplitude;
mod attio;
mod braze;
mod customerio;
mod elasticsearch;
mod facebook_audiences;
mod file;
mod google_ads;
mod google_analytics;
mod google_sheets;
mod http_request;
mod hubspot;
mod intercom;
mod iterable;
mod klaviyo;
mod mailchimp;
mod marketo;
mod mixpanel;
mod mysql;
mod pipedrive;
mod postgres;
mod posthog;
mod redis;
mod s3;
mod salesforce;
mod segment;
mod sendgrid;
mod slack;
mod webhook;
mod zendesk;

/// The capability, or `None` after saying (on stderr) which check was skipped and why.
fn applies<T>(subject: &dyn Subject, check: &str, capability: Capability<T>) -> Option<T> {
    match capability {
        Ok(value) => Some(value),
        Err(NotApplicable(reason)) => {
            eprintln!(
                "SKIPPED conformance check '{check}' for destination type '{}': {reason}",
                subject.destination_type()
            );
            None
        }
    }
}

/// `config` with `limits` added.
fn with_limits(mut config: Value, limits: Value) -> Value {
    config["limits"] = limits;
    config
}

/// Fast retries for the suite's runs.
fn fast_retries(extra: Value) -> Value {
    let mut limits = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    if let (Value::Object(l), Value::Object(e)) = (&mut limits, extra) {
        l.extend(e);
    }
    limits
}

/// Source `wh` over `rows` customers, model `m` (id, email, plan), destination `dest` of the
/// subject with `limits`, mapping `up` (email, plan) and mapping `del` (deletes).
async fn setup(h: &Harness, subject: &dyn Subject, rows: i64, limits: Value) {
    h.warehouse(&customers(rows)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    create(h, subject, "dest", with_limits(subject.config(), limits)).await;
}

/// Destination `id` with `config`, and its mappings `up` and `del` of model `m`.
async fn create(h: &Harness, subject: &dyn Subject, id: &str, config: Value) {
    h.create_destination(id, subject.destination_type(), config)
        .await
        .unwrap();
    let (upsert, selection) = subject.upsert_action();
    h.create_mapping_with("up", "m", id, upsert, subject.upsert_fields(), selection)
        .await
        .unwrap();
    if subject.deletes().is_ok() {
        let (delete, selection) = subject.delete_action();
        h.create_mapping("del", "m", id, delete, &[], selection)
            .await
            .unwrap();
    }
}

/// The documented default limits of the subject's type, as `ListDestinationTypes` serves them.
async fn documented_limits(h: &Harness, subject: &dyn Subject) -> v1::DeliveryLimits {
    let types = h
        .client
        .destinations()
        .list_destination_types(v1::ListDestinationTypesRequest {})
        .await
        .unwrap()
        .into_inner()
        .destination_types;
    types
        .into_iter()
        .find(|t| t.name == subject.destination_type())
        .and_then(|t| t.default_limits)
        .expect("the type is registered and documents its limits")
}

fn set(keys: impl IntoIterator<Item = i64>) -> BTreeSet<i64> {
    keys.into_iter().collect()
}

/// The serialized size of a record as the API received it.
fn record_bytes(record: &Value) -> usize {
    serde_json::to_vec(record).map_or(0, |b| b.len())
}

pub(crate) async fn refused_credentials_stop_the_run_with_the_reason(subject: &dyn Subject) {
    let check = "refused credentials stop the run";
    let Some((config, reason)) = applies(subject, check, subject.refused_credentials()) else {
        return;
    };
    let Some(_) = applies(subject, check, subject.requests()) else {
        return;
    };
    let h = Harness::start().await;
    h.warehouse(&customers(30)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let limits = fast_retries(json!({"batch_size": 5, "max_in_flight": 1}));
    create(&h, subject, "dest", with_limits(config, limits)).await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains(reason),
        "the run's error gives the API's reason '{reason}': {}",
        run.error
    );
    if applies(subject, check, subject.observes_unchanged()).is_some() {
        let requests = subject.requests().unwrap();
        assert_eq!(
            requests.len(),
            1,
            "one refused request stops the run (6 batches were pending): {requests:?}"
        );
    }
    assert!(subject.accepted("added").is_empty());
}

pub(crate) async fn batches_split_at_the_documented_count_limit(subject: &dyn Subject) {
    let check = "batches split at the documented count limit";
    let Some(_) = applies(subject, check, subject.requests()) else {
        return;
    };
    let h = Harness::start().await;
    let documented = documented_limits(&h, subject).await;
    let batch_size = usize::try_from(documented.batch_size).unwrap();
    let rows = 2 * batch_size + 3;
    setup(
        &h,
        subject,
        i64::try_from(rows).unwrap(),
        fast_retries(json!({"max_in_flight": 1})),
    )
    .await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let sizes: Vec<usize> = subject
        .requests()
        .unwrap()
        .iter()
        .map(|r| r.records.len())
        .collect();
    // [b, b, 3] for a batch size b of 3 or more; one record each for an API taking one.
    let expected: Vec<usize> = (0..rows)
        .step_by(batch_size)
        .map(|start| batch_size.min(rows - start))
        .collect();
    assert_eq!(
        sizes, expected,
        "{rows} records in batches of the documented {batch_size}"
    );
    assert_eq!(subject.accepted("added").len(), rows);
}

pub(crate) async fn batches_split_at_the_byte_limit(subject: &dyn Subject) {
    let check = "batches split at the byte limit";
    let Some(_) = applies(subject, check, subject.requests()) else {
        return;
    };
    let Some(()) = applies(subject, check, subject.splits_by_bytes()) else {
        return;
    };
    const MAX_BYTES: usize = 2048;
    let h = Harness::start().await;
    if documented_limits(&h, subject).await.batch_size == 1 {
        let one = "the API takes one record per request, so no byte limit groups records";
        applies::<()>(subject, check, Err(NotApplicable(one)));
        return;
    }
    setup(
        &h,
        subject,
        60,
        fast_retries(json!({"max_in_flight": 1, "max_batch_bytes": MAX_BYTES})),
    )
    .await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.requests().unwrap();
    assert!(
        requests.len() >= 2,
        "60 records of ~70 bytes do not fit {MAX_BYTES} bytes: {} requests",
        requests.len()
    );
    let bytes: Vec<usize> = requests
        .iter()
        .map(|r| r.records.iter().map(record_bytes).sum())
        .collect();
    for (i, pair) in requests.windows(2).enumerate() {
        assert!(
            bytes[i] <= MAX_BYTES,
            "request {i} carries {} record bytes",
            bytes[i]
        );
        // Split at the limit, not below it: the next record would not have fit.
        assert!(
            bytes[i] + record_bytes(&pair[1].records[0]) > MAX_BYTES,
            "request {i} ({} bytes) had room for the next record",
            bytes[i]
        );
    }
    assert!(bytes.last().is_some_and(|b| *b <= MAX_BYTES));
    assert_eq!(set(subject.accepted("added")), set(1..=60));
}

pub(crate) async fn a_per_record_rejection_leaves_only_the_rejected_pending(subject: &dyn Subject) {
    let check = "a per-record rejection leaves only the rejected records pending";
    let Some(()) = applies(subject, check, subject.reject_keys(&[5, 7])) else {
        return;
    };
    let h = Harness::start().await;
    setup(&h, subject, 30, fast_retries(json!({"batch_size": 10}))).await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    let c = run.counts.unwrap();
    assert_eq!((c.selected, c.delivered, c.failed), (30, 28, 2), "{run:?}");
    let errors: BTreeSet<String> = run.record_errors.iter().map(|e| e.key.clone()).collect();
    assert_eq!(errors, BTreeSet::from(["5".to_string(), "7".to_string()]));
    let accepted = set(subject.accepted("added"));
    assert_eq!(accepted, set((1..=30).filter(|k| *k != 5 && *k != 7)));

    subject.recover();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        subject.accepted("added"),
        [5, 7],
        "only the rejected records are sent again, once each"
    );
}

pub(crate) async fn throttling_is_obeyed(subject: &dyn Subject) {
    let check = "throttling is obeyed";
    let Some(()) = applies(subject, check, subject.throttle_next(1)) else {
        return;
    };
    let Some(_) = applies(subject, check, subject.requests()) else {
        return;
    };
    let h = Harness::start().await;
    let limits = fast_retries(json!({"batch_size": 1, "max_in_flight": 1, "max_attempts": 5}));
    setup(&h, subject, 4, limits).await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.requests().unwrap();
    assert_eq!(
        requests[0].status,
        subject.throttle_status(),
        "{requests:?}"
    );
    assert_eq!(requests.len(), 5, "one throttled request and four accepted");
    let gap = requests[1]
        .at
        .duration_since(requests[0].at)
        .unwrap_or_default();
    assert!(
        gap >= Duration::from_millis(950),
        "the next request came {gap:?} after a 429 with Retry-After: 1"
    );
    assert_eq!(set(subject.accepted("added")), set(1..=4));
}

pub(crate) async fn nothing_is_acknowledged_that_was_not_accepted(subject: &dyn Subject) {
    let check = "nothing is acknowledged that was not accepted";
    let Some(()) = applies(subject, check, subject.fail_everything()) else {
        return;
    };
    let h = Harness::start().await;
    setup(&h, subject, 12, fast_retries(json!({"batch_size": 5}))).await;
    let run = h.sync("up").await;
    assert_ne!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let (_, _, _, delivered, _) = counts(&run);
    assert_eq!(delivered, 0, "{run:?}");
    assert!(subject.accepted("added").is_empty());
    let observed = applies(subject, check, subject.observes_unchanged())
        .and_then(|()| subject.requests().ok());
    if let Some(requests) = observed {
        assert!(
            !requests.is_empty() && requests.iter().all(|r| r.status >= 500),
            "the deliveries reached the API and failed: {requests:?}"
        );
    }

    subject.recover();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        set(subject.accepted("added")),
        set(1..=12),
        "every record is sent again"
    );
}

pub(crate) async fn a_resent_delete_of_a_missing_record_succeeds(subject: &dyn Subject) {
    let check = "a re-sent delete of a missing record succeeds";
    let Some(()) = applies(subject, check, subject.deletes()) else {
        return;
    };
    let h = Harness::start().await;
    setup(&h, subject, 20, fast_retries(json!({}))).await;
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    assert_eq!(set(subject.accepted("added")), set(1..=20));
    let Some(()) = applies(subject, check, subject.forget(&[1, 2, 3, 4, 5])) else {
        return;
    };
    retl_tests::write_parquet(&h.path("customers.parquet"), &customers(20)[5..]);
    subject.recover();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let (_, _, deleted, delivered, failed) = counts(&run);
    assert_eq!((deleted, delivered, failed), (5, 5, 0), "{run:?}");
    let observed =
        applies(subject, check, subject.observes_unchanged()).map(|()| subject.requests());
    match observed {
        None => {}
        Some(Ok(requests)) => {
            let sent: Vec<i64> = requests
                .iter()
                .flat_map(|r| &r.records)
                .filter(|r| r["change"] == "deleted")
                .filter_map(|r| r["key"].as_i64())
                .collect();
            assert_eq!(set(sent), set(1..=5), "the deletes reached the API");
        }
        Some(Err(_)) => assert_eq!(set(subject.accepted("deleted")), set(1..=5)),
    }
    // Acknowledged: the next run has nothing to send.
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(counts(&run).2, 0, "{run:?}");
}
