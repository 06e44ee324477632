use super::*;
use crate::destination::spec::{ActionKind, FieldSpec, FieldType};
use datafusion::arrow::array::{Decimal128Array, Int64Array, StringArray, StructArray};
use datafusion::arrow::datatypes::Field;
use serde_json::json;

static ADDRESS: [FieldSpec; 2] = [
    FieldSpec {
        name: "city",
        field_type: FieldType::String,
        required: true,
        description: "City",
        children: &[],
    },
    FieldSpec {
        name: "zip",
        field_type: FieldType::String,
        required: false,
        description: "Postal code",
        children: &[],
    },
];
static FIELDS: [FieldSpec; 6] = [
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
    FieldSpec {
        name: "ltv",
        field_type: FieldType::Integer,
        required: false,
        description: "Lifetime value",
        children: &[],
    },
    FieldSpec {
        name: "traits",
        field_type: FieldType::Object,
        required: false,
        description: "Free-form traits",
        children: &[],
    },
    FieldSpec {
        name: "address",
        field_type: FieldType::Object,
        required: false,
        description: "Address",
        children: &ADDRESS,
    },
    FieldSpec {
        name: "tags",
        field_type: FieldType::Array,
        required: false,
        description: "Tags",
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
    sync_modes: &[SyncMode::Upsert, SyncMode::Update],
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

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("plan", DataType::Utf8, true),
        Field::new("ltv", DataType::Decimal128(38, 2), true),
        Field::new("city", DataType::Utf8, true),
        Field::new("unused", DataType::Utf8, true),
    ])
}

fn col(field: &str, c: &str) -> FieldMapping {
    FieldMapping {
        field: field.into(),
        source: FieldSource::Column(c.into()),
    }
}

fn src(field: &str, source: FieldSource) -> FieldMapping {
    FieldMapping {
        field: field.into(),
        source,
    }
}

fn rules(fields: &[FieldMapping]) -> MappingRules<'_> {
    MappingRules {
        fields,
        selection: default_selection(&UPSERT),
        sync_mode: None,
        null_values: NullValues::Send,
    }
}

fn compile(fields: &[FieldMapping]) -> Result<MappingPlan, Error> {
    MappingPlan::compile(rules(fields), &schema(), &UPSERT)
}

fn err(fields: &[FieldMapping]) -> String {
    compile(fields).unwrap_err().to_string()
}

/// The plan's columns for two rows: (a@x.com, pro, 12.00, Paris) and (B@Y.COM, NULL, 7.50, NULL).
fn rows(plan: &MappingPlan) -> EvaluatedBatch {
    let column = |name: &str| -> ArrayRef {
        match name {
            "id" => Arc::new(Int64Array::from(vec![1, 2])),
            "email" => Arc::new(StringArray::from(vec![Some("a@x.com"), Some("B@Y.COM")])),
            "plan" => Arc::new(StringArray::from(vec![Some("pro"), None])),
            "ltv" => Arc::new(
                Decimal128Array::from(vec![Some(1200), Some(750)])
                    .with_precision_and_scale(38, 2)
                    .unwrap(),
            ),
            "city" => Arc::new(StringArray::from(vec![Some("Paris"), None])),
            other => panic!("unexpected column {other}"),
        }
    };
    plan.evaluate(plan.columns.iter().map(|c| column(c)).collect())
        .unwrap()
}

fn payload(plan: &MappingPlan, row: usize) -> Result<Value, String> {
    let batch = rows(plan);
    plan.payload(&batch, row, json!(row), ChangeKind::Added)
        .map(|p| serde_json::to_value(&p.fields).unwrap())
}

#[test]
fn valid_mapping_compiles_and_reads_only_its_columns() {
    let plan = compile(&[col("email", "email"), col("plan", "plan")]).unwrap();
    assert_eq!(plan.columns, vec!["email", "plan"]);
    assert_eq!(
        payload(&plan, 0).unwrap(),
        json!({"email": "a@x.com", "plan": "pro"})
    );
    assert_eq!(
        payload(&plan, 1).unwrap(),
        json!({"email": "B@Y.COM", "plan": null})
    );
}

