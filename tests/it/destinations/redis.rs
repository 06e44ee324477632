//! The `redis` destination against a real `redis-server` started by the testkit.
//!
//! What the server received is read from its own instruments: `MONITOR` shows every command it
//! ran, so each `MULTI` ... `EXEC` of a client is one [`Observed`] request (its `HSET`/`HDEL`
//! of one key one `added` record, each `DEL` a `deleted` one); keyspace notifications
//! (`notify-keyspace-events Egh`) show what changed, so `hset` and `del` events are the
//! accepted records. Injected failures are real server behaviour: a key holding a string makes
//! `HSET` fail with `WRONGTYPE` (a per-record rejection), and `REPLICAOF` to an unreachable
//! master makes the server a read-only replica (`READONLY`: every write fails).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use retl_proto::v1;
use retl_testkit::RedisServer;
use retl_testkit::redis::Tail;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const PASSWORD: &str = "redis-secret";
const PREFIX: &str = "customer:";

/// Runs `future` to completion on a runtime of its own (the suite's controls are not async).
fn blocking<T: Send>(future: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the subject's controls")
                    .block_on(future)
            })
            .join()
            .expect("the subject's control ran")
    })
}

/// A Redis server followed by `MONITOR` and a keyspace-event subscriber.
pub(crate) struct RedisSubject {
    redis: RedisServer,
    monitor: Tail,
    events: Tail,
    /// Where the logs start since the last [`Subject::recover`] (bytes of each).
    since: Mutex<(usize, usize)>,
    /// Keys made strings by [`Subject::reject_keys`].
    rejected: Mutex<Vec<i64>>,
    marks: AtomicU64,
}

impl RedisSubject {
    async fn start() -> Self {
        let redis = RedisServer::start_with_password(PASSWORD).await.unwrap();
        redis
            .cli(&["CONFIG", "SET", "notify-keyspace-events", "Egh"])
            .await
            .unwrap();
        let monitor = redis.tail(&["MONITOR"]).unwrap();
        let events = redis
            .tail(&["--csv", "PSUBSCRIBE", "__keyevent@0__:*"])
            .unwrap();
        let subject = RedisSubject {
            redis,
            monitor,
            events,
            since: Mutex::new((0, 0)),
            rejected: Mutex::new(Vec::new()),
            marks: AtomicU64::new(0),
        };
        subject.settle();
        subject
    }

    fn cli(&self, args: &[&str]) -> String {
        blocking(self.redis.cli(args)).unwrap()
    }

    /// Waits until both logs show a marker sent now, so they hold everything before it. The
    /// marker is a `PUBLISH` on a channel the event subscriber follows (it works on a read-only
    /// replica too), sent again until both logs show it (a follower may still be connecting).
    fn settle(&self) {
        let n = self.marks.fetch_add(1, Ordering::SeqCst);
        let marker = format!("retl-marker:{n}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            self.cli(&["PUBLISH", "__keyevent@0__:retl-marker", &marker]);
            for _ in 0..20 {
                if self.monitor.text().contains(&marker) && self.events.text().contains(&marker) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "MONITOR and the keyspace events did not show {marker}"
            );
        }
    }

    fn config_with(&self, password: &str) -> Value {
        json!({"host": self.redis.host(), "port": self.redis.port(), "password": password,
               "key_prefix": PREFIX})
    }

    /// The logs since the last recovery.
    fn logs(&self) -> (String, String) {
        self.settle();
        let (monitor, events) = *self.since.lock().unwrap();
        let m = self.monitor.text();
        let e = self.events.text();
        (
            m.get(monitor..).unwrap_or_default().to_string(),
            e.get(events..).unwrap_or_default().to_string(),
        )
    }
}

/// A client's `MULTI` ... `EXEC` being read from `MONITOR`.
struct Pending {
    /// `db address`, as `MONITOR` shows the client.
    client: String,
    /// The request so far.
    request: Observed,
    /// Each key's record fields (`HSET` values, `HDEL` nulls), in the order of the keys.
    keys: Vec<(String, Value)>,
}

/// The quoted words of a `MONITOR` line (`"HSET" "customer:1" "email" "a@example.com"`).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some('r') => word.push('\r'),
                    Some(other) => word.push(other),
                    None => {}
                },
                other => word.push(other),
            }
        }
        words.push(word);
    }
    words
}

/// The key's unique id, for keys of the destination.
fn id(key: &str) -> Option<i64> {
    key.strip_prefix(PREFIX)?.parse().ok()
}

