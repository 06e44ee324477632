//! Record selection: which changes a mapping sends ([`RecordSelection`], as configured) and
//! the decision for one run ([`Selector`], which also applies the first run's "mark what is
//! there as synced").

use serde::{Deserialize, Serialize};

use crate::destination::spec::ChangeKind;

/// Which changes a mapping sends; any combination. Changes not selected still advance the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSelection {
    /// Send records whose key is new.
    pub added: bool,
    /// Send records whose mapped values changed.
    pub updated: bool,
    /// Send records that left the model.
    pub deleted: bool,
}

impl RecordSelection {
    /// Whether this change kind is selected.
    pub fn includes(&self, change: ChangeKind) -> bool {
        match change {
            ChangeKind::Added => self.added,
            ChangeKind::Updated => self.updated,
            ChangeKind::Deleted => self.deleted,
        }
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        !(self.added || self.updated || self.deleted)
    }

    /// Names of the selected kinds, e.g. `added, updated`.
    pub fn describe(&self) -> String {
        [ChangeKind::Added, ChangeKind::Updated, ChangeKind::Deleted]
            .into_iter()
            .filter(|c| self.includes(*c))
            .map(ChangeKind::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The selection decision of one run.
#[derive(Debug, Clone, Copy)]
pub struct Selector {
    selection: RecordSelection,
    first_run_marks_synced: bool,
}

impl Selector {
    /// The decision for a run of a mapping with `selection`; `first_run_marks_synced` when the
    /// mapping starts from "what is there now is already in sync" and has not completed a run.
    pub fn new(selection: RecordSelection, first_run_marks_synced: bool) -> Self {
        Selector {
            selection,
            first_run_marks_synced,
        }
    }

    /// Whether a change is sent. A change not sent still advances the state.
    pub fn sends(&self, change: ChangeKind) -> bool {
        self.selection.includes(change) && !self.marks_synced(change)
    }

    /// Whether a change is not sent because the mapping's first run marks the records already
    /// there as synced.
    pub fn marks_synced(&self, change: ChangeKind) -> bool {
        self.first_run_marks_synced && change == ChangeKind::Added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: RecordSelection = RecordSelection {
        added: true,
        updated: true,
        deleted: true,
    };

    #[test]
    fn sends_what_is_selected() {
        let upserts = RecordSelection {
            deleted: false,
            ..ALL
        };
        let s = Selector::new(upserts, false);
        assert!(s.sends(ChangeKind::Added) && s.sends(ChangeKind::Updated));
        assert!(!s.sends(ChangeKind::Deleted));
        assert_eq!(upserts.describe(), "added, updated");
    }

    #[test]
    fn a_first_run_that_marks_existing_records_synced_sends_no_additions() {
        let s = Selector::new(ALL, true);
        assert!(!s.sends(ChangeKind::Added));
        assert!(s.sends(ChangeKind::Updated) && s.sends(ChangeKind::Deleted));
    }
}
