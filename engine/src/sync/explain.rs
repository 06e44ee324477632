//! [`Explanation`]: why one record of a mapping was or was not sent, and what the next run
//! will do with it — from the mapping's state, the staged extracts, the failure list and the
//! run history. Gathered by [`SyncManager::explain`](super::manager::SyncManager::explain).

use chrono::{DateTime, Utc};

use crate::destination::spec::{ChangeKind, Payload};
use crate::error::Error;
use crate::id::MappingId;
use crate::state::Fingerprint;
use crate::sync::failures::FailedRecord;
use crate::sync::preview::{Outcome, PreviewSink};

/// The answer, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// In the latest extract with the values the state holds: nothing to send.
    InSync,
    /// Changed (added, updated or deleted): the next run sends it.
    WillSend,
    /// Failed in earlier runs and still pending: the next run sends it again.
    Failed,
    /// Given up by the mapping's retry policy: runs skip it until its values change or it is
    /// retried.
    GivenUp,
    /// Changed, but the mapping's record selection leaves this kind of change out.
    NotSelected,
    /// Changed, but the mapping's first run marks existing records synced without sending.
    MarkedSynced,
    /// Its values cannot be mapped to the destination's fields.
    Unmappable,
    /// Its delete is held back by the mass-delete safety stop.
    HeldBack,
    /// Its row is rejected before delivery (a duplicate unique id).
    Rejected,
    /// It would be sent, but the mapping or the destination is disabled.
    Disabled,
    /// No longer in the model, and nothing is left to send for it.
    Left,
    /// Not in the latest extract, any kept extract, the state or the failure list.
    NotFound,
}

impl Verdict {
    /// The snake_case name (`in_sync`, `will_send`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::InSync => "in_sync",
            Verdict::WillSend => "will_send",
            Verdict::Failed => "failed",
            Verdict::GivenUp => "given_up",
            Verdict::NotSelected => "not_selected",
            Verdict::MarkedSynced => "marked_synced",
            Verdict::Unmappable => "unmappable",
            Verdict::HeldBack => "held_back",
            Verdict::Rejected => "rejected",
            Verdict::Disabled => "disabled",
            Verdict::Left => "left",
            Verdict::NotFound => "not_found",
        }
    }
}

/// A kept staged extract of the mapping's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptExtract {
    /// The run (or dry run) that staged it.
    pub run_id: String,
    /// When it was staged (from the run id).
    pub time: Option<DateTime<Utc>>,
}

/// What the state holds for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFacts {
    /// The fingerprint of the mapped values last synced.
    pub fingerprint: Fingerprint,
    /// The run that wrote it, while its record is kept (`None`: pruned, or written before
    /// runs were recorded).
    pub run_id: Option<String>,
    /// When that run started (`None` for entries written before runs were recorded).
    pub synced_at: Option<DateTime<Utc>>,
    /// Whether that run sent the record (`false`: it advanced the state without sending);
    /// `None` for entries written before runs were recorded.
    pub sent: Option<bool>,
}

/// A per-record error a run recorded for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The run.
    pub run_id: String,
    /// `validate`, `map` or `deliver`.
    pub stage: String,
    /// Why (for `deliver`, the destination's answer).
    pub reason: String,
}

