//! What the database-table destinations (`postgres`, `mysql`) share: their two actions, the
//! operation of each sync mode, the table as its server describes it, the checks of a batch
//! against it, the grouping of a batch by the columns its records write, the table's columns as
//! action fields, the column kinds of a table created from a batch, and the sorting of statement
//! errors into a record's data and everything else.
//!
//! Each connector keeps what its server does differently: the catalog queries, the statements,
//! the driver's transactions and savepoints, and the wording of its errors.

use std::borrow::Cow;

use retl_engine::destination::{
    ActionSpec, DestinationError, FieldInfo, FieldType, Payload, SyncMode,
};
use retl_engine::source::SourceError;
use serde_json::Value;

use crate::destinations::invalid_config;

/// An action of a table destination: both declare `upsert` and `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableAction {
    /// `upsert`: insert or update rows, by sync mode.
    Upsert,
    /// `delete`: delete rows by key.
    Delete,
}

impl TableAction {
    /// The action of a spec named `upsert` or `delete`.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert" => Some(TableAction::Upsert),
            "delete" => Some(TableAction::Delete),
            _ => None,
        }
    }
}

/// What one statement does with its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Insert or update (`upsert` mode).
    Upsert,
    /// Update existing rows only (`update` mode).
    Update,
    /// Insert new rows only (`create` mode).
    Create,
    /// Delete by key.
    Delete,
}

impl Operation {
    /// The operation of an action in a sync mode.
    pub(crate) fn of(action: TableAction, mode: Option<SyncMode>) -> Self {
        match (action, mode) {
            (TableAction::Delete, _) => Operation::Delete,
            (TableAction::Upsert, Some(SyncMode::Update)) => Operation::Update,
            (TableAction::Upsert, Some(SyncMode::Create)) => Operation::Create,
            (TableAction::Upsert, _) => Operation::Upsert,
        }
    }

    /// Whether the operation leaves some records unwritten by design (no row for an update, an
    /// existing row for a create), so the connector must find out which.
    pub(crate) fn may_skip(self) -> bool {
        matches!(self, Operation::Update | Operation::Create)
    }

    /// Why a record the statement did not write was refused.
    pub(crate) fn not_written_reason(self, table: &str, key: &Value) -> String {
        match self {
            Operation::Update => format!(
                "no row of {table} has key {key}; sync mode update only changes existing rows (use upsert to insert it)"
            ),
            _ => format!(
                "a row of {table} with key {key} exists already; sync mode create never changes existing rows (use upsert to update it)"
            ),
        }
    }
}

/// How a server spells what the shared messages show.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// Quotes an identifier (`"name"`, `` `name` ``).
    pub(crate) quote: fn(&str) -> String,
    /// What inserting by key needs the unique index for (`ON CONFLICT`).
    pub(crate) upsert_clause: &'static str,
}

/// One column of the table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// Its name.
    pub(crate) name: String,
    /// Its type as the server prints it (`text`, `varchar(100)`, `integer[]`).
    pub(crate) type_name: String,
    /// The field type its values take.
    pub(crate) field_type: FieldType,
    /// `NOT NULL` without a default (nor identity, nor generated): a new row needs a value.
    pub(crate) required: bool,
    /// A generated column, which cannot be written.
    pub(crate) generated: bool,
}

/// The table written, as the server describes it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// The table's name quoted for statements (`"schema"."table"`, `` `db`.`table` ``).
    pub(crate) qualified: String,
    /// `schema.table`, for messages.
    pub(crate) display: String,
    /// The key column.
    pub(crate) key: String,
    /// Whether a one-column unique index covers the key column, as inserting by key needs.
    pub(crate) key_unique: bool,
    /// Every column, in table order.
    pub(crate) columns: Vec<Column>,
    /// The privileges the user lacks among SELECT, INSERT, UPDATE, DELETE.
    pub(crate) missing_privileges: Vec<&'static str>,
    /// The server's spelling.
    pub(crate) dialect: &'static Dialect,
}

impl Table {
    /// The column named `name`.
    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Some column names, for messages.
    pub(crate) fn column_names(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        crate::sources::some_names(&names)
    }

    /// The columns a mapping may write, as the upsert action's fields: all but the key column
    /// and generated columns.
    pub(crate) fn fields(&self) -> Vec<FieldInfo> {
        self.columns
            .iter()
            .filter(|column| column.name != self.key && !column.generated)
            .map(|column| FieldInfo {
                name: Cow::Owned(column.name.clone()),
                field_type: column.field_type,
                required: column.required,
                description: Cow::Owned(format!(
                    "column of type {}{}",
                    column.type_name,
                    if column.required {
                        ", NOT NULL without a default"
                    } else {
                        ""
                    }
                )),
                children: Vec::new(),
            })
            .collect()
    }

