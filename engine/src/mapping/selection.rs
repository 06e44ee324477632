//! [`RecordSelection`]: which changes a mapping sends.

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
