//! [`MappingPlan`]: a mapping compiled against its model's columns and its action's spec, and
//! the step that turns staged rows into payloads.
//!
//! Compiling checks everything a user can get wrong, each as an `INVALID_ARGUMENT` naming the
//! field: an unknown column (with the closest names), an unknown field or path, a field mapped
//! twice, a required field left unmapped, a template or expression that does not parse or reads
//! an unknown column, a column or expression whose type can never become the field's type, a
//! literal of the wrong type, a sync mode or record change the action does not take.
//!
//! Per batch, [`MappingPlan::evaluate`] computes every SQL expression (vectorised); per row,
//! [`MappingPlan::payload`] reads columns, renders templates, coerces each value to its field's
//! type and places it at its path (dotted paths build objects).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use serde_json::Value;

use crate::destination::spec::{ActionSpec, ChangeKind, Fields, Payload, SyncMode};
use crate::error::Error;
use crate::mapping::coerce::{can_coerce, coerce};
use crate::mapping::expression::{self, CompiledExpression};
use crate::mapping::select::RecordSelection;
use crate::mapping::spec::{FieldMapping, FieldSource, MappingDef, NullValues};
use crate::mapping::suggest::closest;
use crate::mapping::target::{self, RecordBuilder, Target};
use crate::mapping::template::Templates;
use crate::mapping::value::json_value;

/// What a mapping says about its records, as the plan compiles it.
#[derive(Debug, Clone, Copy)]
pub struct MappingRules<'a> {
    /// The field mappings.
    pub fields: &'a [FieldMapping],
    /// Which changes are sent.
    pub selection: RecordSelection,
    /// The requested sync mode.
    pub sync_mode: Option<SyncMode>,
    /// What NULL values do.
    pub null_values: NullValues,
}

impl MappingDef {
    /// The rules of this mapping.
    pub fn rules(&self) -> MappingRules<'_> {
        MappingRules {
            fields: &self.fields,
            selection: self.selection,
            sync_mode: self.sync_mode,
            null_values: self.null_values,
        }
    }
}

/// Where a payload field's value comes from, resolved.
#[derive(Debug, Clone)]
enum ResolvedSource {
    /// Index into [`MappingPlan::columns`].
    Column(usize),
    /// A constant, already coerced to the field's type.
    Literal(Value),
    /// A template handle and the plan columns it reads (name, index).
    Template(usize, Vec<(String, usize)>),
    /// Index into the plan's expressions.
    Expression(usize),
}

/// One mapped field, resolved.
#[derive(Debug, Clone)]
struct PlannedField {
    /// Where it goes.
    target: Target,
    /// The path as written, for messages.
    label: String,
    /// Index of its top-level field in the payload.
    slot: usize,
    /// Where its value comes from.
    source: ResolvedSource,
}

/// A validated mapping, ready to turn rows into payloads.
#[derive(Debug, Clone)]
pub struct MappingPlan {
    /// Model columns the mapping reads (directly, in templates or in expressions), in first-use
    /// order; the fingerprint covers exactly these.
    pub columns: Vec<String>,
    fields: Vec<PlannedField>,
    /// The top-level destination field names, in mapping order (shared by every payload).
    names: Arc<[String]>,
    /// Whether every field is top-level (no object is assembled from paths).
    flat: bool,
    templates: Arc<Templates>,
    expressions: Vec<CompiledExpression>,
    /// The schema of the batches [`MappingPlan::evaluate`] receives: [`MappingPlan::columns`].
    batch_schema: SchemaRef,
    null_values: NullValues,
    /// Which changes are sent.
    pub selection: RecordSelection,
    /// The sync mode the action runs with (`None` when it has a single behaviour).
    pub sync_mode: Option<SyncMode>,
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

/// Checks the selection against what the action accepts.
fn check_selection(selection: RecordSelection, spec: &ActionSpec) -> Result<(), Error> {
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
    Ok(())
}

/// "model has no column 'x'", with the closest names and the full list.
fn unknown_column(schema: &Schema, column: &str, used_by: &str) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let hint = match closest(column, names.iter().copied()) {
        Some(best) => format!(" (did you mean '{best}'?)"),
        None => String::new(),
    };
    format!(
        "model has no column '{column}' ({used_by}){hint}; the model's columns are: {}",
        names.join(", ")
    )
}

