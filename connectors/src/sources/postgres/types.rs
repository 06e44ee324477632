//! PostgreSQL type → Arrow type.
//!
//! Rows are decoded by `datafusion-table-providers` (binary protocol, 4 000 rows per Arrow
//! batch), with `UnsupportedTypeAction::String` chosen on purpose: it turns `jsonb` into text
//! and keeps every other unknown type an error that names the column (a table with such a
//! column cannot be read until a view casts it). [`arrow_type`] restates that mapping from
//! the catalog so that `list_tables` can describe every table with one catalog query; the
//! `types_round_trip` test checks the two agree on a real server.
//!
//! | PostgreSQL | Arrow | notes |
//! |---|---|---|
//! | `smallint`, `integer`, `bigint` | `Int16`, `Int32`, `Int64` | |
//! | `numeric(p,s)` (p ≤ 38) | `Decimal128(p,s)` | never a float; exact up to 28 significant digits (see below) |
//! | `numeric(p)` | `Decimal128(p,0)` | |
//! | `numeric` (no precision), and numeric expressions | `Decimal128(38,20)` | a value with more than 18 integer digits fails the read with an error naming the column |
//! | `numeric(p,s)` with p > 38 | unsupported | does not fit `Decimal128`; cast to text |
//! | `real`, `double precision` | `Float32`, `Float64` | |
//! | `boolean` | `Boolean` | |
//! | `text`, `varchar(n)`, `char(n)`, `name`, `citext`-like text | `Utf8` | `char(n)` keeps its padding |
//! | `uuid` | `Utf8` | canonical lower-case text; usable as a unique id |
//! | `json`, `jsonb` | `Utf8` | the document's text (jsonb in PostgreSQL's normalized form) |
//! | `date` | `Date32` | |
//! | `time` | `Time64(ns)` | `time with time zone` is unsupported |
//! | `timestamp` | `Timestamp(ns)` | no zone |
//! | `timestamptz` | `Timestamp(ns, "UTC")` | the instant, in UTC |
//! | `interval` | `Interval(MonthDayNano)` | months, days and nanoseconds kept apart, as PostgreSQL does; Parquet cannot store it, so staging must turn it into text (engine) |
//! | `bytea` | `Binary` | |
//! | enum types | `Dictionary(Int8, Utf8)` | the label |
//! | arrays of the above (`text[]`, `int4[]`, `numeric[]`, ...) | `List<element>` | one dimension; an array holding a NULL element fails the read (see below) |
//! | composite types | `Struct` | |
//! | `money` | `Int64` | the amount in cents (the providers' choice) |
//! | `oid`, `xid` | `UInt32` | |
//! | `inet`, `cidr`, `macaddr` | `Utf8` | |
//! | `point` | `FixedSizeList<Float64, 2>` | |
//! | other geometric types, `bit`, `varbit`, PostGIS `geometry` | `Binary` | |
//! | `tsvector`, `tsquery` | `LargeUtf8` | |
//! | domains, ranges other than `int4range`, `hstore`, `time with time zone`, other extension types | unsupported | the error names the column; cast it in a view |
//!
//! Timestamps are nanoseconds since 1970 in Arrow, so values before 1677 or after 2262 (and
//! `infinity`) cannot be read.
//!
//! # Known decoder limitations (datafusion-table-providers-postgres 0.15.1)
//! - `numeric` values go through `rust_decimal`, whose 96-bit mantissa holds 28 significant
//!   digits: a value with more digits (possible in `numeric(p,s)` with p > 28, or in a bare
//!   `numeric`) is **rounded silently** to 28 digits. Cast such columns to text in a view until
//!   the decoder is fixed.
//! - Arrays are decoded as `Vec<T>`, so an array with a NULL element (`{1,NULL}`) fails the
//!   read ("error deserializing column N"); a NULL array is fine.
//! - `avg()` of a bare `numeric` is typed `Decimal128(38,24)` by DataFusion and overflows for
//!   values above 10^14.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};

/// A column's type as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgType {
    /// `pg_catalog.format_type(atttypid, atttypmod)`, e.g. `numeric(12,2)`, `text[]`, `mood`.
    pub(crate) formatted: String,
    /// `pg_type.typtype`: `b` base, `e` enum, `c` composite, `d` domain, `r` range, ...
    pub(crate) typtype: String,
    /// For arrays (`typcategory = 'A'`): the element's formatted type and `typtype`.
    pub(crate) element: Option<(String, String)>,
}