impl Subject for RedisSubject {
    fn destination_type(&self) -> &'static str {
        "redis"
    }

    fn config(&self) -> Value {
        self.config_with(PASSWORD)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("set_hash", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_hash", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let event = match change {
            "added" => "hset",
            "deleted" => "del",
            _ => return Vec::new(),
        };
        let (_, events) = self.logs();
        events
            .lines()
            .map(words)
            .filter(|w| w.len() == 4 && w[2].ends_with(&format!(":{event}")))
            .filter_map(|w| id(&w[3]))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_with("not-the-password"),
            "authentication failed",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let (monitor, _) = self.logs();
        // Per client: the request it is inside (between MULTI and EXEC).
        let mut open: Vec<Pending> = Vec::new();
        let mut done = Vec::new();
        for line in monitor.lines() {
            let Some((at, rest)) = line.split_once(' ') else {
                continue;
            };
            let Some(client) = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map(|(c, _)| c.to_string())
            else {
                continue;
            };
            let words = words(rest);
            let Some(command) = words.first().map(|c| c.to_ascii_uppercase()) else {
                continue;
            };
            let position = open.iter().position(|p| p.client == client);
            match (command.as_str(), position) {
                ("MULTI", _) => {
                    let seconds: f64 = at.parse().unwrap_or(0.0);
                    open.push(Pending {
                        client,
                        request: Observed {
                            status: 200,
                            records: Vec::new(),
                            at: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds),
                        },
                        keys: Vec::new(),
                    });
                }
                ("EXEC", Some(i)) => {
                    let Pending {
                        mut request,
                        keys: fields,
                        ..
                    } = open.remove(i);
                    // Each key's HSET and HDEL make one record, in the order of the keys.
                    for (key, fields) in fields {
                        if let Some(id) = id(&key) {
                            request
                                .records
                                .push(json!({"key": id, "change": "added", "fields": fields}));
                        }
                    }
                    if !request.records.is_empty() {
                        done.push(request);
                    }
                }
                ("HSET" | "HDEL", Some(i)) if words.len() >= 3 => {
                    let keys = &mut open[i].keys;
                    let at = match keys.iter().position(|(k, _)| *k == words[1]) {
                        Some(at) => at,
                        None => {
                            keys.push((words[1].clone(), Value::Object(Map::new())));
                            keys.len() - 1
                        }
                    };
                    let record = &mut keys[at].1;
                    if command == "HSET" {
                        for pair in words[2..].chunks(2) {
                            if let [name, value] = pair {
                                record[name.as_str()] = Value::String(value.clone());
                            }
                        }
                    } else {
                        for name in &words[2..] {
                            record[name.as_str()] = Value::Null;
                        }
                    }
                }
                ("DEL", Some(i)) if words.len() >= 2 => {
                    if let Some(id) = id(&words[1]) {
                        open[i]
                            .request
                            .records
                            .push(json!({"key": id, "change": "deleted"}));
                    }
                }
                _ => {}
            }
        }
        Ok(done)
    }

    fn observes_unchanged(&self) -> Capability<()> {
        Err(NotApplicable(
            "MONITOR shows the commands a server ran, not its answers: a refused AUTH sends no pipeline, a read-only replica refuses the queued writes before they run, and a DEL of a missing key looks like any DEL; the run's counts and the keyspace events are checked instead",
        ))
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        for key in keys {
            self.cli(&["SET", &format!("{PREFIX}{key}"), "not a hash"]);
        }
        self.rejected.lock().unwrap().extend_from_slice(keys);
        Ok(())
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        Err(NotApplicable(
            "Redis does not throttle: it has no request rate limit or Retry-After",
        ))
    }

    fn fail_everything(&self) -> Capability<()> {
        // A replica of a master that cannot be reached: read-only, its data kept.
        self.cli(&["REPLICAOF", "127.0.0.1", "1"]);
        Ok(())
    }

    fn recover(&self) {
        self.cli(&["REPLICAOF", "NO", "ONE"]);
        let rejected: Vec<i64> = std::mem::take(&mut *self.rejected.lock().unwrap());
        for key in rejected {
            self.cli(&["DEL", &format!("{PREFIX}{key}")]);
        }
        self.settle();
        *self.since.lock().unwrap() = (self.monitor.text().len(), self.events.text().len());
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        for key in keys {
            self.cli(&["DEL", &format!("{PREFIX}{key}")]);
        }
        Ok(())
    }
}

conformance_suite!(RedisSubject::start().await);

/// A sync through the daemon: each record is a hash at the prefix and its unique id, its
/// mapped fields as hash fields; a delete removes the key.
#[tokio::test]
async fn a_sync_writes_one_hash_per_record() {
    let redis = RedisServer::start_with_password(PASSWORD).await.unwrap();
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let config = json!({"host": redis.host(), "port": redis.port(), "password": PASSWORD,
                        "key_prefix": PREFIX, "database": 3});
    h.create_destination("cache", "redis", config)
        .await
        .unwrap();
    let fields = vec![
        column("email", "email"),
        column("plan", "plan"),
        literal("tier", json!(2)),
    ];
    h.create_mapping_with("up", "m", "cache", "set_hash", fields, None)
        .await
        .unwrap();
    h.create_mapping("del", "m", "cache", "delete_hash", &[], None)
        .await
        .unwrap();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    for c in customers(3) {
        let key = format!("{PREFIX}{}", c.id.unwrap());
        let email = redis
            .cli(&["-n", "3", "HGET", &key, "email"])
            .await
            .unwrap();
        assert_eq!(email, c.email);
        let plan = redis.cli(&["-n", "3", "HGET", &key, "plan"]).await.unwrap();
        assert_eq!(Some(plan), c.plan);
        let tier = redis.cli(&["-n", "3", "HGET", &key, "tier"]).await.unwrap();
        assert_eq!(tier, "2", "a number is stored as its JSON text");
    }
    retl_tests::write_parquet(&h.path("customers.parquet"), &customers(2));
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        redis
            .cli(&["-n", "3", "EXISTS", "customer:3"])
            .await
            .unwrap(),
        "0"
    );
    assert_eq!(
        redis
            .cli(&["-n", "3", "EXISTS", "customer:2"])
            .await
            .unwrap(),
        "1"
    );
}