/// Collects columns in first-use order.
#[derive(Default)]
struct ColumnSet {
    names: Vec<String>,
}

impl ColumnSet {
    fn index(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        }
    }
}

/// A field's source before expressions are bound to the run's columns.
enum Pending {
    Ready(ResolvedSource),
    Expression(expression::ParsedExpression),
}

impl MappingPlan {
    /// Validates `rules` against the model's columns (`schema`) and the action `spec`.
    ///
    /// # Errors
    /// `InvalidArgument` naming the field (see the module docs).
    pub fn compile(
        rules: MappingRules<'_>,
        schema: &Schema,
        spec: &ActionSpec,
    ) -> Result<MappingPlan, Error> {
        check_selection(rules.selection, spec)?;
        let sync_mode = resolve_sync_mode(spec, rules.sync_mode)?;
        let mut columns = ColumnSet::default();
        let mut templates = Templates::default();
        let mut targets = Vec::with_capacity(rules.fields.len());
        let mut pending = Vec::with_capacity(rules.fields.len());
        for (i, fm) in rules.fields.iter().enumerate() {
            let at = format!("mapping.fields[{i}]");
            if fm.field.trim().is_empty() {
                return Err(Error::invalid(format!("{at}.field"), "field name is empty"));
            }
            let target = target::resolve(spec, &fm.field)
                .map_err(|m| Error::invalid(format!("{at}.field"), m))?;
            let ty = target.field_type;
            let source_at = format!("{at}.{}", fm.source.kind());
            let used_by = format!("mapped to field '{}'", fm.field);
            let source = match &fm.source {
                FieldSource::Literal(v) => {
                    let value = coerce(v.clone(), ty).map_err(|m| {
                        Error::invalid(&source_at, format!("field '{}': {m}", fm.field))
                    })?;
                    Pending::Ready(ResolvedSource::Literal(value))
                }
                FieldSource::Column(c) => {
                    let field = schema.field_with_name(c).map_err(|_| {
                        Error::invalid(&source_at, unknown_column(schema, c, &used_by))
                    })?;
                    check_type(
                        &source_at,
                        &fm.field,
                        field.data_type(),
                        ty,
                        &format!("column '{c}'"),
                    )?;
                    Pending::Ready(ResolvedSource::Column(columns.index(c)))
                }
                FieldSource::Template(source) => {
                    let (handle, names) = templates.add(source).map_err(|m| {
                        Error::invalid(&source_at, format!("the template does not parse: {m}"))
                    })?;
                    let mut reads = Vec::with_capacity(names.len());
                    for name in names {
                        if schema.field_with_name(&name).is_err() {
                            return Err(Error::invalid(
                                &source_at,
                                unknown_column(
                                    schema,
                                    &name,
                                    &format!("read by the template of field '{}'", fm.field),
                                ),
                            ));
                        }
                        let index = columns.index(&name);
                        reads.push((name, index));
                    }
                    Pending::Ready(ResolvedSource::Template(handle, reads))
                }
                FieldSource::Expression(sql) => {
                    let parsed = expression::parse(sql, schema).map_err(|m| {
                        Error::invalid(
                            &source_at,
                            format!("the expression of field '{}' is not valid: {m}", fm.field),
                        )
                    })?;
                    for c in &parsed.columns {
                        columns.index(c);
                    }
                    Pending::Expression(parsed)
                }
            };
            targets.push(target);
            pending.push((fm.field.clone(), source_at, source));
        }
        let target_refs: Vec<&Target> = targets.iter().collect();
        target::check_overlaps(&target_refs)
            .map_err(|(i, m)| Error::invalid(format!("mapping.fields[{i}].field"), m))?;
        if rules.selection.added || rules.selection.updated {
            check_required(spec, &target_refs)?;
        }
        let batch_schema = Arc::new(
            schema
                .project(
                    &columns
                        .names
                        .iter()
                        .map(|c| schema.index_of(c))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| Error::internal(format!("mapping columns: {e}")))?,
                )
                .map_err(|e| Error::internal(format!("mapping columns: {e}")))?,
        );
        let mut expressions = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut fields = Vec::with_capacity(pending.len());
        for (target, (label, source_at, source)) in targets.into_iter().zip(pending) {
            let source = match source {
                Pending::Ready(source) => source,
                Pending::Expression(parsed) => {
                    let compiled = parsed.compile(&batch_schema).map_err(|m| {
                        Error::invalid(
                            &source_at,
                            format!("the expression of field '{label}' is not valid: {m}"),
                        )
                    })?;
                    check_type(
                        &source_at,
                        &label,
                        &compiled.data_type,
                        target.field_type,
                        "the expression",
                    )?;
                    expressions.push(compiled);
                    ResolvedSource::Expression(expressions.len() - 1)
                }
            };
            let top = &target.segments[0];
            let slot = match names.iter().position(|n| n == top) {
                Some(slot) => slot,
                None => {
                    names.push(top.clone());
                    names.len() - 1
                }
            };
            fields.push(PlannedField {
                target,
                label,
                slot,
                source,
            });
        }
        let mut definition =
            serde_json::to_vec(rules.fields).map_err(|e| Error::internal(e.to_string()))?;
        if rules.null_values == NullValues::Omit {
            // Changes what is sent, so it changes every fingerprint; the default adds nothing,
            // so mappings saved before this setting keep their fingerprints.
            definition.extend_from_slice(b"\0null_values=omit");
        }
        Ok(MappingPlan {
            columns: columns.names,
            flat: fields.iter().all(|f| f.target.segments.len() == 1),
            names: names.into(),
            fields,
            templates: Arc::new(templates),
            expressions,
            batch_schema,
            null_values: rules.null_values,
            selection: rules.selection,
            sync_mode,
            definition,
        })
    }

    /// Computes the mapping's SQL expressions over one batch of its columns (in
    /// [`MappingPlan::columns`] order).
    ///
    /// # Errors
    /// When the columns do not match the plan (a bug). An expression that fails for the batch
    /// is retried row by row in [`MappingPlan::payload`], so one bad row fails alone.
    pub fn evaluate(&self, columns: Vec<ArrayRef>) -> Result<EvaluatedBatch, Error> {
        let batch = if columns.is_empty() {
            None
        } else {
            Some(
                RecordBatch::try_new(Arc::clone(&self.batch_schema), columns)
                    .map_err(|e| Error::internal(format!("mapping batch: {e}")))?,
            )
        };
        let expressions = self
            .expressions
            .iter()
            .map(|e| match &batch {
                Some(batch) => e.evaluate(batch),
                None => Err("the expression reads no column and the batch is empty".to_string()),
            })
            .collect();
        Ok(EvaluatedBatch { batch, expressions })
    }

    /// The payload of row `row` of an evaluated batch.
    ///
    /// # Errors
    /// A per-record message naming the field: a value that cannot become the field's type, a
    /// NULL in a required field, a template or expression that fails for this row.
    pub fn payload(
        &self,
        batch: &EvaluatedBatch,
        row: usize,
        key: Value,
        change: ChangeKind,
    ) -> Result<Payload, String> {
        let fields = match self.fields_of(batch, row, self.flat)? {
            Some(fields) => fields,
            // A flat mapping left a NULL out: the names differ from the shared ones.
            None => self
                .fields_of(batch, row, false)?
                .ok_or_else(|| "internal: the record could not be assembled".to_string())?,
        };
        Ok(Payload {
            key,
            change,
            fields,
            fingerprint: None,
        })
    }

    /// The record's fields; with `flat`, values in the shared names' order, or `None` when a
    /// NULL was left out (the caller then assembles without `flat`).
    fn fields_of(
        &self,
        batch: &EvaluatedBatch,
        row: usize,
        flat: bool,
    ) -> Result<Option<Fields>, String> {
        let mut builder = (!flat).then(|| RecordBuilder::new(Arc::clone(&self.names)));
        let mut flat_values = Vec::with_capacity(if flat { self.fields.len() } else { 0 });
        for field in &self.fields {
            let raw = self.raw_value(field, batch, row)?;
            let value = if raw.is_null() {
                if field.target.required {
                    return Err(format!(
                        "field '{}' is required but its value is NULL in this row",
                        field.label
                    ));
                }
                if self.null_values == NullValues::Omit {
                    if flat {
                        return Ok(None);
                    }
                    continue;
                }
                raw
            } else {
                coerce(raw, field.target.field_type)
                    .map_err(|m| format!("field '{}': {m}", field.label))?
            };
            match builder.as_mut() {
                Some(builder) => builder.place(field.slot, &field.target.segments[1..], value),
                None => flat_values.push(value),
            }
        }
        let fields = match builder {
            Some(builder) => {
                let (names, values) = builder.finish();
                Fields::new(names, values)
            }
            None => Fields::new(Arc::clone(&self.names), flat_values),
        };
        fields
            .map(Some)
            .ok_or_else(|| "internal: field names and values differ in number".to_string())
    }

    /// A field's value for `row` before coercion.
    fn raw_value(
        &self,
        field: &PlannedField,
        batch: &EvaluatedBatch,
        row: usize,
    ) -> Result<Value, String> {
        let column = |index: usize| -> Result<Value, String> {
            let array = batch
                .batch
                .as_ref()
                .and_then(|b| b.columns().get(index))
                .ok_or_else(|| {
                    format!(
                        "internal: column {index} missing for field '{}'",
                        field.label
                    )
                })?;
            json_value(array.as_ref(), row)
                .map_err(|e| format!("field '{}': value cannot be converted: {e}", field.label))
        };
        match &field.source {
            ResolvedSource::Literal(v) => Ok(v.clone()),
            ResolvedSource::Column(index) => column(*index),
            ResolvedSource::Template(handle, reads) => {
                let values = reads
                    .iter()
                    .map(|(name, index)| Ok((name.as_str(), column(*index)?)))
                    .collect::<Result<Vec<(&str, Value)>, String>>()?;
                self.templates
                    .render(*handle, &values)
                    .map(Value::String)
                    .map_err(|m| format!("field '{}': the template failed: {m}", field.label))
            }
            ResolvedSource::Expression(index) => {
                let fail =
                    |m: String| format!("field '{}': the expression failed: {m}", field.label);
                match batch.expressions.get(*index) {
                    Some(Ok(array)) => {
                        json_value(array.as_ref(), row).map_err(|e| fail(e.to_string()))
                    }
                    Some(Err(_)) => {
                        // The batch failed as a whole: find out whether this row does.
                        let (Some(expression), Some(whole)) =
                            (self.expressions.get(*index), batch.batch.as_ref())
                        else {
                            return Err(fail("internal: expression missing".to_string()));
                        };
                        let one = expression.evaluate(&whole.slice(row, 1)).map_err(fail)?;
                        json_value(one.as_ref(), 0).map_err(|e| fail(e.to_string()))
                    }
                    None => Err(fail("internal: expression missing".to_string())),
                }
            }
        }
    }

    /// The destination field names every record of this mapping has at top level.
    pub fn field_names(&self) -> &[String] {
        &self.names
    }
}