/// Why a type cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// The PostgreSQL type.
    pub(crate) pg_type: String,
    /// What to do instead.
    pub(crate) hint: &'static str,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unsupported PostgreSQL type {} ({})",
            self.pg_type, self.hint
        )
    }
}

/// The Arrow type the source produces for a column of type `pg`.
pub(crate) fn arrow_type(pg: &PgType) -> Result<DataType, Unsupported> {
    match pg.typtype.as_str() {
        "e" => return Ok(enum_type()),
        "c" => {
            // The attributes are not looked up for listings; the read path builds the struct.
            return Ok(DataType::Struct(Vec::<Field>::new().into()));
        }
        _ => {}
    }
    if let Some((element, element_typtype)) = &pg.element {
        let element = PgType {
            formatted: element.clone(),
            typtype: element_typtype.clone(),
            element: None,
        };
        let item = arrow_type(&element).map_err(|e| Unsupported {
            pg_type: pg.formatted.clone(),
            hint: e.hint,
        })?;
        return Ok(DataType::List(Arc::new(Field::new("item", item, true))));
    }
    base_type(&pg.formatted)
}

/// The Arrow type of enum columns.
pub(crate) fn enum_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
}

fn unsupported(pg_type: &str, hint: &'static str) -> Unsupported {
    Unsupported {
        pg_type: pg_type.to_string(),
        hint,
    }
}

const CAST_HINT: &str =
    "cast it to text in a view, e.g. CREATE VIEW v AS SELECT col::text AS col, ...";

fn base_type(formatted: &str) -> Result<DataType, Unsupported> {
    let base = formatted.split('(').next().unwrap_or(formatted).trim();
    // `timestamp(3) without time zone` keeps its suffix after the modifier.
    let suffix_tz = formatted.ends_with("with time zone");
    Ok(match base {
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" | "money" => DataType::Int64,
        "oid" | "xid" | "regproc" => DataType::UInt32,
        "numeric" => numeric(formatted)?,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "\"char\"" => DataType::Int8,
        "character" | "character varying" | "text" | "bpchar" | "uuid" | "name" | "json"
        | "jsonb" | "xml" | "inet" | "cidr" | "macaddr" => DataType::Utf8,
        "bytea" | "bit" | "bit varying" | "line" | "lseg" | "box" | "path" | "polygon"
        | "circle" | "geometry" | "geography" => DataType::Binary,
        "date" => DataType::Date32,
        "time" | "time without time zone" if !suffix_tz => DataType::Time64(TimeUnit::Nanosecond),
        "timestamp" | "timestamp without time zone" if !suffix_tz => {
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        }
        "timestamp" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
        }
        "interval" => DataType::Interval(IntervalUnit::MonthDayNano),
        "boolean" => DataType::Boolean,
        "point" => {
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, true)), 2)
        }
        "tsvector" | "tsquery" => DataType::LargeUtf8,
        "int4range" => DataType::Struct(
            vec![
                Field::new("lower", DataType::Int32, true),
                Field::new("upper", DataType::Int32, true),
            ]
            .into(),
        ),
        _ => return Err(unsupported(formatted, CAST_HINT)),
    })
}

/// Largest precision a `Decimal128` holds.
const MAX_DECIMAL128_PRECISION: u8 = 38;

fn numeric(formatted: &str) -> Result<DataType, Unsupported> {
    let args = formatted
        .trim_start_matches("numeric")
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    if args.is_empty() {
        return Ok(DataType::Decimal128(38, 20));
    }
    let mut parts = args.split(',').map(str::trim);
    let precision = parts.next().and_then(|p| p.parse::<u8>().ok());
    let scale = match parts.next() {
        Some(s) => s.parse::<i8>().ok(),
        None => Some(0),
    };
    match (precision, scale) {
        (Some(p), Some(s)) if (1..=MAX_DECIMAL128_PRECISION).contains(&p) => {
            Ok(DataType::Decimal128(p, s))
        }
        _ => Err(unsupported(
            formatted,
            "precision over 38 does not fit a 128-bit decimal; cast it to text in a view",
        )),
    }
}
