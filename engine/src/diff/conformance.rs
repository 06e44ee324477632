//! The conformance suite every [`Differ`](crate::diff::Differ) must pass, run from each implementation's tests
//! through a [`DifferUnderTest`]: the duties of the [`Differ`](crate::diff::Differ) trait, checked on small extracts
//! against a real [`StateStore`]. A differ's error is returned; a violated duty panics with an
//! assertion naming it.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use crate::destination::spec::ChangeKind;
use crate::diff::key::key_text;
use crate::diff::{DiffSink, DiffSummary};
use crate::error::Error;
use crate::id::MappingId;
use crate::state::{Fingerprint, StateStore, StateWrite};

/// One extracted row: its key (`None` = null) and one mapped value.
pub type Row<'a> = (Option<&'a str>, i64);

/// A differ with what the suite needs to drive it.
#[async_trait]
pub trait DifferUnderTest: Send + Sync {
    /// The state store the differ reads; the suite commits acknowledged changes to it.
    fn state(&self) -> &dyn StateStore;
    /// Runs the differ for `mapping` over an extract of `rows` (a text key column and one
    /// integer column that the fingerprint covers), in the given row order.
    async fn run(
        &self,
        mapping: &MappingId,
        rows: &[Row<'_>],
        sink: &mut Found,
    ) -> Result<DiffSummary, Error>;
}

/// What a differ reported, by key text.
#[derive(Debug, Default)]
pub struct Found {
    /// Added keys: encoded key and fingerprint.
    pub added: BTreeMap<String, (Vec<u8>, Fingerprint)>,
    /// Updated keys: encoded key and fingerprint.
    pub updated: BTreeMap<String, (Vec<u8>, Fingerprint)>,
    /// Deleted keys, encoded.
    pub deleted: BTreeMap<String, Vec<u8>>,
    /// Rejected rows: key text and reason.
    pub rejected: Vec<(String, String)>,
    /// Rows reported more than once (a duty violation), by key text.
    pub repeated: BTreeSet<String>,
}

impl DiffSink for Found {
    fn changed(
        &mut self,
        change: ChangeKind,
        key: &[u8],
        _row: u64,
        fingerprint: Fingerprint,
    ) -> Result<(), Error> {
        let text = key_text(key);
        let entry = (key.to_vec(), fingerprint);
        let previous = match change {
            ChangeKind::Updated => self.updated.insert(text.clone(), entry),
            _ => self.added.insert(text.clone(), entry),
        };
        if previous.is_some() {
            self.repeated.insert(text);
        }
        Ok(())
    }

    fn deleted(&mut self, key: &[u8]) -> Result<(), Error> {
        let text = key_text(key);
        if self.deleted.insert(text.clone(), key.to_vec()).is_some() {
            self.repeated.insert(text);
        }
        Ok(())
    }

    fn rejected(&mut self, key: String, reason: String) {
        self.rejected.push((key, reason));
    }

    fn checkpoint(&mut self, _unchanged: u64) -> Result<(), Error> {
        Ok(())
    }
}

impl Found {
    /// Key texts of a map, sorted.
    fn keys<V>(map: &BTreeMap<String, V>) -> Vec<&str> {
        map.keys().map(String::as_str).collect()
    }

