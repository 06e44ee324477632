//! Target paths: where a mapped value goes in the record. A path is an action field's name or a
//! dotted path into an object field (`traits.plan`, `properties.address.city`), as Segment maps
//! several columns into one object. [`resolve`] checks a path against the action's field schema
//! and finds the type it declares; [`RecordBuilder`] assembles the record's top-level fields.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::destination::spec::{ActionSpec, FieldSpec, FieldType};
use crate::mapping::suggest::closest;

/// A target path checked against the action's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The path's segments, the first being the action's field.
    pub segments: Vec<String>,
    /// The type the schema declares at the path (`Any` in a free-form object).
    pub field_type: FieldType,
    /// Whether the schema marks the field at the path required.
    pub required: bool,
}

/// Where a path's segment is looked up.
enum Level<'a> {
    /// Declared fields (the action's, or an object's children).
    Declared(&'a [FieldSpec], bool),
    /// Inside a free-form object: any name.
    Free,
}

/// `path` resolved against `spec`'s fields.
///
/// # Errors
/// Why the path is not a place a value can go, naming the closest declared fields.
pub fn resolve(spec: &ActionSpec, path: &str) -> Result<Target, String> {
    let segments: Vec<String> = path.split('.').map(str::to_string).collect();
    if segments.iter().any(|s| s.trim().is_empty()) {
        return Err(format!(
            "'{path}' is not a field path: use a field name or dotted names such as traits.plan"
        ));
    }
    let mut level = Level::Declared(spec.fields, spec.open_fields);
    let mut field_type = FieldType::Any;
    let mut required = false;
    for (depth, segment) in segments.iter().enumerate() {
        let parent = segments[..depth].join(".");
        match level {
            Level::Free => {
                field_type = FieldType::Any;
                required = false;
            }
            Level::Declared(fields, open) => match fields.iter().find(|f| f.name == segment) {
                Some(f) => {
                    field_type = f.field_type;
                    required = f.required;
                    level = match (f.field_type, f.children.is_empty()) {
                        (FieldType::Object, false) => Level::Declared(f.children, false),
                        _ => Level::Free,
                    };
                    let more = depth + 1 < segments.len();
                    if more && !matches!(f.field_type, FieldType::Object | FieldType::Any) {
                        return Err(nested_into_scalar(path, &segments[..=depth], f));
                    }
                }
                None if open => {
                    field_type = FieldType::Any;
                    required = false;
                    level = Level::Free;
                }
                None => return Err(unknown(spec, &parent, segment, fields)),
            },
        }
    }
    Ok(Target {
        segments,
        field_type,
        required,
    })
}

fn nested_into_scalar(path: &str, upto: &[String], field: &FieldSpec) -> String {
    let name = upto.join(".");
    if field.field_type == FieldType::Array {
        format!(
            "'{path}' goes inside '{name}', which is an array: map a list column or an expression (make_array(...), a list of structs) to '{name}' as a whole"
        )
    } else {
        format!(
            "'{path}' goes inside '{name}', which is a {}, not an object",
            field.field_type.as_str()
        )
    }
}

fn unknown(spec: &ActionSpec, parent: &str, name: &str, fields: &[FieldSpec]) -> String {
    if fields.is_empty() && parent.is_empty() {
        return format!(
            "action '{}' takes no fields (it sends only the record's key), so '{name}' cannot be mapped; remove the field mappings",
            spec.name
        );
    }
    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
    let whose = if parent.is_empty() {
        format!("action '{}'", spec.name)
    } else {
        format!("object field '{parent}'")
    };
    let hint = match closest(name, names.iter().copied()) {
        Some(best) => format!(" (did you mean '{best}'?)"),
        None => String::new(),
    };
    format!(
        "{whose} has no field '{name}'{hint}; its fields are: {}",
        names.join(", ")
    )
}

/// Checks that no path of `targets` is mapped twice or both whole and in parts (`traits` and
/// `traits.plan`). Returns the index of the offending target and the message.
pub fn check_overlaps(targets: &[&Target]) -> Result<(), (usize, String)> {
    for (i, target) in targets.iter().enumerate() {
        for earlier in &targets[..i] {
            let (a, b) = (&target.segments, &earlier.segments);
            let shared = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
            if shared == a.len() && shared == b.len() {
                return Err((
                    i,
                    format!(
                        "destination field '{}' is mapped twice; map each field once",
                        a.join(".")
                    ),
                ));
            }
            if shared == a.len().min(b.len()) {
                let (whole, part) = if a.len() < b.len() { (a, b) } else { (b, a) };
                return Err((
                    i,
                    format!(
                        "'{}' is mapped as a whole and '{}' inside it; map the object either whole or field by field",
                        whole.join("."),
                        part.join(".")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Required fields inside objects that are mapped field by field: each must be mapped too.
pub fn missing_required_children(spec: &ActionSpec, targets: &[&Target]) -> Option<String> {
    for target in targets.iter().filter(|t| t.segments.len() > 1) {
        let mut fields = spec.fields;
        for depth in 0..target.segments.len() - 1 {
            let Some(object) = fields.iter().find(|f| f.name == target.segments[depth]) else {
                break;
            };
            fields = object.children;
            let prefix = &target.segments[..=depth];
            for child in fields.iter().filter(|c| c.required) {
                let mapped = targets.iter().any(|t| {
                    t.segments.len() > depth + 1
                        && t.segments[..=depth] == *prefix
                        && t.segments[depth + 1] == child.name
                });
                if !mapped {
                    return Some(format!(
                        "object field '{}' is mapped field by field but its required field '{}.{}' ({}) is not mapped",
                        prefix.join("."),
                        prefix.join("."),
                        child.name,
                        child.description
                    ));
                }
            }
        }
    }
    None
}

/// Builds one record's top-level fields from values placed at target paths.
#[derive(Debug)]
pub struct RecordBuilder {
    names: Arc<[String]>,
    values: Vec<Option<Value>>,
}

impl RecordBuilder {
    /// A builder for records with these top-level names (each distinct, first-use order).
    pub fn new(names: Arc<[String]>) -> Self {
        let values = vec![None; names.len()];
        RecordBuilder { names, values }
    }

    /// Places `value` at `rest` under top-level field `slot` (`rest` empty = the field itself).
    pub fn place(&mut self, slot: usize, rest: &[String], value: Value) {
        let Some(entry) = self.values.get_mut(slot) else {
            return;
        };
        let Some((last, parents)) = rest.split_last() else {
            *entry = Some(value);
            return;
        };
        let mut object = match entry {
            Some(Value::Object(map)) => map,
            other => {
                *other = Some(Value::Object(Map::new()));
                match other {
                    Some(Value::Object(map)) => map,
                    _ => return,
                }
            }
        };
        for name in parents {
            let child = object
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            object = match child {
                Value::Object(map) => map,
                _ => return,
            };
        }
        object.insert(last.clone(), value);
    }

    /// The names and values placed; fields nothing was placed in are left out.
    pub fn finish(self) -> (Arc<[String]>, Vec<Value>) {
        if self.values.iter().all(Option::is_some) {
            let values = self.values.into_iter().flatten().collect();
            return (self.names, values);
        }
        let (names, values): (Vec<String>, Vec<Value>) = self
            .names
            .iter()
            .zip(self.values)
            .filter_map(|(name, value)| value.map(|v| (name.clone(), v)))
            .unzip();
        (names.into(), values)
    }
}
