//! The grid of the Google Sheets emulator: A1 ranges, the tabs' cells, and the operations of
//! the endpoints (read, write, append, delete rows); the server, ledger and controls are in
//! [`super`].

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::emulators::common::Reply;

/// One tab of a spreadsheet.
#[derive(Debug, Clone)]
pub(super) struct Tab {
    /// `sheetId`.
    pub(super) sheet_id: i64,
    /// Its title (the tab name of A1 ranges).
    pub(super) title: String,
    /// `gridProperties.rowCount`.
    pub(super) row_count: usize,
    /// `gridProperties.columnCount`.
    pub(super) column_count: usize,
    /// Cells by row; `Value::Null` is an empty cell.
    pub(super) cells: Vec<Vec<Value>>,
}

impl Tab {
    /// The cells with trailing empty rows and cells dropped.
    pub(super) fn trimmed(&self) -> Vec<Vec<Value>> {
        let mut rows: Vec<Vec<Value>> = self
            .cells
            .iter()
            .map(|row| {
                let end = row.iter().rposition(|c| !c.is_null()).map_or(0, |i| i + 1);
                row[..end].to_vec()
            })
            .collect();
        while rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        rows
    }

    fn used(&self) -> (usize, usize) {
        let rows = self.trimmed();
        (rows.len(), rows.iter().map(Vec::len).max().unwrap_or(0))
    }

    fn set(&mut self, row: usize, col: usize, value: Value) {
        if self.cells.len() <= row {
            self.cells.resize(row + 1, Vec::new());
        }
        let cells = &mut self.cells[row];
        if cells.len() <= col {
            cells.resize(col + 1, Value::Null);
        }
        cells[col] = value;
        self.row_count = self.row_count.max(row + 1);
        self.column_count = self.column_count.max(col + 1);
    }

    /// `sheets[].properties` of `spreadsheets.get`.
    pub(super) fn properties(&self, index: usize) -> Value {
        json!({
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count},
        })
    }
}

/// Google's error JSON.
pub(super) fn google_error(status: StatusCode, message: &str) -> Reply {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    Reply::json(
        status,
        json!({"error": {"code": status.as_u16(), "message": message, "status": name}}),
    )
}

fn bad(message: &str) -> Reply {
    google_error(StatusCode::BAD_REQUEST, message)
}

/// A parsed A1 range: the tab and 0-based inclusive bounds (`None` = open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct A1 {
    /// The tab's title.
    pub(super) tab: String,
    /// First row.
    pub(super) r0: Option<usize>,
    /// First column.
    pub(super) c0: Option<usize>,
    /// Last row.
    pub(super) r1: Option<usize>,
    /// Last column.
    pub(super) c1: Option<usize>,
}

/// `A` → 0, `Z` → 25, `AA` → 26.
pub(super) fn column_index(letters: &str) -> Option<usize> {
    if letters.is_empty() || !letters.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    letters
        .bytes()
        .try_fold(0usize, |acc, b| {
            acc.checked_mul(26)?.checked_add(usize::from(b - b'A') + 1)
        })
        .map(|n| n - 1)
}

/// 0 → `A`, 26 → `AA`.
pub(super) fn column_letters(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + u8::try_from(index % 26).unwrap_or(0));
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// `(column, row)` of a cell reference: `A1`, `A`, `1`.
fn cell(text: &str) -> Option<(Option<usize>, Option<usize>)> {
    let split = text
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(text.len());
    let (letters, digits) = text.split_at(split);
    let col = if letters.is_empty() {
        None
    } else {
        Some(column_index(&letters.to_ascii_uppercase())?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        let n: usize = digits.parse().ok()?;
        Some(n.checked_sub(1)?)
    };
    (col.is_some() || row.is_some()).then_some((col, row))
}

/// Parses `'My tab'!A1:C3`, `Sheet1!A:A`, `Sheet1!2:2`, `Sheet1!A2:A`, `Sheet1`.
pub(super) fn parse_a1(range: &str) -> Option<A1> {
    let (tab, rest) = if let Some(quoted) = range.strip_prefix('\'') {
        let mut tab = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, n)| *n) == Some('\'') {
                    chars.next();
                    tab.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                tab.push(c);
            }
        }
        (tab, &quoted[end?..])
    } else {
        match range.split_once('!') {
            Some((tab, _)) => (tab.to_string(), &range[tab.len()..]),
            None => (range.to_string(), ""),
        }
    };
    let mut a1 = A1 {
        tab,
        r0: None,
        c0: None,
        r1: None,
        c1: None,
    };
    if rest.is_empty() {
        return Some(a1);
    }
    let cells = rest.strip_prefix('!')?;
    let (start, end) = cells.split_once(':').unwrap_or((cells, cells));
    let (c0, r0) = cell(start)?;
    let (c1, r1) = cell(end)?;
    // `A2:A` is column A from row 2 down; `A:A` has no rows; `1:1` no columns.
    a1.c0 = c0;
    a1.r0 = r0;
    a1.c1 = c1;
    a1.r1 = if cells.contains(':') { r1 } else { r0 };
    if !cells.contains(':') {
        a1.c1 = c0;
    }
    Some(a1)
}

