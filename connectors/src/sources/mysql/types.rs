//! MySQL / MariaDB type → Arrow type.
//!
//! A table's Arrow schema is built here from `information_schema.COLUMNS` (never from the
//! table providers' `SHOW COLUMNS` parser, which rejects `year(4)`, `uuid` and other MariaDB
//! spellings). Rows are decoded by `datafusion-table-providers-mysql` (binary protocol, 4 000
//! rows per Arrow batch) from the result set's own column metadata; the source then casts
//! each decoded column to the type below, so what `list_tables` shows is exactly what a model
//! reads. The `types_round_trip` test checks every row of this table, with a value and a NULL,
//! against a real MariaDB.
//!
//! | MySQL / MariaDB | Arrow | notes |
//! |---|---|---|
//! | `tinyint`, `smallint`, `mediumint`, `int`, `bigint` | `Int8`, `Int16`, `Int32`, `Int32`, `Int64` | |
//! | the same `unsigned` | `UInt8`, `UInt16`, `UInt32`, `UInt32`, `UInt64` | `bigint unsigned` keeps its full range |
//! | `boolean` (= `tinyint(1)`) | `Int8` | 0 / 1 (MySQL has no boolean type; `tinyint(1)` may hold 2..127); write `col <> 0` in the model for a boolean |
//! | `decimal(p,s)` / `numeric(p,s)`, p ≤ 38 | `Decimal128(p,s)` | exact: the server's decimal text is decoded without floats |
//! | `decimal(p,s)`, 38 < p ≤ 65 | `Decimal256(p,s)` | exact as well (staged as a Parquet decimal, sent as its text) |
//! | `float`, `double` / `real` | `Float32`, `Float64` | |
//! | `bit(n)` | `UInt64` | the bits as an unsigned number |
//! | `char`, `varchar`, `tinytext`, `text`, `mediumtext` | `Utf8` | `char(n)` comes back without trailing spaces (the server strips them) |
//! | `longtext`, `json` | `LargeUtf8` | MariaDB's `json` is `longtext`; the document's text as stored |
//! | `enum(...)` | `Dictionary(UInt16, Utf8)` | the label |
//! | `set(...)` | `Utf8` | the members, comma-separated |
//! | `date` | `Date32` | `'0000-00-00'` reads as NULL |
//! | `time` | `Time64(ns)` | only 00:00:00 to 23:59:59.999999: a negative or ≥ 24 h value fails the read naming the column (decoder limit) |
//! | `datetime` | `Timestamp(µs)` | no zone, as stored; `'0000-00-00 00:00:00'` reads as NULL |
//! | `timestamp` | `Timestamp(µs, "UTC")` | the instant (the session time zone is `+00:00`) |
//! | `year` | `Int16` | |
//! | `binary`, `varbinary`, `tinyblob`, `blob`, `mediumblob` | `Binary` | |
//! | `longblob` | `LargeBinary` | |
//! | `uuid`, `inet4`, `inet6` (MariaDB 10.7+ / 10.10+) | `Utf8` | canonical text; `uuid` is usable as a unique id |
//! | `geometry` and its subtypes, `vector` | unsupported | the model-validation error names the table, column and type; create a view with e.g. `ST_AsText(col)` |
//!
//! Expressions computed in the server (`SUM`, `CONCAT`, ...) are typed by DataFusion when the
//! model is planned, and the values the server returns are cast to those types.

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// A column's type as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MySqlType {
    /// `DATA_TYPE`, e.g. `int`, `decimal`, `varchar`, `uuid`.
    pub(crate) data_type: String,
    /// `COLUMN_TYPE`, e.g. `int(10) unsigned`, `decimal(12,2)`, `enum('a','b')`.
    pub(crate) column_type: String,
    /// `NUMERIC_PRECISION` (decimals).
    pub(crate) precision: Option<u64>,
    /// `NUMERIC_SCALE` (decimals).
    pub(crate) scale: Option<u64>,
}

/// Why a type cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// The MySQL type (`COLUMN_TYPE`).
    pub(crate) mysql_type: String,
    /// What to do instead.
    pub(crate) hint: &'static str,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unsupported MySQL type {} ({})",
            self.mysql_type, self.hint
        )
    }
}

/// The Arrow type of enum columns.
pub(crate) fn enum_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

/// Largest precision a `Decimal128` holds.
const MAX_DECIMAL128_PRECISION: u64 = 38;
/// Largest precision a `Decimal256` holds (MySQL's own limit is 65).
const MAX_DECIMAL256_PRECISION: u64 = 76;

const GEOMETRY_HINT: &str = "create a view that converts it, e.g. CREATE VIEW v AS SELECT id, ST_AsText(col) AS col FROM t, and use the view";
const CAST_HINT: &str = "create a view that casts it, e.g. CREATE VIEW v AS SELECT id, CAST(col AS CHAR) AS col FROM t, and use the view";

/// The Arrow type the source produces for a column of type `t`.
pub(crate) fn arrow_type(t: &MySqlType) -> Result<DataType, Unsupported> {
    let unsigned = t.column_type.to_ascii_lowercase().contains("unsigned");
    let pick = |signed: DataType, unsigned_type: DataType| {
        if unsigned { unsigned_type } else { signed }
    };
    let unsupported = |hint| Unsupported {
        mysql_type: t.column_type.clone(),
        hint,
    };
    Ok(match t.data_type.to_ascii_lowercase().as_str() {
        "tinyint" => pick(DataType::Int8, DataType::UInt8),
        "smallint" => pick(DataType::Int16, DataType::UInt16),
        "mediumint" | "int" | "integer" => pick(DataType::Int32, DataType::UInt32),
        "bigint" => pick(DataType::Int64, DataType::UInt64),
        "decimal" | "numeric" | "fixed" => {
            let precision = t.precision.unwrap_or(10);
            let scale = t.scale.unwrap_or(0);
            let (Ok(p), Ok(s)) = (u8::try_from(precision), i8::try_from(scale)) else {
                return Err(unsupported(CAST_HINT));
            };
            if precision <= MAX_DECIMAL128_PRECISION {
                DataType::Decimal128(p, s)
            } else if precision <= MAX_DECIMAL256_PRECISION {
                DataType::Decimal256(p, s)
            } else {
                return Err(unsupported(CAST_HINT));
            }
        }
        "float" => DataType::Float32,
        "double" | "real" | "double precision" => DataType::Float64,
        "bit" => DataType::UInt64,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "uuid" | "inet4" | "inet6"
        | "set" => DataType::Utf8,
        "longtext" | "json" => DataType::LargeUtf8,
        "enum" => enum_type(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" => DataType::Binary,
        "longblob" => DataType::LargeBinary,
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Nanosecond),
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "year" => DataType::Int16,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            return Err(unsupported(GEOMETRY_HINT));
        }
        _ => return Err(unsupported(CAST_HINT)),
    })
}
