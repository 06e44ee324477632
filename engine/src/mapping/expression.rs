//! SQL expressions of field values (`lower(email)`, `ltv * 100`, `CASE WHEN ... END`,
//! `named_struct('city', city, 'zip', zip)`, `make_array(tag1, tag2)`), compiled once per run
//! into DataFusion physical expressions and evaluated a batch at a time (vectorised), never a
//! row at a time.
//!
//! An expression sees the model's columns (unquoted names are lower-cased, as in DataFusion
//! SQL; quote `"MixedCase"` names) and DataFusion's scalar functions. Aggregates, window
//! functions and subqueries are refused: a field's value comes from its own row.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::model::guard::too_deep;
use crate::source::ColumnInfo;

/// The deepest a mapping expression may nest (far below what overflows a thread's stack).
pub const MAX_MAPPING_EXPRESSION_DEPTH: usize = 64;

/// Most bytes an expression's source may have.
const MAX_EXPRESSION_BYTES: usize = 16 * 1024;

/// The Arrow schema of a model's columns as the catalog records them (a type the catalog's
/// text does not name is taken as text; the run checks again against the real schema).
pub fn schema_of(columns: &[ColumnInfo]) -> Schema {
    Schema::new(
        columns
            .iter()
            .map(|c| {
                let data_type = DataType::from_str(&c.data_type).unwrap_or(DataType::Utf8);
                Field::new(&c.name, data_type, c.nullable)
            })
            .collect::<Vec<_>>(),
    )
}

/// An expression parsed against the model's columns.
#[derive(Debug, Clone)]
pub struct ParsedExpression {
    expr: Expr,
    /// The model columns it reads, sorted.
    pub columns: Vec<String>,
}

/// Parses `sql` against `schema` (the model's columns).
///
/// # Errors
/// The parser's or planner's message: a syntax error, an unknown column or function, an
/// aggregate or subquery, or nesting deeper than [`MAX_MAPPING_EXPRESSION_DEPTH`].
pub fn parse(sql: &str, schema: &Schema) -> Result<ParsedExpression, String> {
    if sql.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "the expression is {} bytes; expressions may have at most {MAX_EXPRESSION_BYTES}",
            sql.len()
        ));
    }
    // Parsed once on its own first, so that depth is bounded before DataFusion recurses.
    let ast = Parser::new(&GenericDialect {})
        .with_recursion_limit(MAX_MAPPING_EXPRESSION_DEPTH * 2)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| e.to_string())?;
    if too_deep(&ast, MAX_MAPPING_EXPRESSION_DEPTH) {
        return Err(format!(
            "the expression nests more than {MAX_MAPPING_EXPRESSION_DEPTH} levels deep; simplify it"
        ));
    }
    let df_schema = DFSchema::try_from(schema.clone()).map_err(|e| e.to_string())?;
    let ctx = SessionContext::new();
    let expr = ctx
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| first_line(&e.to_string()))?;
    refuse_non_scalar(&expr)?;
    let mut columns: Vec<String> = expr
        .column_refs()
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    columns.sort();
    columns.dedup();
    Ok(ParsedExpression { expr, columns })
}

/// Refuses aggregates, window functions and subqueries.
fn refuse_non_scalar(expr: &Expr) -> Result<(), String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut problem = None;
    let _ = expr.apply(|e| {
        let what = match e {
            Expr::AggregateFunction(_) => Some("an aggregate function"),
            Expr::WindowFunction(_) => Some("a window function"),
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some("a subquery"),
            _ => None,
        };
        if let Some(what) = what {
            problem = Some(what);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    match problem {
        Some(what) => Err(format!(
            "{what} is not allowed: a field's value is computed from its own row (aggregate in the model's SQL instead)"
        )),
        None => Ok(()),
    }
}

/// DataFusion messages carry a backtrace-like tail on later lines; keep the first.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}

/// An expression bound to the columns a run reads, ready to evaluate batches.
#[derive(Debug, Clone)]
pub struct CompiledExpression {
    physical: Arc<dyn PhysicalExpr>,
    /// The type of its values.
    pub data_type: DataType,
}

impl ParsedExpression {
    /// Binds the expression to `schema`, the columns of the batches it will see (they must
    /// include every column it reads).
    ///
    /// # Errors
    /// The planner's message (e.g. no function matches the argument types).
    pub fn compile(&self, schema: &SchemaRef) -> Result<CompiledExpression, String> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
        let ctx = SessionContext::new();
        let physical = ctx
            .create_physical_expr(self.expr.clone(), &df_schema)
            .map_err(|e| first_line(&e.to_string()))?;
        let data_type = physical
            .data_type(schema.as_ref())
            .map_err(|e| first_line(&e.to_string()))?;
        Ok(CompiledExpression {
            physical,
            data_type,
        })
    }
}

impl CompiledExpression {
    /// The expression's values for every row of `batch`.
    ///
    /// # Errors
    /// DataFusion's message (e.g. a cast that fails for some row).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, String> {
        self.physical
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| first_line(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::value::json_value;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use serde_json::json;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("ltv", DataType::Int64, true),
            Field::new("city", DataType::Utf8, true),
        ]))
    }

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![Some("A@X.COM"), None])),
                Arc::new(Int64Array::from(vec![Some(7), Some(250)])),
                Arc::new(StringArray::from(vec![Some("Paris"), Some("Oslo")])),
            ],
        )
        .unwrap()
    }

    fn eval(sql: &str) -> Vec<serde_json::Value> {
        let parsed = parse(sql, &schema()).unwrap();
        let compiled = parsed.compile(&schema()).unwrap();
        let array = compiled.evaluate(&batch()).unwrap();
        (0..array.len())
            .map(|row| json_value(array.as_ref(), row).unwrap())
            .collect()
    }

    #[test]
    fn scalar_case_struct_and_array_expressions() {
        assert_eq!(eval("lower(email)"), [json!("a@x.com"), json!(null)]);
        assert_eq!(eval("ltv * 100"), [json!(700), json!(25000)]);
        assert_eq!(
            eval("CASE WHEN ltv > 100 THEN 'vip' ELSE 'regular' END"),
            [json!("regular"), json!("vip")]
        );
        assert_eq!(
            eval("named_struct('city', city, 'ltv', ltv)"),
            [
                json!({"city": "Paris", "ltv": 7}),
                json!({"city": "Oslo", "ltv": 250})
            ]
        );
        assert_eq!(
            eval("make_array(city, 'x')"),
            [json!(["Paris", "x"]), json!(["Oslo", "x"])]
        );
    }

    #[test]
    fn columns_read_and_errors() {
        let parsed = parse("concat(lower(email), city)", &schema()).unwrap();
        assert_eq!(parsed.columns, ["city", "email"]);
        let err = parse("lower(emial)", &schema()).unwrap_err();
        assert!(err.contains("emial"), "{err}");
        let err = parse("sum(ltv)", &schema()).unwrap_err();
        assert!(err.contains("aggregate"), "{err}");
        let err = parse("lower(", &schema()).unwrap_err();
        assert!(!err.is_empty());
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        let err = parse(&deep, &schema()).unwrap_err();
        assert!(err.contains("nest") || err.contains("recursion"), "{err}");
    }
}