/// Why one record was or was not sent.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The mapping.
    pub mapping_id: MappingId,
    /// The unique id, as text.
    pub key: String,
    /// The answer.
    pub verdict: Verdict,
    /// The answer in a sentence, with what to do about it.
    pub reason: String,
    /// The extract compared (the model's latest, or a fresh one).
    pub extract: KeptExtract,
    /// Rows of that extract with this unique id (more than 1: a duplicate).
    pub rows_in_extract: u64,
    /// When not in the compared extract: the newest kept extract that has it.
    pub last_seen_in: Option<KeptExtract>,
    /// ... and the first kept extract after that one without it (when it left).
    pub left_with: Option<KeptExtract>,
    /// The fingerprint of its mapped values in the compared extract, when changed there
    /// (unchanged: the state's).
    pub extract_fingerprint: Option<Fingerprint>,
    /// What the state holds.
    pub state: Option<StateFacts>,
    /// Its entry in the failure list.
    pub failure: Option<FailedRecord>,
    /// The change the next run sees, if any.
    pub next_change: Option<ChangeKind>,
    /// What the next run does with it (`send`, `not_selected`, ... as in `retl.diff`).
    pub next_outcome: Option<&'static str>,
    /// The payload it would send.
    pub payload: Option<Payload>,
    /// Per-record errors recent runs recorded for it, newest first.
    pub errors: Vec<KeyError>,
    /// What stops every run of the mapping (mapping or destination disabled).
    pub blockers: Vec<String>,
    /// Why its values cannot be mapped, or why its rows are rejected.
    pub detail: Option<String>,
}

/// The preview's sink while explaining: keeps what the run would do with one key.
#[derive(Debug)]
pub struct FindKey {
    /// The key, as text.
    pub key: String,
    /// Its change and outcome, once seen.
    pub found: Option<(ChangeKind, Outcome, Option<Fingerprint>)>,
    /// Why its rows would be rejected.
    pub rejected: Option<String>,
}

impl FindKey {
    /// Looks for `key` (text, as `retl.state` and run errors show keys).
    pub fn new(key: &str) -> Self {
        FindKey {
            key: key.to_string(),
            found: None,
            rejected: None,
        }
    }
}

impl PreviewSink for FindKey {
    fn change(
        &mut self,
        key: &[u8],
        change: ChangeKind,
        outcome: Outcome,
        fingerprint: Option<Fingerprint>,
    ) -> Result<(), Error> {
        if self.found.is_none() && crate::diff::key::key_text(key) == self.key {
            self.found = Some((change, outcome, fingerprint));
        }
        Ok(())
    }

    fn rejected(&mut self, key: String, reason: String) {
        if key == self.key && self.rejected.is_none() {
            self.rejected = Some(reason);
        }
    }
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "an unknown time".to_string())
}

fn run_name(id: &Option<String>, at: Option<DateTime<Utc>>) -> String {
    match id {
        Some(id) => format!("run {id} ({})", when(at)),
        None if at.is_some() => format!("a run at {} (its record was pruned)", when(at)),
        None => "an earlier run (state written before retl recorded runs)".to_string(),
    }
}

impl Explanation {
    /// How the state came to hold the record, in words.
    fn last_synced(&self) -> String {
        match &self.state {
            None => "the state holds nothing for it".to_string(),
            Some(s) => match s.sent {
                Some(false) => format!(
                    "{} recorded it without sending it (not selected by the mapping's record selection, or marked synced by its first run)",
                    run_name(&s.run_id, s.synced_at)
                ),
                _ => format!(
                    "{} sent it and the destination acknowledged it",
                    run_name(&s.run_id, s.synced_at)
                ),
            },
        }
    }

