//! [`MappingPlan`]: a mapping compiled against its model's columns and its action's spec.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use serde_json::Value;

use crate::destination::spec::{ActionSpec, ChangeKind, Fields, Payload, SyncMode};
use crate::error::Error;
use crate::mapping::select::RecordSelection;
use crate::mapping::spec::{FieldMapping, FieldSource};
use crate::mapping::value::json_value;
use crate::source::ColumnInfo;

/// Where a payload field's value comes from, resolved.
#[derive(Debug, Clone)]
enum ResolvedSource {
    /// Index into [`MappingPlan::columns`].
    Column(usize),
    /// A constant.
    Literal(Value),
}

/// A validated mapping, ready to turn rows into payloads.
#[derive(Debug, Clone)]
pub struct MappingPlan {
    /// Model columns the mapping reads, in first-use order (the fingerprint covers exactly these).
    pub columns: Vec<String>,
    fields: Vec<(String, ResolvedSource)>,
    /// The destination field names, in mapping order (shared by every payload).
    names: Arc<[String]>,
    /// Which changes are sent.
    pub selection: RecordSelection,
    /// Bytes identifying the mapping's field definitions (seeds the fingerprint).
    pub definition: Vec<u8>,
}

/// The selection an action gets when a mapping does not say.
pub fn default_selection(spec: &ActionSpec) -> RecordSelection {
    RecordSelection {
        added: spec.accepts(ChangeKind::Added),
        updated: spec.accepts(ChangeKind::Updated),
        deleted: spec.accepts(ChangeKind::Deleted),
    }
}

/// The sync mode a mapping asking for `requested` runs with: the requested one when the action
/// supports it, else the action's default.
///
/// # Errors
/// `InvalidArgument` on `mapping.sync_mode` for a mode the action does not support, listing
/// those it does.
pub fn resolve_sync_mode(
    spec: &ActionSpec,
    requested: Option<SyncMode>,
) -> Result<Option<SyncMode>, Error> {
    let Some(mode) = requested else {
        return Ok(spec.default_sync_mode());
    };
    if spec.sync_modes.contains(&mode) {
        return Ok(Some(mode));
    }
    let message = if spec.sync_modes.is_empty() {
        format!(
            "action '{}' has a single behaviour and takes no sync mode; remove sync_mode '{}'",
            spec.name,
            mode.as_str()
        )
    } else {
        let modes: Vec<&str> = spec.sync_modes.iter().map(|m| m.as_str()).collect();
        format!(
            "action '{}' does not support sync mode '{}'; it supports: {}",
            spec.name,
            mode.as_str(),
            modes.join(", ")
        )
    };
    Err(Error::invalid("mapping.sync_mode", message))
}

/// Why `field` is not a field of the action, with the fields it does take.
fn unknown_field_message(spec: &ActionSpec, field: &str) -> String {
    if spec.fields.is_empty() {
        return format!(
            "action '{}' takes no fields (it sends only the record's key), so '{field}' cannot be mapped; remove the field mappings",
            spec.name
        );
    }
    let names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
    format!(
        "action '{}' has no field '{field}'; its fields are: {}",
        spec.name,
        names.join(", ")
    )
}

