//! MySQL actions: their specs, the statements of each sync mode, the parameters a record is
//! sent as, and the split of a batch into statements that fit the server's packet and
//! placeholder limits.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, Payload, SyncMode};
use serde_json::{Map, Value};

use crate::destinations::table::{Column, Operation, Table};
use crate::sources::mysql::errors::quote_ident;

/// The actions of the MySQL destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert",
        display_name: "Upsert Rows",
        description: "Writes each record as a row of the table, the record's key in the key column and every field in the column of its name: insert or update (INSERT ... ON DUPLICATE KEY UPDATE), update only, or insert only, by sync mode. `retl destination fields` lists the table's columns.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Update, SyncMode::Create],
    },
    ActionSpec {
        name: "delete",
        display_name: "Delete Rows",
        description: "Deletes the rows whose key column holds the record's key; a row that is already gone counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// Placeholders one prepared statement may hold (`?`): 65,535, MySQL's and MariaDB's limit
/// (error 1390, "Prepared statement contains too many placeholders").
pub(crate) const MAX_PLACEHOLDERS: usize = 65_535;

/// Bytes of a statement's packet that are not its values (headers, the NULL bitmap): kept
/// free under `max_allowed_packet`.
const PACKET_HEADROOM: usize = 1024;

/// Bytes a parameter costs besides its value (type, length prefix).
const PARAM_OVERHEAD: usize = 12;

/// The statements' rows: records of one group (same columns) that fit one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The columns written, the key column first.
    pub(crate) columns: Vec<String>,
    /// The records' positions in the batch.
    pub(crate) members: Vec<usize>,
}

/// A record too large for any statement: its position and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Oversized {
    /// The record's position in the batch.
    pub(crate) index: usize,
    /// Its parameters' size.
    pub(crate) bytes: usize,
}

/// A record's parameters for `columns` (the key, then its fields), converted for their
/// columns.
pub(crate) fn row_params(
    table: &Table,
    columns: &[String],
    payload: &Payload,
) -> Vec<mysql_async::Value> {
    columns
        .iter()
        .map(|name| {
            let value = if *name == table.key {
                &payload.key
            } else {
                payload.fields.get(name).unwrap_or(&Value::Null)
            };
            param(value, table.column(name))
        })
        .collect()
}

/// The bytes a parameter takes in a statement's packet.
fn param_bytes(value: &mysql_async::Value) -> usize {
    PARAM_OVERHEAD
        + match value {
            mysql_async::Value::Bytes(bytes) => bytes.len(),
            _ => 8,
        }
}

/// Splits the batch's groups into statements of at most [`MAX_PLACEHOLDERS`] placeholders and
/// `max_packet` bytes; a record that alone exceeds the packet is returned apart.
pub(crate) fn chunks(
    table: &Table,
    operation: Operation,
    batch: &[Payload],
    max_packet: usize,
) -> (Vec<Chunk>, Vec<Oversized>) {
    let budget = max_packet.saturating_sub(PACKET_HEADROOM).max(1);
    let mut chunks = Vec::new();
    let mut oversized = Vec::new();
    for group in table.groups(operation, batch) {
        // The look-up of existing rows takes two placeholders a row (ordinal, key).
        let per_row = group.columns.len().max(2);
        let max_rows = (MAX_PLACEHOLDERS / per_row).max(1);
        let mut current = Chunk {
            columns: group.columns.clone(),
            members: Vec::new(),
        };
        let mut bytes = 0;
        for i in group.members {
            let row: usize = row_params(table, &group.columns, &batch[i])
                .iter()
                .map(param_bytes)
                .sum();
            if row > budget {
                oversized.push(Oversized {
                    index: i,
                    bytes: row,
                });
                continue;
            }
            if !current.members.is_empty()
                && (bytes + row > budget || current.members.len() >= max_rows)
            {
                chunks.push(std::mem::replace(
                    &mut current,
                    Chunk {
                        columns: group.columns.clone(),
                        members: Vec::new(),
                    },
                ));
                bytes = 0;
            }
            bytes += row;
            current.members.push(i);
        }
        if !current.members.is_empty() {
            chunks.push(current);
        }
    }
    (chunks, oversized)
}