    /// Words the verdict and the facts behind it.
    pub fn word(&mut self, mapping_selection: &str, retry: &str) {
        let m = self.mapping_id.as_str();
        let key = &self.key;
        let change = self.next_change.map(ChangeKind::as_str).unwrap_or("change");
        let why_change = match (self.next_change, &self.state) {
            (Some(ChangeKind::Added), _) => {
                "it is new (the state holds nothing for it)".to_string()
            }
            (Some(ChangeKind::Updated), Some(_)) => format!(
                "its mapped values changed (fingerprint {} in the extract, {} in the state) since {}",
                hex(self.extract_fingerprint),
                hex(self.state.as_ref().map(|s| s.fingerprint)),
                self.last_synced()
            ),
            (Some(ChangeKind::Deleted), _) => format!(
                "it left the model (not in the extract of run {}); before that, {}",
                self.extract.run_id,
                self.last_synced()
            ),
            _ => String::new(),
        };
        self.reason = match self.verdict {
            Verdict::InSync => format!("unchanged since {}", self.last_synced()),
            Verdict::WillSend => format!("{why_change}; the next run sends it ({change})"),
            Verdict::Failed => {
                let f = self.failure.as_ref();
                format!(
                    "failed in {} run(s), last in run {}: {}; the next run sends it again ({retry})",
                    f.map_or(0, |f| f.attempts),
                    f.map_or("?", |f| f.last_run.as_str()),
                    f.map_or("", |f| f.last_error.as_str()),
                )
            }
            Verdict::GivenUp => {
                let f = self.failure.as_ref();
                format!(
                    "given up after failing in {} run(s) (last error: {}); runs skip it until its values change, or send it again with: retl sync retry {m} {key}",
                    f.map_or(0, |f| f.attempts),
                    f.map_or("", |f| f.last_error.as_str()),
                )
            }
            Verdict::NotSelected => format!(
                "{why_change}, but mapping '{m}' does not send {change} records (its record selection sends {mapping_selection}); the state advances without sending it"
            ),
            Verdict::MarkedSynced => format!(
                "this is mapping '{m}''s first run and its initial sync marks records already in the model as synced without sending them"
            ),
            Verdict::Unmappable => format!(
                "its values cannot be mapped: {}; fix the mapping or the data (counted as failed)",
                self.detail.as_deref().unwrap_or("see retl.diff")
            ),
            Verdict::HeldBack => format!(
                "{why_change}, but its delete is held back by the mass-delete safety stop; if the deletes are right, run: retl sync run {m} --confirm-mass-delete"
            ),
            Verdict::Rejected => format!(
                "the run rejects its rows before delivery: {}; make the model's unique id unique",
                self.detail.as_deref().unwrap_or("a duplicate unique id")
            ),
            Verdict::Disabled => format!(
                "{why_change}; it would be sent ({change}), but {}",
                self.blockers.join("; ")
            ),
            Verdict::Left => match (&self.last_seen_in, &self.left_with) {
                (Some(seen), Some(left)) => format!(
                    "not in the model any more: last in the extract of run {} ({}), gone in the extract of run {} ({}); {}",
                    seen.run_id,
                    when(seen.time),
                    left.run_id,
                    when(left.time),
                    self.last_synced()
                ),
                _ => format!(
                    "not in the model any more (not in the extract of run {}); {}",
                    self.extract.run_id,
                    self.last_synced()
                ),
            },
            Verdict::NotFound => format!(
                "no row has unique id '{key}' in the extract of run {}, nor in any kept extract, the state or the failure list; check the value (ids are compared as text, as retl.state shows them)",
                self.extract.run_id
            ),
        };
    }
}

fn hex(fp: Option<Fingerprint>) -> String {
    fp.map_or_else(|| "?".to_string(), |f| format!("{:032x}", f.0))
}

/// Decides the verdict from what the preview found and the facts gathered.
pub fn verdict(e: &Explanation, found: Option<&Outcome>, rejected: bool) -> Verdict {
    if rejected {
        return Verdict::Rejected;
    }
    match found {
        Some(Outcome::Send(_)) => {
            if !e.blockers.is_empty() {
                Verdict::Disabled
            } else if e.failure.as_ref().is_some_and(|f| !f.given_up) {
                Verdict::Failed
            } else {
                Verdict::WillSend
            }
        }
        Some(Outcome::GivenUp) => Verdict::GivenUp,
        Some(Outcome::NotSelected) => Verdict::NotSelected,
        Some(Outcome::MarkedSynced) => Verdict::MarkedSynced,
        Some(Outcome::Unmappable(_)) => Verdict::Unmappable,
        Some(Outcome::HeldBack) => Verdict::HeldBack,
        None if e.rows_in_extract > 0 => Verdict::InSync,
        None if e.last_seen_in.is_some() || e.state.is_some() || e.failure.is_some() => {
            Verdict::Left
        }
        None => Verdict::NotFound,
    }
}