/// `'Tab'!A1:C3` for 0-based bounds.
pub(super) fn a1_text(tab: &str, r0: usize, c0: usize, r1: usize, c1: usize) -> String {
    format!(
        "'{}'!{}{}:{}{}",
        tab.replace('\'', "''"),
        column_letters(c0),
        r0 + 1,
        column_letters(c1),
        r1 + 1
    )
}

/// The tab of a range, or Google's 400 for a range that does not parse or names no tab.
pub(super) fn locate<'a>(tabs: &'a mut [Tab], range: &str) -> Result<(&'a mut Tab, A1), Reply> {
    let unable = || bad(&format!("Unable to parse range: {range}"));
    let a1 = parse_a1(range).ok_or_else(unable)?;
    let tab = tabs
        .iter_mut()
        .find(|t| t.title == a1.tab)
        .ok_or_else(unable)?;
    Ok((tab, a1))
}

/// A stored cell as `valueRenderOption` renders it.
fn render(value: &Value, formatted: bool) -> Value {
    match value {
        Value::Null => json!(""),
        Value::Bool(b) if formatted => json!(if *b { "TRUE" } else { "FALSE" }),
        Value::Number(n) if formatted => json!(n.to_string()),
        other => other.clone(),
    }
}

/// A `ValueRange` of `tab` within `a1` (rows, trailing empties dropped).
pub(super) fn read(tab: &Tab, a1: &A1, formatted: bool) -> Value {
    let (used_rows, used_cols) = tab.used();
    let r0 = a1.r0.unwrap_or(0);
    let c0 = a1.c0.unwrap_or(0);
    let r1 = a1.r1.unwrap_or(tab.row_count.saturating_sub(1));
    let c1 = a1.c1.unwrap_or(tab.column_count.saturating_sub(1));
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for r in r0..=r1.min(used_rows.saturating_sub(1)) {
        if used_rows == 0 {
            break;
        }
        let row = tab.cells.get(r).cloned().unwrap_or_default();
        let mut values: Vec<Value> = (c0..=c1.min(used_cols.saturating_sub(1)))
            .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
            .collect();
        while values.last().is_some_and(Value::is_null) {
            values.pop();
        }
        rows.push(values.iter().map(|v| render(v, formatted)).collect());
    }
    while rows.last().is_some_and(Vec::is_empty) {
        rows.pop();
    }
    let mut answer = json!({
        "range": a1_text(&tab.title, r0, c0, r1, c1),
        "majorDimension": "ROWS",
    });
    if !rows.is_empty() {
        answer["values"] = json!(rows);
    }
    answer
}

