//! The quickstart's sample warehouse: deterministic customers (id, email, name, plan,
//! country, ltv, signup_at, active) written as Parquet, and the known changes the second sync
//! must find.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::fail;
use crate::cli::CliError;

/// splitmix64: a fixed, well-mixed hash so the data is the same on every machine.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const FIRST: [&str; 12] = [
    "ada", "alan", "grace", "linus", "barbara", "dennis", "margaret", "ken", "frances", "edsger",
    "radia", "guido",
];
const LAST: [&str; 10] = [
    "lovelace", "turing", "hopper", "torvalds", "liskov", "ritchie", "hamilton", "thompson",
    "allen", "dijkstra",
];
const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const COUNTRIES: [&str; 8] = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA"];
/// 2020-01-01T00:00:00Z in microseconds.
const EPOCH_2020_US: i64 = 1_577_836_800_000_000;
const FIVE_YEARS_S: u64 = 5 * 365 * 24 * 3600;

fn pick<'a>(items: &[&'a str], h: u64) -> &'a str {
    let len = u64::try_from(items.len()).unwrap_or(1).max(1);
    let i = usize::try_from(h % len).unwrap_or(0);
    items.get(i).copied().unwrap_or_default()
}

/// Whether the generated customer `id` is active (about 80%).
pub(super) fn is_active(id: u64) -> bool {
    !mix(id ^ 0xAC71_7E00).is_multiple_of(5)
}

/// The known changes applied between the two syncs.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Active customers whose email changes.
    pub(super) updated: HashSet<u64>,
    /// Active customers removed from the table.
    pub(super) deleted: HashSet<u64>,
    /// New active customers: ids `rows + 1 ..= rows + inserted`.
    pub(super) inserted: u64,
}

impl Changes {
    /// Spreads updates and deletes over the active customers.
    pub(super) fn plan(rows: u64) -> Changes {
        let active: Vec<u64> = (1..=rows).filter(|id| is_active(*id)).collect();
        let active_len = u64::try_from(active.len()).unwrap_or(0);
        let want_updated = usize::try_from((active_len / 10).min(1000)).unwrap_or(0);
        let want_deleted = usize::try_from((active_len / 20).min(300)).unwrap_or(0);
        let updated = active
            .iter()
            .step_by(7)
            .take(want_updated)
            .copied()
            .collect::<HashSet<_>>();
        let deleted = active
            .iter()
            .skip(3)
            .step_by(11)
            .filter(|id| !updated.contains(id))
            .take(want_deleted)
            .copied()
            .collect();
        Changes {
            updated,
            deleted,
            inserted: (rows / 10).min(500),
        }
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("ltv", DataType::Float64, false),
        Field::new(
            "signup_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("active", DataType::Boolean, false),
    ]))
}

#[derive(Default)]
struct Columns {
    id: Vec<i64>,
    email: Vec<String>,
    name: Vec<String>,
    plan: Vec<&'static str>,
    country: Vec<&'static str>,
    ltv: Vec<f64>,
    signup_at: Vec<i64>,
    active: Vec<bool>,
}

impl Columns {
    fn push(&mut self, id: u64, email_changed: bool, force_active: bool) {
        let h = mix(id);
        let first = pick(&FIRST, h);
        let last = pick(&LAST, h >> 8);
        let email = if email_changed {
            format!("{first}.{last}.{id}@new-domain.example")
        } else {
            format!("{first}.{last}.{id}@example.com")
        };
        self.id.push(i64::try_from(id).unwrap_or(i64::MAX));
        self.email.push(email);
        self.name
            .push(format!("{} {}", capitalize(first), capitalize(last)));
        self.plan.push(pick(&PLANS, h >> 16));
        self.country.push(pick(&COUNTRIES, h >> 24));
        // Cents up to 50,000.00, exact in f64.
        self.ltv
            .push(f64::from(u32::try_from((h >> 32) % 5_000_000).unwrap_or(0)) / 100.0);
        let offset_s = i64::try_from((h >> 20) % FIVE_YEARS_S).unwrap_or(0);
        self.signup_at.push(EPOCH_2020_US + offset_s * 1_000_000);
        self.active.push(force_active || is_active(id));
    }

    fn len(&self) -> usize {
        self.id.len()
    }

    fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch, CliError> {
        let c = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(c.id)),
            Arc::new(StringArray::from(c.email)),
            Arc::new(StringArray::from(c.name)),
            Arc::new(StringArray::from(c.plan)),
            Arc::new(StringArray::from(c.country)),
            Arc::new(Float64Array::from(c.ltv)),
            Arc::new(TimestampMicrosecondArray::from(c.signup_at).with_timezone("UTC")),
            Arc::new(BooleanArray::from(c.active)),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns)
            .map_err(|e| fail(format!("building sample data: {e}")))
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// Writes `customers.parquet` (atomically: a temp file renamed over the old one).
pub(super) fn write_customers(
    path: &Path,
    rows: u64,
    changes: Option<&Changes>,
) -> Result<(), CliError> {
    const BATCH: usize = 8192;
    let schema = schema();
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(CliError::io(&tmp))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let parquet_err =
        |e: parquet::errors::ParquetError| fail(format!("writing {}: {e}", tmp.display()));
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(parquet_err)?;
    let mut cols = Columns::default();
    let inserted = changes.map_or(0, |c| c.inserted);
    for id in 1..=rows + inserted {
        let (email_changed, is_new) = match changes {
            Some(c) if c.deleted.contains(&id) => continue,
            Some(c) => (c.updated.contains(&id), id > rows),
            None => (false, false),
        };
        cols.push(id, email_changed, is_new);
        if cols.len() == BATCH {
            writer
                .write(&cols.take_batch(&schema)?)
                .map_err(parquet_err)?;
        }
    }
    if cols.len() > 0 {
        writer
            .write(&cols.take_batch(&schema)?)
            .map_err(parquet_err)?;
    }
    writer.close().map_err(parquet_err)?;
    std::fs::rename(&tmp, path).map_err(CliError::io(path))?;
    Ok(())
}

// ---- the API calls ----