/// One batch of a mapping's columns with its expressions computed.
#[derive(Debug)]
pub struct EvaluatedBatch {
    /// The columns, in [`MappingPlan::columns`] order (`None` when the mapping reads none).
    batch: Option<RecordBatch>,
    expressions: Vec<Result<ArrayRef, String>>,
}

/// `INVALID_ARGUMENT` when a value of `data_type` can never become `ty`.
fn check_type(
    at: &str,
    field: &str,
    data_type: &DataType,
    ty: crate::destination::spec::FieldType,
    what: &str,
) -> Result<(), Error> {
    if can_coerce(data_type, ty) {
        return Ok(());
    }
    Err(Error::invalid(
        at,
        format!(
            "{what} is {data_type}, which can never become field '{field}' of type {}; map a column of a fitting type or convert it with an expression (e.g. CAST(... AS VARCHAR))",
            ty.as_str()
        ),
    ))
}

/// Required top-level fields (and required fields of objects mapped field by field) must be
/// mapped.
fn check_required(spec: &ActionSpec, targets: &[&Target]) -> Result<(), Error> {
    for f in spec.fields.iter().filter(|f| f.required) {
        if !targets.iter().any(|t| t.segments[0] == f.name) {
            return Err(Error::invalid(
                "mapping.fields",
                format!(
                    "action '{}' requires field '{}' ({}); map a column, a literal, a template or an expression to it",
                    spec.name, f.name, f.description
                ),
            ));
        }
    }
    if let Some(message) = target::missing_required_children(spec, targets) {
        return Err(Error::invalid("mapping.fields", message));
    }
    Ok(())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
