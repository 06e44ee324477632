//! SQLite declared type → Arrow type, and the decoding of SQLite values into Arrow arrays.
//!
//! SQLite is dynamically typed: a column's *declared* type only gives it an affinity, and any
//! row may hold an INTEGER, REAL, TEXT, BLOB or NULL. retl fixes each column's Arrow type from
//! its declared type ([`arrow_type`]) and then checks every value against it
//! ([`ColumnDecoder`]): a value that does not fit (text in an INTEGER column, a fraction in a
//! DECIMAL(10,2) column beyond float noise, a malformed date) fails the read with an error
//! naming the column and the row — never a crash, never a silently changed value.
//!
//! | declared type | Arrow | values accepted |
//! |---|---|---|
//! | anything containing `INT` (`INTEGER`, `INT`, `BIGINT`, `SMALLINT`, `TINYINT`, `INT8`, `UNSIGNED BIG INT`, ...) | `Int64` | INTEGER; a REAL with no fractional part |
//! | anything containing `REAL`, `FLOA` or `DOUB` (`REAL`, `FLOAT`, `DOUBLE`, `DOUBLE PRECISION`) | `Float64` | REAL; INTEGER (exact up to 2^53) |
//! | anything containing `CHAR`, `CLOB` or `TEXT` (`TEXT`, `VARCHAR(n)`, `CHAR(n)`, `NVARCHAR`, `CLOB`) | `Utf8` | TEXT (valid UTF-8); INTEGER and REAL as their text |
//! | anything containing `BLOB` | `Binary` | BLOB; TEXT as its UTF-8 bytes |
//! | `NUMERIC(p,s)`, `DECIMAL(p,s)` (p ≤ 38) | `Decimal128(p,s)` | INTEGER and TEXT exactly; REAL within float noise of a value with scale `s` (see below) |
//! | `NUMERIC(p)`, `DECIMAL(p)` | `Decimal128(p,0)` | as above |
//! | `NUMERIC`, `DECIMAL`, `NUM` (no precision) | `Float64` | REAL; INTEGER (exact up to 2^53) |
//! | `BOOLEAN`, `BOOL` | `Boolean` | INTEGER 0/1; TEXT `true`/`false`/`0`/`1` (any case) |
//! | `DATE` | `Date32` | TEXT `YYYY-MM-DD` |
//! | `DATETIME`, `TIMESTAMP` | `Timestamp(µs)` | TEXT `YYYY-MM-DD HH:MM[:SS[.fff]]` (or with `T`); a trailing `Z` or `±HH:MM` offset is converted to UTC |
//! | `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE` | `Timestamp(µs, "UTC")` | as `DATETIME`; a value without offset is taken as UTC |
//! | `TIME` | `Time64(µs)` | TEXT `HH:MM[:SS[.fff]]` |
//! | `JSON`, `UUID` | `Utf8` | TEXT, as stored (a BLOB, e.g. SQLite's binary JSONB, is an error: read `json(col)` in a view) |
//! | no declared type (`CREATE TABLE t (x)`, and expression columns of views other than a `CAST`) | `Utf8` | TEXT; INTEGER and REAL as their text; a BLOB is an error |
//!
//! A view's column that is a plain column reference keeps that column's declared type; a
//! `CAST(x AS INTEGER)` / `REAL` / `TEXT` column gets the type SQLite derives from the cast
//! (SQLite 3.50, bundled: `INT`, `REAL`, `TEXT`), so a view with a `CAST` is the way to give a
//! column a type.
//! | any other name (`STRING`, `MONEY`, `GEOMETRY`, ...) | unsupported | SQLite gives such names NUMERIC affinity, so their values may be numbers or text: the model-validation error names the table, the column and the type, and the fix (a view with `CAST`) |
//!
//! Dates and times are stored as text in SQLite; a date kept as a number (unix time, Julian
//! day) in a `DATE`/`DATETIME` column is a read error whose fix is a view with
//! `date(col, 'unixepoch')` / `datetime(col, 'unixepoch')`.
//!
//! # Decimals
//! SQLite has no decimal storage: a `DECIMAL(p,s)` column has NUMERIC affinity, so SQLite
//! itself stores `19.99` as the 64-bit float nearest to it, and keeps only about 15
//! significant digits of longer numbers — that loss happens in SQLite, when the row is
//! written. retl never rounds through a float on its side: INTEGER and TEXT values are
//! converted exactly, and a REAL is accepted only when it is within floating-point noise
//! (relative 1e-13, or 1e-9 of one unit of the last decimal place) of a value with the
//! column's scale, as `19.99` and sums of such values computed by SQLite are. A REAL further
//! away (`19.999` in a `DECIMAL(10,2)` column), or a value with more digits than the
//! precision, fails the read naming the column. Decimals that need more than 15 significant
//! digits must be stored in a TEXT column (retl reads them digit for digit as text).
//!
//! Expression columns of a model pushed down to SQLite are typed by DataFusion's planner
//! (e.g. `sum(amount)` of a `DECIMAL(12,2)` is `Decimal128(22,2)`, `count(*)` is `Int64`)
//! and the values SQLite computes are checked against those types the same way.
use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// Why a declared type cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// The declared type, as written in the schema.
    pub(crate) declared: String,
    /// What is wrong with it.
    pub(crate) reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unsupported SQLite type {} ({})",
            self.declared, self.reason
        )
    }
}