/// A value as `valueInputOption` stores it: `RAW` as given, `USER_ENTERED` parses numbers
/// and booleans out of strings.
fn input(value: &Value, user_entered: bool) -> Value {
    match value {
        Value::String(s) if user_entered => {
            if let Ok(n) = s.parse::<f64>() {
                serde_json::Number::from_f64(n).map_or_else(|| value.clone(), Value::Number)
            } else if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
                json!(s.eq_ignore_ascii_case("true"))
            } else {
                value.clone()
            }
        }
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

/// Whether a value is one the API takes in `values` (a string, number, bool or null).
fn is_cell(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// Writes `values` (rows) at the top-left of `a1`; a null is skipped, `""` clears. Returns
/// `(updatedRange, rows, columns, cells)`.
pub(super) fn write(
    tab: &mut Tab,
    a1: &A1,
    values: &[Value],
    user_entered: bool,
) -> Result<(String, usize, usize, usize), Reply> {
    let r0 = a1.r0.unwrap_or(0);
    let c0 = a1.c0.unwrap_or(0);
    let rows: Vec<&Vec<Value>> = values.iter().filter_map(Value::as_array).collect();
    if rows.len() != values.len() || rows.iter().flat_map(|r| r.iter()).any(|v| !is_cell(v)) {
        return Err(bad(
            "Invalid values: each row must be an array of strings, numbers, booleans or nulls",
        ));
    }
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if let Some(r1) = a1.r1
        && r0 + rows.len() > r1 + 1
    {
        return Err(bad(&format!(
            "Requested writing within range [{}], but tried writing to row [{}]",
            a1_text(&tab.title, r0, c0, r1, a1.c1.unwrap_or(c0)),
            r0 + rows.len()
        )));
    }
    if let Some(c1) = a1.c1
        && width > 0
        && c0 + width > c1 + 1
    {
        return Err(bad(&format!(
            "Requested writing within range [{}], but tried writing to column [{}]",
            a1_text(&tab.title, r0, c0, a1.r1.unwrap_or(r0), c1),
            column_letters(c0 + width - 1)
        )));
    }
    let mut cells = 0;
    for (i, row) in rows.iter().enumerate() {
        for (j, value) in row.iter().enumerate() {
            if value.is_null() {
                continue;
            }
            tab.set(r0 + i, c0 + j, input(value, user_entered));
            cells += 1;
        }
    }
    let range = a1_text(
        &tab.title,
        r0,
        c0,
        r0 + rows.len().max(1) - 1,
        c0 + width.max(1) - 1,
    );
    Ok((range, rows.len(), width, cells))
}

/// Appends `values` after the last row holding a value (`INSERT_ROWS`: the rows are
/// inserted, growing the grid). Returns the append's `updates` and the table range.
pub(super) fn append(
    tab: &mut Tab,
    a1: &A1,
    values: &[Value],
    user_entered: bool,
    insert_rows: bool,
) -> Result<(Value, String), Reply> {
    let (used_rows, used_cols) = tab.used();
    let c0 = a1.c0.unwrap_or(0);
    let table = a1_text(
        &tab.title,
        0,
        c0,
        used_rows.max(1) - 1,
        used_cols.max(c0 + 1) - 1,
    );
    if insert_rows {
        tab.row_count += values.len();
    }
    let target = A1 {
        tab: tab.title.clone(),
        r0: Some(used_rows),
        c0: Some(c0),
        r1: None,
        c1: None,
    };
    let (range, rows, columns, cells) = write(tab, &target, values, user_entered)?;
    Ok((
        json!({"updatedRange": range, "updatedRows": rows, "updatedColumns": columns, "updatedCells": cells}),
        table,
    ))
}

/// Deletes rows `[start, end)` of a tab (`deleteDimension`); the rows below move up.
pub(super) fn delete_rows(
    tab: &mut Tab,
    start: usize,
    end: usize,
    index: usize,
) -> Result<Vec<Vec<Value>>, Reply> {
    let what = format!("Invalid requests[{index}].deleteDimension");
    if start >= end || end > tab.row_count {
        return Err(bad(&format!(
            "{what}: the range [{start}, {end}) is not within the grid's {} rows",
            tab.row_count
        )));
    }
    if end - start >= tab.row_count {
        return Err(bad(&format!(
            "{what}: You can't delete all the rows on the sheet."
        )));
    }
    let mut removed = Vec::new();
    if start < tab.cells.len() {
        let stop = end.min(tab.cells.len());
        removed = tab.cells.drain(start..stop).collect();
    }
    tab.row_count -= end - start;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1_ranges_parse() {
        let a1 = |tab: &str, r0, c0, r1, c1| A1 {
            tab: tab.to_string(),
            r0,
            c0,
            r1,
            c1,
        };
        assert_eq!(
            parse_a1("Sheet1"),
            Some(a1("Sheet1", None, None, None, None))
        );
        assert_eq!(
            parse_a1("'My ''tab'''!A2:C3"),
            Some(a1("My 'tab'", Some(1), Some(0), Some(2), Some(2)))
        );
        assert_eq!(
            parse_a1("S!A:A"),
            Some(a1("S", None, Some(0), None, Some(0)))
        );
        assert_eq!(
            parse_a1("S!A2:A"),
            Some(a1("S", Some(1), Some(0), None, Some(0)))
        );
        assert_eq!(
            parse_a1("S!1:1"),
            Some(a1("S", Some(0), None, Some(0), None))
        );
        assert_eq!(
            parse_a1("S!AA10"),
            Some(a1("S", Some(9), Some(26), Some(9), Some(26)))
        );
        assert_eq!(parse_a1("S!A0"), None);
        assert_eq!(parse_a1("'S"), None);
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
        for i in [0, 25, 26, 51, 52, 701, 702, 18_277] {
            assert_eq!(column_index(&column_letters(i)), Some(i));
        }
    }
}
