//! The `slack` destination against `retl_testkit`'s Slack incoming webhook emulator:
//! `send_message` is the upsert action (one message per record, one record per request);
//! there is no delete. And a sync whose messages the emulator checks as Slack receives them.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: the key is
//! read back from the message text, which the conformance mapping renders with a template
//! (`Customer {{ id }}: ...`), and the fields are the message body as received.

use retl_proto::v1;
use retl_testkit::{SlackEmulator, SlackWebhook};
use retl_tests::{Harness, customers, literal, template};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const TOKEN: &str = "conformanceTOKEN42";
/// The text template of the conformance mapping.
const TEXT: &str = "Customer {{ id }}: {{ email }} is on *{{ plan }}*";

/// A Slack webhook emulator.
pub(crate) struct SlackSubject {
    emu: SlackEmulator,
}

impl SlackSubject {
    async fn start() -> Self {
        SlackSubject {
            emu: SlackEmulator::start(SlackWebhook {
                team: "T0CONF".into(),
                app: "B0CONF".into(),
                token: TOKEN.into(),
            })
            .await
            .unwrap(),
        }
    }
}

/// The customer id a message text names (`Customer <id>: ...`).
fn key_of(text: &str) -> i64 {
    text.strip_prefix("Customer ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a conformance message: {text}"))
}

impl Subject for SlackSubject {
    fn destination_type(&self) -> &'static str {
        "slack"
    }

    fn config(&self) -> Value {
        json!({"webhook_url": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("send_message", None)
    }

    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![template("text", TEXT)]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("send_message", None)
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "a Slack incoming webhook can only post messages: it cannot edit or delete them, so the type declares no delete action",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .messages()
                .iter()
                .map(|m| key_of(&m.text))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"webhook_url": self.emu.url_with_token("revokedTOKEN")}),
            "invalid_token",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let text = r.body["text"].as_str().unwrap_or_default();
                Observed {
                    status: r.status,
                    records: vec![
                        json!({"key": key_of(text), "change": "added", "fields": r.body}),
                    ],
                    at: r.received_at,
                }
            })
            .collect())
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        // One message per request: Slack's 400 for a message is that record's rejection.
        self.emu
            .reject_texts(keys.iter().map(|k| format!("Customer {k}:")));
        Ok(())
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.emu.throttle_next(1, seconds);
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.emu.fail_everything();
        Ok(())
    }

    fn recover(&self) {
        self.emu.clear();
    }

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "Slack messages cannot be deleted through a webhook",
        ))
    }
}

conformance_suite!(SlackSubject::start().await);

/// A templated text and Block Kit blocks arrive as Slack's JSON, one request per record, within
/// Slack's rate (the emulator enforcing one message per second after a burst of 3); a record
/// whose text renders empty is failed without being sent; an update posts a new message.
#[tokio::test]
async fn syncs_post_templated_messages_with_blocks_within_the_rate() {
    let subject = SlackSubject::start().await;
    subject.emu.enforce_rate(3);
    let h = Harness::start().await;
    let mut rows = customers(5);
    rows[3].plan = None;
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("sl", "slack", config).await.unwrap();
    let block = json!({"type": "section", "text": {"type": "mrkdwn", "text": "Plan change"}});
    h.create_mapping_with(
        "msg",
        "m",
        "sl",
        "send_message",
        vec![
            template(
                "text",
                "{% if plan %}{{ email }} is on *{{ plan }}*{% endif %}",
            ),
            literal("blocks", json!([block])),
        ],
        None,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let run = h.sync("msg").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    let errors: Vec<&str> = run.record_errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(errors, ["4"], "{run:?}");
    assert!(run.record_errors[0].reason.contains("'text'"), "{run:?}");
    let requests = subject.emu.requests();
    assert!(
        requests.iter().all(|r| r.status == 200),
        "the default limits stay within Slack's rate: {requests:?}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    let bodies: Vec<Value> = subject.emu.messages().into_iter().map(|m| m.body).collect();
    let expected: Vec<Value> = [1, 2, 3, 5]
        .iter()
        .map(|id| {
            let plan = ["free", "pro", "enterprise"][id % 3];
            json!({"text": format!("user{id}@example.com is on *{plan}*"), "blocks": [block]})
        })
        .collect();
    assert_eq!(bodies, expected);
    assert_eq!(
        requests.len(),
        4,
        "one request per message, none for the empty text"
    );
    assert_eq!(
        requests[0].path,
        "/services/T0CONF/B0CONF/conformanceTOKEN42"
    );
    assert_eq!(requests[0].header("content-type"), Some("application/json"));

    subject.emu.clear();
    rows[0].plan = Some("enterprise".into());
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("msg").await;
    let texts: Vec<String> = subject.emu.messages().into_iter().map(|m| m.text).collect();
    assert!(
        texts.contains(&"user1@example.com is on *enterprise*".to_string()),
        "{run:?} {texts:?}"
    );
}