/// A JSON value as a statement parameter for `column`: numbers and booleans as numbers,
/// objects and arrays as JSON text, RFC 3339 times as `YYYY-MM-DD hh:mm:ss.ffffff` in UTC for
/// `datetime` and `timestamp` columns (and their date for `date` columns), anything as JSON
/// text for `json` columns, other text as it is.
pub(crate) fn param(value: &Value, column: Option<&Column>) -> mysql_async::Value {
    let type_name = column.map_or("", |c| c.type_name.as_str());
    if type_name.starts_with("json") && !value.is_null() {
        return mysql_async::Value::Bytes(value.to_string().into_bytes());
    }
    match value {
        Value::Null => mysql_async::Value::NULL,
        Value::Bool(b) => mysql_async::Value::Int(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => mysql_async::Value::Int(i),
            (None, Some(u)) => mysql_async::Value::UInt(u),
            _ => mysql_async::Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
            let time = if type_name.starts_with("datetime") || type_name.starts_with("timestamp") {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            } else if type_name.starts_with("date") {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.naive_utc().format("%Y-%m-%d").to_string())
            } else {
                None
            };
            mysql_async::Value::Bytes(time.unwrap_or_else(|| s.clone()).into_bytes())
        }
        Value::Array(_) | Value::Object(_) => {
            mysql_async::Value::Bytes(value.to_string().into_bytes())
        }
    }
}

/// `(?, ?, ?)` repeated for `rows` rows of `columns` values.
fn placeholders(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// `INSERT` of `rows` rows of `columns` (the key column first); with `update`, existing keys
/// have their other columns updated (`ON DUPLICATE KEY UPDATE`; with no other column, the key
/// is set to itself: nothing changes).
pub(crate) fn insert(table: &Table, columns: &[String], rows: usize, update: bool) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        table.qualified,
        quoted.join(", "),
        placeholders(columns.len(), rows)
    );
    if update {
        let key = quote_ident(&table.key);
        let set: Vec<String> = quoted
            .iter()
            .filter(|c| **c != key)
            .map(|c| format!("{c} = VALUES({c})"))
            .collect();
        let set = if set.is_empty() {
            format!("{key} = {key}")
        } else {
            set.join(", ")
        };
        sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {set}"));
    }
    sql
}

/// The rows of `columns` (the key column first) as a derived table `s`, for `rows` rows:
/// `SELECT ? AS c1, ? AS c2 UNION ALL SELECT ?, ? ...`.
fn derived(columns: &[String], rows: usize) -> String {
    let first: Vec<String> = columns
        .iter()
        .map(|c| format!("? AS {}", quote_ident(c)))
        .collect();
    let mut selects = vec![format!("SELECT {}", first.join(", "))];
    let rest = format!("SELECT {}", vec!["?"; columns.len()].join(", "));
    selects.extend(std::iter::repeat_n(rest, rows.saturating_sub(1)));
    selects.join(" UNION ALL ")
}

/// The name of the ordinal column of [`existing`]'s derived table.
const ORDINAL: &str = "retl ordinal";

/// The ordinals (parameters `n`, 1-based) of the `rows` keys that have a row, the rows
/// locked for the transaction (`FOR UPDATE`). Parameters: ordinal, key, for each row.
pub(crate) fn existing(table: &Table, rows: usize) -> String {
    let columns = [ORDINAL.to_string(), table.key.clone()];
    let key = quote_ident(&table.key);
    format!(
        "SELECT s.{} FROM ({}) AS s JOIN {} AS d ON d.{key} = s.{key} FOR UPDATE",
        quote_ident(ORDINAL),
        derived(&columns, rows),
        table.qualified
    )
}

/// `UPDATE` of the rows of `rows` keys with `columns` (the key column first) from the
/// parameters; `None` when there is no column but the key (nothing to change).
pub(crate) fn update(table: &Table, columns: &[String], rows: usize) -> Option<String> {
    let key = quote_ident(&table.key);
    let set: Vec<String> = columns
        .iter()
        .skip(1)
        .map(|c| {
            let c = quote_ident(c);
            format!("d.{c} = s.{c}")
        })
        .collect();
    if set.is_empty() {
        return None;
    }
    Some(format!(
        "UPDATE {} AS d JOIN ({}) AS s ON d.{key} = s.{key} SET {}",
        table.qualified,
        derived(columns, rows),
        set.join(", ")
    ))
}

/// `DELETE` of the rows of `rows` keys.
pub(crate) fn delete(table: &Table, rows: usize) -> String {
    format!(
        "DELETE FROM {} WHERE {} IN ({})",
        table.qualified,
        quote_ident(&table.key),
        vec!["?"; rows].join(", ")
    )
}

/// The rows a statement carries, for the test record's trace: one object per record, column
/// → value.
pub(crate) fn trace_rows(table: &Table, columns: &[String], payloads: &[&Payload]) -> Value {
    Value::Array(
        payloads
            .iter()
            .map(|p| {
                let mut row = Map::with_capacity(columns.len());
                for name in columns {
                    let value = if *name == table.key {
                        p.key.clone()
                    } else {
                        p.fields.get(name).cloned().unwrap_or(Value::Null)
                    };
                    row.insert(name.clone(), value);
                }
                Value::Object(row)
            })
            .collect(),
    )
}
