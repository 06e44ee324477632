//! PostgreSQL actions: their specs, the statement of each sync mode, and the JSON document a
//! batch is sent as (one parameter, turned into rows by `jsonb_populate_record`).

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, Payload, SyncMode};
use serde_json::{Map, Value};

use super::client::quote_ident;
use crate::destinations::table::{Operation, Table};

/// The actions of the PostgreSQL destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert",
        display_name: "Upsert Rows",
        description: "Writes each record as a row of the table, the record's key in the key column and every field in the column of its name: insert or update (INSERT ... ON CONFLICT DO UPDATE), update only, or insert only, by sync mode. `retl destination fields` lists the table's columns.",
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

/// The column holding each row's position in the batch (1-based) in the rows a statement reads.
const ORDINAL: &str = "\"retl ordinal\"";

/// The rows of the batch document `$1` (a JSON array of objects, column → value), typed as the
/// table's rows by `jsonb_populate_record` (each value converted by its column type's input
/// rules: numbers, booleans, text, timestamps from RFC 3339, arrays from JSON arrays, json and
/// jsonb as they are), with their ordinal.
fn rows(table: &str) -> String {
    format!(
        "WITH src AS (SELECT e.n AS {ORDINAL}, r.* FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS e(doc, n), LATERAL jsonb_populate_record(NULL::{table}, e.doc) AS r)"
    )
}

/// The statement writing `columns` (the key column first) of the batch's rows, or deleting
/// them by key.
pub(crate) fn statement(operation: Operation, table: &Table, columns: &[String]) -> String {
    let t = &table.qualified;
    let key = quote_ident(&table.key);
    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let list = quoted.join(", ");
    let values: Vec<&String> = quoted.iter().filter(|c| **c != key).collect();
    let src = rows(t);
    match operation {
        Operation::Upsert => {
            let on_conflict = if values.is_empty() {
                "DO NOTHING".to_string()
            } else {
                let set: Vec<String> = values
                    .iter()
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect();
                format!("DO UPDATE SET {}", set.join(", "))
            };
            format!(
                "{src} INSERT INTO {t} ({list}) SELECT {list} FROM src ON CONFLICT ({key}) {on_conflict}"
            )
        }
        Operation::Create => format!(
            "{src}, written AS (INSERT INTO {t} ({list}) SELECT {list} FROM src ON CONFLICT ({key}) DO NOTHING RETURNING {key}) SELECT s.{ORDINAL} FROM src s JOIN written w ON s.{key} = w.{key}"
        ),
        Operation::Update => {
            let set: Vec<String> = if values.is_empty() {
                vec![format!("{key} = d.{key}")]
            } else {
                values.iter().map(|c| format!("{c} = s.{c}")).collect()
            };
            format!(
                "{src} UPDATE {t} AS d SET {} FROM src s WHERE d.{key} = s.{key} RETURNING s.{ORDINAL}",
                set.join(", ")
            )
        }
        Operation::Delete => {
            format!("{src} DELETE FROM {t} AS d USING src s WHERE d.{key} = s.{key}")
        }
    }
}

/// The batch document: one object per payload, the key under the key column.
pub(crate) fn document(table: &Table, payloads: &[&Payload]) -> String {
    let rows: Vec<Value> = payloads
        .iter()
        .map(|p| {
            let mut row = Map::with_capacity(p.fields.len() + 1);
            row.insert(table.key.clone(), p.key.clone());
            for (name, value) in p.fields.iter() {
                row.insert(name.to_string(), value.clone());
            }
            Value::Object(row)
        })
        .collect();
    Value::Array(rows).to_string()
}