impl MappingPlan {
    /// Validates `fields` and `selection` against the model's `columns` and the action `spec`.
    ///
    /// # Errors
    /// `InvalidArgument` naming the field: an unknown column (listing the model's columns), an
    /// unknown destination field (listing the action's fields), a missing required field, a field
    /// mapped twice, an empty selection, or a selected change the action cannot receive.
    pub fn compile(
        fields: &[FieldMapping],
        selection: RecordSelection,
        columns: &[ColumnInfo],
        spec: &ActionSpec,
    ) -> Result<MappingPlan, Error> {
        if selection.is_empty() {
            return Err(Error::invalid(
                "mapping.selection",
                "select at least one of added, updated, deleted",
            ));
        }
        for change in [ChangeKind::Added, ChangeKind::Updated, ChangeKind::Deleted] {
            if selection.includes(change) && !spec.accepts(change) {
                return Err(Error::invalid(
                    "mapping.selection",
                    format!(
                        "action '{}' cannot receive {} records; select only what it accepts ({}) or map to another action",
                        spec.name,
                        change.as_str(),
                        default_selection(spec).describe()
                    ),
                ));
            }
        }
        let mut plan_columns: Vec<String> = Vec::new();
        let mut resolved = Vec::with_capacity(fields.len());
        let mut seen = BTreeSet::new();
        for (i, fm) in fields.iter().enumerate() {
            let at = format!("mapping.fields[{i}]");
            if fm.field.trim().is_empty() {
                return Err(Error::invalid(format!("{at}.field"), "field name is empty"));
            }
            if !seen.insert(fm.field.as_str()) {
                return Err(Error::invalid(
                    format!("{at}.field"),
                    format!(
                        "destination field '{}' is mapped twice; map each field once",
                        fm.field
                    ),
                ));
            }
            if !spec.open_fields && !spec.fields.iter().any(|f| f.name == fm.field) {
                return Err(Error::invalid(
                    format!("{at}.field"),
                    unknown_field_message(spec, &fm.field),
                ));
            }
            let source = match &fm.source {
                FieldSource::Literal(v) => ResolvedSource::Literal(v.clone()),
                FieldSource::Column(c) => {
                    if !columns.iter().any(|col| &col.name == c) {
                        return Err(Error::invalid(
                            format!("{at}.column"),
                            format!(
                                "model has no column '{c}' (mapped to field '{}'); the model's columns are: {}",
                                fm.field,
                                columns
                                    .iter()
                                    .map(|c| c.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                    let idx = match plan_columns.iter().position(|p| p == c) {
                        Some(idx) => idx,
                        None => {
                            plan_columns.push(c.clone());
                            plan_columns.len() - 1
                        }
                    };
                    ResolvedSource::Column(idx)
                }
            };
            resolved.push((fm.field.clone(), source));
        }
        if selection.added || selection.updated {
            for f in spec.fields.iter().filter(|f| f.required) {
                if !seen.contains(f.name) {
                    return Err(Error::invalid(
                        "mapping.fields",
                        format!(
                            "action '{}' requires field '{}' ({}); map a column or a literal to it",
                            spec.name, f.name, f.description
                        ),
                    ));
                }
            }
        }
        let definition = serde_json::to_vec(fields).map_err(|e| Error::internal(e.to_string()))?;
        let names: Arc<[String]> = resolved.iter().map(|(name, _)| name.clone()).collect();
        Ok(MappingPlan {
            columns: plan_columns,
            names,
            fields: resolved,
            selection,
            definition,
        })
    }

    /// The payload of row `row`, given the plan's columns (in `self.columns` order).
    pub fn payload(
        &self,
        columns: &[ArrayRef],
        row: usize,
        key: Value,
        change: ChangeKind,
    ) -> Result<Payload, String> {
        let mut values = Vec::with_capacity(self.fields.len());
        for (name, source) in &self.fields {
            let value = match source {
                ResolvedSource::Literal(v) => v.clone(),
                ResolvedSource::Column(idx) => {
                    let array = columns.get(*idx).ok_or_else(|| {
                        format!("internal: column {idx} missing for field '{name}'")
                    })?;
                    json_value(array.as_ref(), row)
                        .map_err(|e| format!("field '{name}': value cannot be converted: {e}"))?
                }
            };
            values.push(value);
        }
        let fields = Fields::new(Arc::clone(&self.names), values)
            .ok_or_else(|| "internal: field names and values differ in number".to_string())?;
        Ok(Payload {
            key,
            change,
            fields,
            fingerprint: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::spec::{ActionKind, FieldSpec, FieldType};

    static FIELDS: [FieldSpec; 2] = [
        FieldSpec {
            name: "email",
            field_type: FieldType::String,
            required: true,
            description: "Email",
            children: &[],
        },
        FieldSpec {
            name: "plan",
            field_type: FieldType::String,
            required: false,
            description: "Plan",
            children: &[],
        },
    ];
    static UPSERT: ActionSpec = ActionSpec {
        name: "upsert_contact",
        display_name: "Upsert Contact",
        description: "",
        kind: ActionKind::Upsert,
        fields: &FIELDS,
        open_fields: false,
        sync_modes: &[],
    };

    static DELETE: ActionSpec = ActionSpec {
        name: "delete",
        display_name: "Delete",
        description: "",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    };

    #[test]
    fn a_field_on_an_action_without_fields_says_it_takes_none() {
        let sel = default_selection(&DELETE);
        let err = MappingPlan::compile(&[col("email", "email")], sel, &cols(), &DELETE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes no fields"), "{err}");
        assert!(
            !err.contains("its fields are: ;") && !err.ends_with(": "),
            "{err}"
        );
    }

    fn cols() -> Vec<ColumnInfo> {
        ["id", "email", "plan"]
            .iter()
            .map(|n| ColumnInfo {
                name: n.to_string(),
                data_type: "Utf8".into(),
                nullable: true,
            })
            .collect()
    }

    fn col(field: &str, c: &str) -> FieldMapping {
        FieldMapping {
            field: field.into(),
            source: FieldSource::Column(c.into()),
        }
    }

    #[test]
    fn valid_mapping_compiles() {
        let sel = default_selection(&UPSERT);
        let plan = MappingPlan::compile(
            &[col("email", "email"), col("plan", "plan")],
            sel,
            &cols(),
            &UPSERT,
        )
        .unwrap();
        assert_eq!(plan.columns, vec!["email", "plan"]);
    }

    #[test]
    fn errors_name_the_problem() {
        let sel = default_selection(&UPSERT);
        let err = MappingPlan::compile(&[col("email", "mail")], sel, &cols(), &UPSERT).unwrap_err();
        assert!(err.to_string().contains("no column 'mail'"), "{err}");
        let err = MappingPlan::compile(
            &[col("email", "email"), col("phone", "plan")],
            sel,
            &cols(),
            &UPSERT,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no field 'phone'"), "{err}");
        let err = MappingPlan::compile(&[col("plan", "plan")], sel, &cols(), &UPSERT).unwrap_err();
        assert!(err.to_string().contains("requires field 'email'"), "{err}");
        let del = RecordSelection {
            added: false,
            updated: false,
            deleted: true,
        };
        let err =
            MappingPlan::compile(&[col("email", "email")], del, &cols(), &UPSERT).unwrap_err();
        assert!(err.to_string().contains("cannot receive deleted"), "{err}");
        let none = RecordSelection {
            added: false,
            updated: false,
            deleted: false,
        };
        assert!(MappingPlan::compile(&[col("email", "email")], none, &cols(), &UPSERT).is_err());
    }
}
