//! Google Sheets actions: their specs, the cells of a record, A1 ranges, and the plan of a
//! batch (which rows are updated, appended or deleted) from the tab's header and key column.

use std::collections::BTreeMap;

use retl_engine::destination::spec::{ActionKind, ChangeKind};
use retl_engine::destination::{ActionSpec, DestinationError, Payload, RecordOutcome};
use serde_json::{Value, json};

/// The most characters one cell holds
/// (<https://support.google.com/drive/answer/37603>): a record with a longer value is
/// rejected before sending, as Google would fail its whole request.
pub(crate) const MAX_CELL_CHARS: usize = 50_000;

/// The actions of the Google Sheets destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "upsert_rows",
        display_name: "Upsert Rows",
        description: "Writes each added or updated record as a row: the row whose key column (A) holds its unique id is updated, else a row is appended. Mapped field names are the column headers.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete_rows",
        display_name: "Delete Rows",
        description: "Deletes the rows whose key column (A) holds a deleted record's unique id; the rows below move up.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
    ActionSpec {
        name: "mirror_rows",
        display_name: "Mirror Rows",
        description: "Keeps the tab a mirror of the model by key: added and updated records are upserted as rows, deleted records' rows are deleted. Mapped field names are the column headers.",
        kind: ActionKind::Mirror,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    },
];

/// A Google Sheets action. All three share one plan: the engine sends each only the changes
/// its kind receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SheetsAction {
    /// `upsert_rows`.
    Upsert,
    /// `delete_rows`.
    Delete,
    /// `mirror_rows`.
    Mirror,
}

impl SheetsAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_rows" => Some(SheetsAction::Upsert),
            "delete_rows" => Some(SheetsAction::Delete),
            "mirror_rows" => Some(SheetsAction::Mirror),
            _ => None,
        }
    }
}

/// A key or cell as text, the form keys are matched in: a string as is, anything else as
/// JSON (`1`, `true`).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field value as a cell: strings, numbers and booleans as such, null as `""` (clears the
/// cell), objects and arrays as JSON text.
pub(crate) fn cell(value: &Value) -> Value {
    match value {
        Value::Null => json!(""),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`.
pub(crate) fn column_letters(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        // `index % 26` is below 26.
        letters.push(char::from(b'A' + (index % 26) as u8));
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.iter().rev().collect()
}

/// The tab's name quoted for A1 notation: `'Q1 ''24'`.
pub(crate) fn quoted(sheet: &str) -> String {
    format!("'{}'", sheet.replace('\'', "''"))
}

/// `'Tab'!A{row}:{last}{row}` for a 1-based row `width` columns wide.
pub(crate) fn row_range(sheet: &str, row: usize, width: usize) -> String {
    format!(
        "{}!A{row}:{}{row}",
        quoted(sheet),
        column_letters(width.max(1) - 1)
    )
}

/// What a batch does to the tab.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// The header row after the batch (column A = the key column).
    pub(crate) header: Vec<String>,
    /// Whether the header must be written (an empty tab, or new fields).
    pub(crate) header_changed: bool,
    /// Rows to overwrite: 1-based row number and cells (`null` = leave the cell).
    pub(crate) updates: Vec<(usize, Vec<Value>)>,
    /// Rows to append, in batch order.
    pub(crate) appends: Vec<Vec<Value>>,
    /// 1-based rows to delete, descending (so that each index is valid when applied).
    pub(crate) deletes: Vec<usize>,
    /// One outcome per record: `Accepted` unless rejected before sending.
    pub(crate) outcomes: Vec<RecordOutcome>,
}

/// Plans a batch over the tab's `header` (row 1) and `keys` (column A from row 2, `keys[i]`
/// being row `i + 2`), both as text.
///
/// # Errors
/// [`DestinationError::Rejected`] when column A is headed other than `key_column`.
pub(crate) fn plan(
    sheet: &str,
    key_column: &str,
    header: &[String],
    keys: &[String],
    batch: &[Payload],
) -> Result<Plan, DestinationError> {
    let mut header: Vec<String> = header.to_vec();
    while header.last().is_some_and(String::is_empty) {
        header.pop();
    }
    let mut plan = Plan::default();
    match header.first() {
        None => {
            header.push(key_column.to_string());
            plan.header_changed = true;
        }
        Some(first) if first == key_column => {}
        Some(first) => {
            return Err(DestinationError::Rejected {
                message: format!(
                    "column A of tab '{sheet}' is headed '{first}', but retl keeps each record's unique id in column A headed '{key_column}' (key_column): use an empty tab, or put the key column first"
                ),
            });
        }
    }
    for payload in batch.iter().filter(|p| p.change != ChangeKind::Deleted) {
        for (name, _) in payload.fields.iter() {
            if name != key_column && !header.iter().any(|h| h == name) {
                header.push(name.to_string());
                plan.header_changed = true;
            }
        }
    }
    let mut rows_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        if !key.is_empty() {
            rows_of.entry(key.as_str()).or_default().push(i + 2);
        }
    }
    let mut appended: BTreeMap<String, usize> = BTreeMap::new();
    let mut deletes = Vec::new();
    for payload in batch {
        let key = text(&payload.key);
        if payload.change == ChangeKind::Deleted {
            // Every row holding the key goes; none is already gone.
            deletes.extend(rows_of.get(key.as_str()).into_iter().flatten().copied());
            plan.outcomes.push(RecordOutcome::Accepted);
            continue;
        }
        if let Some(reason) = too_long(payload) {
            plan.outcomes.push(RecordOutcome::Rejected { reason });
            continue;
        }
        let mut row: Vec<Value> = vec![Value::Null; header.len()];
        row[0] = cell(&payload.key);
        for (j, name) in header.iter().enumerate().skip(1) {
            if let Some(value) = payload.fields.get(name) {
                row[j] = cell(value);
            }
        }
        match rows_of.get(key.as_str()).and_then(|rows| rows.first()) {
            Some(row_number) => plan.updates.push((*row_number, row)),
            None => match appended.get(&key) {
                Some(at) => plan.appends[*at] = row,
                None => {
                    appended.insert(key, plan.appends.len());
                    plan.appends.push(row);
                }
            },
        }
        plan.outcomes.push(RecordOutcome::Accepted);
    }
    deletes.sort_unstable_by(|a, b| b.cmp(a));
    deletes.dedup();
    plan.deletes = deletes;
    plan.header = header;
    Ok(plan)
}

/// Why a record cannot be written: a value over [`MAX_CELL_CHARS`].
fn too_long(payload: &Payload) -> Option<String> {
    payload.fields.iter().find_map(|(name, value)| {
        let chars = text(&cell(value)).chars().count();
        (chars > MAX_CELL_CHARS).then(|| {
            format!(
                "field '{name}' has {chars} characters; a Google Sheets cell holds at most {MAX_CELL_CHARS}"
            )
        })
    })
}

/// The `deleteDimension` requests of `rows` (1-based, descending), contiguous rows merged.
pub(crate) fn delete_requests(sheet_id: i64, rows: &[usize]) -> Vec<Value> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &row in rows {
        match runs.last_mut() {
            Some((start, _)) if *start == row + 1 => *start = row,
            _ => runs.push((row, row + 1)),
        }
    }
    runs.iter()
        .map(|(start, end)| {
            json!({"deleteDimension": {"range": {
                "sheetId": sheet_id,
                "dimension": "ROWS",
                "startIndex": start - 1,
                "endIndex": end - 1,
            }}})
        })
        .collect()
}