#[test]
fn templates_and_expressions_fill_fields_and_their_columns_are_fingerprinted() {
    let plan = compile(&[
        src("email", FieldSource::Expression("lower(email)".into())),
        src(
            "plan",
            FieldSource::Template("{{ plan | upper }} in {{ city }}".into()),
        ),
        src("ltv", FieldSource::Expression("ltv * 100".into())),
    ])
    .unwrap();
    let mut columns = plan.columns.clone();
    columns.sort();
    assert_eq!(columns, ["city", "email", "ltv", "plan"]);
    assert_eq!(
        payload(&plan, 0).unwrap(),
        json!({"email": "a@x.com", "plan": "PRO in Paris", "ltv": 1200})
    );
    // The template reads NULLs (plan and city of row 1): they render as nothing.
    let second = payload(&plan, 1).unwrap();
    assert_eq!(second["plan"], json!(" in "), "{second}");
}

#[test]
fn dotted_paths_build_objects_and_struct_expressions_fill_them_whole() {
    let plan = compile(&[
        col("email", "email"),
        col("address.city", "city"),
        src("address.zip", FieldSource::Literal(json!(75001))),
        col("traits.plan", "plan"),
        src("traits.nested.level", FieldSource::Literal(json!("gold"))),
        src(
            "tags",
            FieldSource::Expression("make_array(plan, 'x')".into()),
        ),
    ])
    .unwrap();
    assert_eq!(
        payload(&plan, 0).unwrap(),
        json!({
            "email": "a@x.com",
            "address": {"city": "Paris", "zip": "75001"},
            "traits": {"plan": "pro", "nested": {"level": "gold"}},
            "tags": ["pro", "x"],
        })
    );
    let whole = compile(&[
        col("email", "email"),
        src(
            "address",
            FieldSource::Expression("named_struct('city', city, 'zip', 'none')".into()),
        ),
    ])
    .unwrap();
    assert_eq!(
        payload(&whole, 0).unwrap()["address"],
        json!({"city": "Paris", "zip": "none"})
    );
}

#[test]
fn nulls_are_sent_or_omitted_and_required_nulls_fail_the_record() {
    let fields = [
        col("email", "email"),
        col("plan", "plan"),
        col("traits.city", "city"),
    ];
    let omit = MappingPlan::compile(
        MappingRules {
            null_values: NullValues::Omit,
            ..rules(&fields)
        },
        &schema(),
        &UPSERT,
    )
    .unwrap();
    assert_eq!(payload(&omit, 1).unwrap(), json!({"email": "B@Y.COM"}));
    let send = compile(&fields).unwrap();
    assert_eq!(
        payload(&send, 1).unwrap(),
        json!({"email": "B@Y.COM", "plan": null, "traits": {"city": null}})
    );
    let required = compile(&[col("email", "email"), col("address.city", "city")]).unwrap();
    let err = payload(&required, 1).unwrap_err();
    assert!(
        err.contains("address.city") && err.contains("required"),
        "{err}"
    );
    assert_ne!(omit.definition, send.definition);
}

#[test]
fn coercion_errors_name_field_value_and_type() {
    let plan = compile(&[col("email", "email"), col("ltv", "ltv")]).unwrap();
    let err = payload(&plan, 1).unwrap_err();
    assert!(
        err.contains("'ltv'") && err.contains("7.50") && err.contains("integer"),
        "{err}"
    );
    assert_eq!(payload(&plan, 0).unwrap()["ltv"], json!(12));
}

#[test]
fn validation_errors_name_the_problem() {
    let e = err(&[col("email", "emial")]);
    assert!(
        e.contains("no column 'emial'") && e.contains("did you mean 'email'"),
        "{e}"
    );
    let e = err(&[col("email", "email"), col("phone", "plan")]);
    assert!(e.contains("no field 'phone'"), "{e}");
    let e = err(&[col("plan", "plan")]);
    assert!(e.contains("requires field 'email'"), "{e}");
    let e = err(&[col("email", "email"), col("email", "plan")]);
    assert!(e.contains("mapped twice"), "{e}");
    let e = err(&[
        col("email", "email"),
        col("traits", "plan"),
        col("traits.x", "plan"),
    ]);
    assert!(e.contains("whole"), "{e}");
    let e = err(&[col("email", "email"), col("address.town", "city")]);
    assert!(
        e.contains("object field 'address' has no field 'town'"),
        "{e}"
    );
    let e = err(&[col("email", "email"), col("address.zip", "city")]);
    assert!(e.contains("required field 'address.city'"), "{e}");
    let e = err(&[col("email", "email"), col("tags.x", "city")]);
    assert!(e.contains("array"), "{e}");
    let e = err(&[col("email.x", "email")]);
    assert!(e.contains("not an object"), "{e}");
    let e = err(&[src("email", FieldSource::Template("{{ emial }}".into()))]);
    assert!(e.contains("template") && e.contains("emial"), "{e}");
    let e = err(&[src("email", FieldSource::Template("{% if %}".into()))]);
    assert!(e.contains("does not parse"), "{e}");
    let e = err(&[src("email", FieldSource::Expression("lower(emial)".into()))]);
    assert!(e.contains("expression") && e.contains("emial"), "{e}");
    let e = err(&[
        col("email", "email"),
        src("tags", FieldSource::Expression("ltv + 1".into())),
    ]);
    assert!(e.contains("can never become field 'tags'"), "{e}");
    let e = err(&[
        col("email", "email"),
        src("ltv", FieldSource::Literal(json!("lots"))),
    ]);
    assert!(e.contains("\"lots\"") && e.contains("integer"), "{e}");
}

