//! [`ChangedRows`]: which rows of an extract are to be sent, and as what; two bits a row.

use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};

use crate::destination::spec::ChangeKind;

const NONE: u8 = 0;
const ADDED: u8 = 1;
const UPDATED: u8 = 2;

/// The rows of an extract that changed, by row number.
#[derive(Debug, Clone)]
pub struct ChangedRows {
    bits: Vec<u8>,
    rows: u64,
    marked: u64,
}

impl ChangedRows {
    /// None of `rows` rows marked.
    pub fn new(rows: u64) -> Self {
        ChangedRows {
            bits: vec![0; rows.div_ceil(4) as usize],
            rows,
            marked: 0,
        }
    }

    /// Marks `row` as `change` (`Added` or `Updated`; anything else is ignored).
    pub fn mark(&mut self, row: u64, change: ChangeKind) {
        let code = match change {
            ChangeKind::Added => ADDED,
            ChangeKind::Updated => UPDATED,
            ChangeKind::Deleted => return,
        };
        let Some(byte) = self.bits.get_mut((row / 4) as usize) else {
            return;
        };
        let shift = (row % 4) * 2;
        if (*byte >> shift) & 3 == NONE {
            self.marked += 1;
        }
        *byte = (*byte & !(3 << shift)) | (code << shift);
    }

    fn code(&self, row: u64) -> u8 {
        self.bits
            .get((row / 4) as usize)
            .map_or(NONE, |b| (b >> ((row % 4) * 2)) & 3)
    }

    /// What `row` is marked as, if anything.
    pub fn get(&self, row: u64) -> Option<ChangeKind> {
        match self.code(row) {
            ADDED => Some(ChangeKind::Added),
            UPDATED => Some(ChangeKind::Updated),
            _ => None,
        }
    }

    /// Rows marked.
    pub fn marked(&self) -> u64 {
        self.marked
    }

    /// The marked rows' changes, in row order.
    pub fn changes(&self) -> impl Iterator<Item = ChangeKind> + '_ {
        (0..self.rows).filter_map(|row| self.get(row))
    }

    /// A Parquet row selection of exactly the marked rows.
    pub fn selection(&self) -> RowSelection {
        let mut selectors: Vec<RowSelector> = Vec::new();
        let mut run_start = 0u64;
        let mut run_selected = false;
        for row in 0..self.rows {
            let selected = self.code(row) != NONE;
            if row == 0 {
                run_selected = selected;
            } else if selected != run_selected {
                selectors.push(selector(run_selected, row - run_start));
                run_start = row;
                run_selected = selected;
            }
        }
        if self.rows > run_start {
            selectors.push(selector(run_selected, self.rows - run_start));
        }
        RowSelection::from(selectors)
    }
}

fn selector(selected: bool, rows: u64) -> RowSelector {
    let rows = rows as usize;
    if selected {
        RowSelector::select(rows)
    } else {
        RowSelector::skip(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_counts_and_selection() {
        let mut c = ChangedRows::new(10);
        c.mark(0, ChangeKind::Added);
        c.mark(1, ChangeKind::Updated);
        c.mark(5, ChangeKind::Updated);
        c.mark(5, ChangeKind::Added);
        c.mark(9, ChangeKind::Deleted);
        c.mark(42, ChangeKind::Added);
        assert_eq!(c.marked(), 3);
        assert_eq!(c.get(5), Some(ChangeKind::Added));
        assert_eq!(c.get(2), None);
        assert_eq!(
            c.changes().collect::<Vec<_>>(),
            vec![ChangeKind::Added, ChangeKind::Updated, ChangeKind::Added]
        );
        let selectors: Vec<RowSelector> = c.selection().into();
        assert_eq!(
            selectors,
            vec![
                RowSelector::select(2),
                RowSelector::skip(3),
                RowSelector::select(1),
                RowSelector::skip(4),
            ]
        );
        assert_eq!(c.selection().row_count(), 3);
    }

    #[test]
    fn nothing_marked_selects_nothing() {
        let c = ChangedRows::new(5);
        assert_eq!(c.selection().row_count(), 0);
        assert_eq!(ChangedRows::new(0).selection().row_count(), 0);
    }
}