/// Largest precision a `Decimal128` holds.
const MAX_DECIMAL128_PRECISION: u8 = 38;

/// The Arrow type retl reads a column of this declared type as.
pub(crate) fn arrow_type(declared: &str) -> Result<DataType, Unsupported> {
    let upper = declared
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    if upper.is_empty() {
        return Ok(DataType::Utf8);
    }
    let (base, args) = match upper.split_once('(') {
        Some((base, rest)) => (base.trim(), Some(rest.trim_end_matches(')').trim())),
        None => (upper.as_str(), None),
    };
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    match base {
        "BOOLEAN" | "BOOL" => return Ok(DataType::Boolean),
        "DATE" => return Ok(DataType::Date32),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => return Ok(timestamp),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            return Ok(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            ));
        }
        "TIME" | "TIME WITHOUT TIME ZONE" => return Ok(DataType::Time64(TimeUnit::Microsecond)),
        "JSON" | "UUID" => return Ok(DataType::Utf8),
        "NUMERIC" | "DECIMAL" | "NUM" => return decimal(declared, args),
        _ => {}
    }
    // SQLite's own affinity rules (https://www.sqlite.org/datatype3.html#determination_of_column_affinity).
    if upper.contains("INT") {
        Ok(DataType::Int64)
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        Ok(DataType::Utf8)
    } else if upper.contains("BLOB") {
        Ok(DataType::Binary)
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        Ok(DataType::Float64)
    } else {
        Err(Unsupported {
            declared: declared.to_string(),
            reason: "SQLite gives this name NUMERIC affinity, so its values may be numbers or text"
                .to_string(),
        })
    }
}

/// `NUMERIC`/`DECIMAL` with optional `(p)` / `(p,s)` arguments.
fn decimal(declared: &str, args: Option<&str>) -> Result<DataType, Unsupported> {
    let Some(args) = args else {
        return Ok(DataType::Float64);
    };
    let mut parts = args.split(',').map(str::trim);
    let precision = parts.next().and_then(|p| p.parse::<u8>().ok());
    let scale = match parts.next() {
        Some(s) => s.parse::<i8>().ok(),
        None => Some(0),
    };
    match (precision, scale, parts.next()) {
        (Some(p), Some(s), None)
            if (1..=MAX_DECIMAL128_PRECISION).contains(&p) && s >= 0 && (s as u8) <= p =>
        {
            Ok(DataType::Decimal128(p, s))
        }
        _ => Err(Unsupported {
            declared: declared.to_string(),
            reason: format!(
                "precision must be 1 to {MAX_DECIMAL128_PRECISION} and scale 0 to the precision"
            ),
        }),
    }
}