    /// What the table must allow for `operation` and the batch's fields; an error stops the
    /// run (every batch would fail the same way).
    pub(crate) fn check(
        &self,
        operation: Operation,
        batch: &[Payload],
    ) -> Result<(), DestinationError> {
        let quote = self.dialect.quote;
        if !self.missing_privileges.is_empty() {
            return Err(DestinationError::Authentication {
                message: format!(
                    "the user may not {} table {}; run GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO <user>",
                    self.missing_privileges.join(", "),
                    self.display,
                    self.display
                ),
            });
        }
        if matches!(operation, Operation::Upsert | Operation::Create) && !self.key_unique {
            return Err(invalid_config(
                "key_column",
                format!(
                    "column '{}' of {} has no unique index, which inserting by key ({}) needs; run CREATE UNIQUE INDEX {} ON {} ({})",
                    self.key,
                    self.display,
                    self.dialect.upsert_clause,
                    quote(&format!("{}_key", self.key)),
                    self.display,
                    quote(&self.key)
                ),
            ));
        }
        for name in field_names(batch) {
            if name == self.key {
                return Err(invalid_config(
                    "key_column",
                    format!(
                        "the mapping sets field '{name}', the key column of {}, which retl fills with the record's key; remove that field from the mapping",
                        self.display
                    ),
                ));
            }
            match self.column(name) {
                None => {
                    return Err(invalid_config(
                        "table",
                        format!(
                            "{} has no column '{name}' (a field of the mapping; its columns: {}); map the field to one of them, or add the column (ALTER TABLE {} ADD COLUMN {} <type>)",
                            self.display,
                            self.column_names(),
                            self.display,
                            quote(name)
                        ),
                    ));
                }
                Some(column) if column.generated => {
                    return Err(invalid_config(
                        "table",
                        format!(
                            "column '{name}' of {} is generated and cannot be written; remove the field from the mapping",
                            self.display
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The batch's records grouped by the columns they write, the key column first (records
    /// differ only when the mapping leaves NULL fields out; a delete writes the key only).
    pub(crate) fn groups(&self, operation: Operation, batch: &[Payload]) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for (i, payload) in batch.iter().enumerate() {
            let mut columns = vec![self.key.clone()];
            if operation != Operation::Delete {
                columns.extend(payload.fields.iter().map(|(name, _)| name.to_string()));
            }
            match groups.iter_mut().find(|g| g.columns == columns) {
                Some(group) => group.members.push(i),
                None => groups.push(Group {
                    columns,
                    members: vec![i],
                }),
            }
        }
        groups
    }
}

/// The records of a batch that write the same columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The columns, the key column first.
    pub(crate) columns: Vec<String>,
    /// The records' positions in the batch.
    pub(crate) members: Vec<usize>,
}

/// The field names of a batch, each once, in first-seen order (payloads of a mapping share
/// their names, except those `null_values: omit` left out).
pub(crate) fn field_names(batch: &[Payload]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for payload in batch {
        for (name, _) in payload.fields.iter() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// What the values of a column of a table created from a batch are (the first value that is
/// not null decides; text when every value is null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// `true` / `false`.
    Boolean,
    /// A number that fits a signed 64-bit integer.
    Integer,
    /// An integer above `i64::MAX`.
    Unsigned,
    /// Any other number.
    Float,
    /// An object or an array.
    Json,
    /// Text (and every other value).
    Text,
}

impl ValueKind {
    /// The kind of `values`.
    pub(crate) fn of<'a>(values: impl IntoIterator<Item = &'a Value>) -> Self {
        match values.into_iter().find(|v| !v.is_null()) {
            Some(Value::Bool(_)) => ValueKind::Boolean,
            Some(Value::Number(n)) if n.is_i64() => ValueKind::Integer,
            Some(Value::Number(n)) if n.is_u64() => ValueKind::Unsigned,
            Some(Value::Number(_)) => ValueKind::Float,
            Some(Value::Array(_) | Value::Object(_)) => ValueKind::Json,
            _ => ValueKind::Text,
        }
    }
}

/// The columns of a table created for `payloads`: the key's kind, then each field (but one
/// named `key_column`) with the kind of its values.
pub(crate) fn planned_columns<'a>(
    key_column: &str,
    payloads: &'a [Payload],
) -> (ValueKind, Vec<(&'a str, ValueKind)>) {
    let key = payloads
        .first()
        .map_or(ValueKind::Text, |p| ValueKind::of(std::iter::once(&p.key)));
    let columns = field_names(payloads)
        .into_iter()
        .filter(|name| *name != key_column)
        .map(|name| {
            let values = payloads.iter().filter_map(|p| p.fields.get(name));
            (name, ValueKind::of(values))
        })
        .collect();
    (key, columns)
}

/// A failed statement: the data of some record (retried record by record), or something every
/// statement would hit.
#[derive(Debug)]
pub(crate) enum StatementError {
    /// A record's values broke a constraint or a type's rules: the server's message.
    Data(String),
    /// Everything else.
    Fatal(FatalError),
}

/// A statement error that is not about one record's data.
#[derive(Debug)]
pub(crate) enum FatalError {
    /// The server refused the login.
    Authentication(String),
    /// A privilege is missing.
    Privilege(String),
    /// The table does not exist.
    MissingTable(String),
    /// The server cannot serve now: lost connection, shutdown, serialization failure or
    /// deadlock, resources, a read-only server (a standby after a failover), a statement
    /// timeout. Retried.
    Transient(String),
    /// Anything else (a column that does not exist, a type that cannot be cast): the batch
    /// is rejected.
    Rejected(String),
}

/// A source-side connection error (the connection code is the source's) as a destination's.
pub(crate) fn from_source_error(error: SourceError) -> DestinationError {
    match error {
        SourceError::InvalidConfig { field, message } => invalid_config(field, message),
        SourceError::Authentication { message } | SourceError::PermissionDenied { message } => {
            DestinationError::Authentication { message }
        }
        SourceError::Unavailable { message } => DestinationError::Transient {
            message,
            retry_after: None,
            throttled: false,
        },
        other => DestinationError::Rejected {
            message: other.to_string(),
        },
    }
}

/// What to say of a table that does not exist when it is written (config field `table`).
pub(crate) fn missing_table(table: &str, database: &str) -> String {
    format!(
        "table {table} does not exist in database '{database}'; create it with a unique key column, or set create_table: true"
    )
}

#[cfg(test)]
mod tests {
    use retl_engine::destination::spec::ChangeKind;
    use serde_json::json;

    use super::*;

    fn payload(key: Value, fields: Value) -> Payload {
        Payload {
            key,
            change: ChangeKind::Added,
            fields: fields.as_object().cloned().unwrap_or_default().into(),
            fingerprint: None,
        }
    }

    static DIALECT: Dialect = Dialect {
        quote: |name| format!("\"{name}\""),
        upsert_clause: "ON CONFLICT",
    };

    fn table() -> Table {
        let column = |name: &str, generated| Column {
            name: name.into(),
            type_name: "text".into(),
            field_type: FieldType::String,
            required: false,
            generated,
        };
        Table {
            qualified: "\"t\"".into(),
            display: "public.t".into(),
            key: "id".into(),
            key_unique: true,
            columns: vec![
                column("id", false),
                column("email", false),
                column("upper", true),
            ],
            missing_privileges: Vec::new(),
            dialect: &DIALECT,
        }
    }

    #[test]
    fn groups_follow_the_written_columns() {
        let batch = [
            payload(json!(1), json!({"email": "a"})),
            payload(json!(2), json!({})),
            payload(json!(3), json!({"email": "c"})),
        ];
        let groups = table().groups(Operation::Upsert, &batch);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].columns, ["id", "email"]);
        assert_eq!(groups[0].members, [0, 2]);
        assert_eq!(
            table().groups(Operation::Delete, &batch)[0].members,
            [0, 1, 2]
        );
    }

    #[test]
    fn checks_name_the_column_and_the_fix() {
        let t = table();
        let error = t
            .check(
                Operation::Upsert,
                &[payload(json!(1), json!({"plan": "x"}))],
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no column 'plan'") && error.contains("ADD COLUMN \"plan\""));
        let error = t
            .check(
                Operation::Upsert,
                &[payload(json!(1), json!({"upper": "x"}))],
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("generated"), "{error}");
        assert!(
            t.check(
                Operation::Upsert,
                &[payload(json!(1), json!({"email": "x"}))]
            )
            .is_ok()
        );
        let names: Vec<String> = t.fields().iter().map(|f| f.name.to_string()).collect();
        assert_eq!(names, ["email"]);
    }

    #[test]
    fn planned_columns_take_the_first_value_that_is_not_null() {
        let batch = [
            payload(json!(7), json!({"a": null, "b": 1.5, "id": 3})),
            payload(json!(8), json!({"a": true, "b": 2, "c": [1]})),
        ];
        let (key, columns) = planned_columns("id", &batch);
        assert_eq!(key, ValueKind::Integer);
        assert_eq!(
            columns,
            [
                ("a", ValueKind::Boolean),
                ("b", ValueKind::Float),
                ("c", ValueKind::Json)
            ]
        );
    }
}