    /// Commits every reported change as acknowledged by a destination.
    fn acknowledge(&self, state: &dyn StateStore, mapping: &MappingId) -> Result<(), Error> {
        let mut writes = Vec::new();
        for (key, fingerprint) in self.added.values().chain(self.updated.values()) {
            writes.push(StateWrite::Put {
                key: key.clone(),
                fingerprint: *fingerprint,
                synced_by: None,
            });
        }
        for key in self.deleted.values() {
            writes.push(StateWrite::Delete { key: key.clone() });
        }
        Ok(state.commit(mapping, &writes)?)
    }
}

/// Runs once and checks that nothing was reported twice.
async fn run(
    d: &dyn DifferUnderTest,
    m: &MappingId,
    rows: &[Row<'_>],
) -> Result<(Found, DiffSummary), Error> {
    let mut found = Found::default();
    let summary = d.run(m, rows, &mut found).await?;
    assert!(
        found.repeated.is_empty(),
        "duty 1/2: keys reported twice: {:?}",
        found.repeated
    );
    Ok((found, summary))
}

/// Duties 1 and 2: first run all added; an identical run nothing; a changed value updated, a
/// vanished key deleted, a new key added; counts add up.
pub async fn detects_added_updated_unchanged_deleted(d: &dyn DifferUnderTest) -> Result<(), Error> {
    let m = MappingId::new("conformance-changes");
    let (first, summary) = run(d, &m, &[(Some("a"), 1), (Some("b"), 2), (Some("c"), 3)]).await?;
    assert_eq!(
        Found::keys(&first.added),
        vec!["a", "b", "c"],
        "duty 1: first run adds every key"
    );
    assert_eq!(
        summary,
        DiffSummary {
            unchanged: 0,
            state_keys: 0
        }
    );
    first.acknowledge(d.state(), &m)?;

    let (same, summary) = run(d, &m, &[(Some("a"), 1), (Some("b"), 2), (Some("c"), 3)]).await?;
    assert!(
        same.added.is_empty() && same.updated.is_empty() && same.deleted.is_empty(),
        "duty 1: an identical extract changes nothing: {same:?}"
    );
    assert_eq!(
        summary,
        DiffSummary {
            unchanged: 3,
            state_keys: 3
        }
    );

    let (next, summary) = run(d, &m, &[(Some("a"), 1), (Some("b"), 20), (Some("d"), 4)]).await?;
    assert_eq!(
        Found::keys(&next.added),
        vec!["d"],
        "duty 1: a new key is added"
    );
    assert_eq!(
        Found::keys(&next.updated),
        vec!["b"],
        "duty 1: a changed value is updated"
    );
    assert_eq!(
        Found::keys(&next.deleted),
        vec!["c"],
        "duty 2: a vanished key is deleted"
    );
    assert_eq!(
        summary,
        DiffSummary {
            unchanged: 1,
            state_keys: 3
        }
    );
    next.acknowledge(d.state(), &m)?;
    assert_eq!(d.state().count(&m)?, 3);
    Ok(())
}

/// Duty 3: null keys and every row of a duplicated key are rejected with a reason, and a
/// duplicated key's state entry is neither updated nor deleted.
pub async fn rejects_null_and_duplicate_keys(d: &dyn DifferUnderTest) -> Result<(), Error> {
    let m = MappingId::new("conformance-keys");
    let (first, _) = run(d, &m, &[(Some("a"), 1), (Some("b"), 2)]).await?;
    first.acknowledge(d.state(), &m)?;
    let rows = [
        (Some("a"), 10),
        (None, 5),
        (Some("b"), 3),
        (Some("b"), 4),
        (None, 6),
    ];
    let (found, _) = run(d, &m, &rows).await?;
    assert_eq!(Found::keys(&found.updated), vec!["a"]);
    assert!(
        found.deleted.is_empty(),
        "duty 3: a duplicated key is not deleted: {found:?}"
    );
    assert!(
        !found.added.contains_key("b") && !found.updated.contains_key("b"),
        "duty 3: a duplicated key is not sent"
    );
    let mut rejected: Vec<&str> = found.rejected.iter().map(|(k, _)| k.as_str()).collect();
    rejected.sort();
    assert_eq!(
        rejected.len(),
        4,
        "duty 3: every null or duplicated row is rejected: {rejected:?}"
    );
    assert_eq!(rejected.iter().filter(|k| **k == "b").count(), 2);
    assert!(
        found.rejected.iter().all(|(_, reason)| !reason.is_empty()),
        "duty 3: each rejection has a reason"
    );
    Ok(())
}

/// Duty 4: the order of the extract's rows does not matter.
pub async fn order_does_not_matter(d: &dyn DifferUnderTest) -> Result<(), Error> {
    let sorted = MappingId::new("conformance-sorted");
    let shuffled = MappingId::new("conformance-shuffled");
    for m in [&sorted, &shuffled] {
        let (first, _) = run(d, m, &[(Some("k1"), 1), (Some("k2"), 2), (Some("k5"), 5)]).await?;
        first.acknowledge(d.state(), m)?;
    }
    let rows = [
        (Some("k1"), 1),
        (Some("k2"), 22),
        (Some("k3"), 3),
        (Some("k4"), 4),
    ];
    let reversed: Vec<Row<'_>> = rows.iter().rev().copied().collect();
    let (a, sa) = run(d, &sorted, &rows).await?;
    let (b, sb) = run(d, &shuffled, &reversed).await?;
    assert_eq!(Found::keys(&a.added), Found::keys(&b.added), "duty 4");
    assert_eq!(Found::keys(&a.updated), Found::keys(&b.updated), "duty 4");
    assert_eq!(Found::keys(&a.deleted), Found::keys(&b.deleted), "duty 4");
    assert_eq!(sa, sb, "duty 4");
    assert_eq!(Found::keys(&a.added), vec!["k3", "k4"]);
    Ok(())
}

/// Duty 5 and mapping independence: the differ writes nothing, and an empty extract reports
/// every key deleted without touching another mapping.
pub async fn reads_only_its_mapping(d: &dyn DifferUnderTest) -> Result<(), Error> {
    let m = MappingId::new("conformance-one");
    let other = MappingId::new("conformance-two");
    for mapping in [&m, &other] {
        let (first, _) = run(d, mapping, &[(Some("x"), 1), (Some("y"), 2)]).await?;
        first.acknowledge(d.state(), mapping)?;
    }
    let (found, summary) = run(d, &m, &[]).await?;
    assert_eq!(Found::keys(&found.deleted), vec!["x", "y"]);
    assert_eq!(summary.state_keys, 2);
    assert_eq!(
        d.state().count(&m)?,
        2,
        "duty 5: the differ does not write the state"
    );
    assert_eq!(d.state().count(&other)?, 2, "another mapping is untouched");
    Ok(())
}

/// Every check, in order.
pub async fn run_all(d: &dyn DifferUnderTest) -> Result<(), Error> {
    detects_added_updated_unchanged_deleted(d).await?;
    rejects_null_and_duplicate_keys(d).await?;
    order_does_not_matter(d).await?;
    reads_only_its_mapping(d).await
}