#[test]
fn selection_and_sync_mode_are_checked() {
    let fields = [col("email", "email")];
    let del = RecordSelection {
        added: false,
        updated: false,
        deleted: true,
    };
    let e = MappingPlan::compile(
        MappingRules {
            selection: del,
            ..rules(&fields)
        },
        &schema(),
        &UPSERT,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot receive deleted"), "{e}");
    let none = RecordSelection {
        added: false,
        updated: false,
        deleted: false,
    };
    assert!(
        MappingPlan::compile(
            MappingRules {
                selection: none,
                ..rules(&fields)
            },
            &schema(),
            &UPSERT
        )
        .is_err()
    );
    let plan = compile(&fields).unwrap();
    assert_eq!(plan.sync_mode, Some(SyncMode::Upsert));
    let e = MappingPlan::compile(
        MappingRules {
            sync_mode: Some(SyncMode::Create),
            ..rules(&fields)
        },
        &schema(),
        &UPSERT,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("does not support sync mode 'create'") && e.contains("upsert, update"),
        "{e}"
    );
    let e = MappingPlan::compile(
        MappingRules {
            sync_mode: Some(SyncMode::Add),
            selection: default_selection(&DELETE),
            fields: &[],
            null_values: NullValues::Send,
        },
        &schema(),
        &DELETE,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("takes no sync mode"), "{e}");
}

#[test]
fn a_field_on_an_action_without_fields_says_it_takes_none() {
    let fields = [col("email", "email")];
    let e = MappingPlan::compile(
        MappingRules {
            selection: default_selection(&DELETE),
            ..rules(&fields)
        },
        &schema(),
        &DELETE,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("takes no fields"), "{e}");
}

#[test]
fn a_failing_expression_fails_only_its_rows() {
    let plan = compile(&[
        col("email", "email"),
        src(
            "plan",
            FieldSource::Expression(
                "CAST(CAST(ltv AS BIGINT) / (CAST(ltv AS BIGINT) - 12) AS VARCHAR)".into(),
            ),
        ),
    ])
    .unwrap();
    let bad = payload(&plan, 0).unwrap_err();
    assert!(
        bad.contains("'plan'") && bad.contains("expression"),
        "{bad}"
    );
    assert!(payload(&plan, 1).is_ok());
}

#[test]
fn struct_columns_fill_object_fields() {
    let schema = Schema::new(vec![
        Field::new("email", DataType::Utf8, true),
        Field::new(
            "addr",
            DataType::Struct(vec![Field::new("city", DataType::Utf8, true)].into()),
            true,
        ),
    ]);
    let plan = MappingPlan::compile(
        rules(&[col("email", "email"), col("address", "addr")]),
        &schema,
        &UPSERT,
    )
    .unwrap();
    let addr = StructArray::from(vec![(
        Arc::new(Field::new("city", DataType::Utf8, true)),
        Arc::new(StringArray::from(vec!["Oslo"])) as ArrayRef,
    )]);
    let batch = plan
        .evaluate(vec![
            Arc::new(StringArray::from(vec!["a@x.com"])),
            Arc::new(addr),
        ])
        .unwrap();
    let p = plan
        .payload(&batch, 0, json!(1), ChangeKind::Added)
        .unwrap();
    assert_eq!(p.fields.get("address"), Some(&json!({"city": "Oslo"})));
}
