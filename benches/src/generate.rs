//! The deterministic data generator: a customer-like model and its "next day" snapshot.
//!
//! # The model (8 columns)
//! | column | type | notes |
//! |---|---|---|
//! | `id` | Int64, not null | the unique id: `10 * i + 10` for row `i` of day 0 |
//! | `email` | Utf8, not null | `first.last<i>@domain` |
//! | `name` | Utf8, not null | `First Last` |
//! | `phone` | Utf8, nullable | about 30% null |
//! | `plan` | Utf8, not null | one of four plans |
//! | `ltv` | Decimal128(12, 2), not null | up to 99,999.99 |
//! | `signup_at` | Timestamp(µs, UTC), not null | within 2020–2024 |
//! | `active` | Boolean, nullable | about 5% null |
//!
//! # The next day, at known positions (row index `i` of day 0, `0 <= i < rows`)
//! - updated (1%): `i % 100 == 37`: `ltv` + 1.00 and the next `plan`;
//! - deleted (0.5%): `i % 200 == 3`;
//! - added (0.5%): after each row with `i % 200 == 101`, a new row with id `10 * i + 15`.
//!
//! [`Expected`] counts them exactly for any row count, so a benchmark can check retl's counts.
//!
//! # Files
//! Parquet (Snappy, row groups of [`ROW_GROUP`] rows, written in batches of [`BATCH`] rows, so
//! memory stays bounded at any size), and on request the same rows as CSV with a header
//! (PostgreSQL `COPY ... (FORMAT csv, HEADER)`). Everything is cached under
//! `<cache>/<rows>-s<seed>/` and written through a temp file renamed at the end, so a rerun
//! reuses complete files and never a half-written one.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// Rows per Parquet row group.
pub const ROW_GROUP: usize = 256 * 1024;
/// Rows per generated batch.
pub const BATCH: usize = 8192;

/// The columns of the model, in order.
pub const COLUMNS: [&str; 8] = [
    "id",
    "email",
    "name",
    "phone",
    "plan",
    "ltv",
    "signup_at",
    "active",
];

/// Which snapshot to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// The initial snapshot.
    Zero,
    /// The next day: updates, deletes and inserts applied.
    One,
}

/// Exact change counts between day 0 and day 1 for a row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Rows of day 0.
    pub day0_rows: u64,
    /// Rows of day 1.
    pub day1_rows: u64,
    /// Keys new on day 1.
    pub added: u64,
    /// Keys whose values changed.
    pub updated: u64,
    /// Keys gone on day 1.
    pub deleted: u64,
    /// Keys present on both days with the same values.
    pub unchanged: u64,
}

/// How many `i` in `0..n` have `i % m == r` (`r < m`).
fn count_mod(n: u64, m: u64, r: u64) -> u64 {
    if n > r { (n - r - 1) / m + 1 } else { 0 }
}

fn is_updated(i: u64) -> bool {
    i % 100 == 37
}

fn is_deleted(i: u64) -> bool {
    i % 200 == 3
}

fn has_insert_after(i: u64) -> bool {
    i % 200 == 101
}

impl Expected {
    /// The counts for `rows` rows of day 0.
    pub fn for_rows(rows: u64) -> Expected {
        let updated = count_mod(rows, 100, 37);
        let deleted = count_mod(rows, 200, 3);
        let added = count_mod(rows, 200, 101);
        Expected {
            day0_rows: rows,
            day1_rows: rows - deleted + added,
            added,
            updated,
            deleted,
            unchanged: rows - updated - deleted,
        }
    }
}

/// splitmix64: a fixed, well-mixed hash, so the data is the same on every machine.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const FIRST: [&str; 16] = [
    "ada", "alan", "grace", "linus", "barbara", "dennis", "margaret", "ken", "frances", "edsger",
    "radia", "guido", "john", "donald", "leslie", "niklaus",
];
const FIRST_CAP: [&str; 16] = [
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Dennis", "Margaret", "Ken", "Frances", "Edsger",
    "Radia", "Guido", "John", "Donald", "Leslie", "Niklaus",
];
const LAST: [&str; 16] = [
    "lovelace", "turing", "hopper", "torvalds", "liskov", "ritchie", "hamilton", "thompson",
    "allen", "dijkstra", "perlman", "rossum", "backus", "knuth", "lamport", "wirth",
];
const LAST_CAP: [&str; 16] = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Ritchie", "Hamilton", "Thompson",
    "Allen", "Dijkstra", "Perlman", "Rossum", "Backus", "Knuth", "Lamport", "Wirth",
];
const DOMAINS: [&str; 4] = ["example.com", "example.org", "mail.example", "corp.example"];
const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
/// 2020-01-01T00:00:00Z in microseconds.
const EPOCH_2020_US: i64 = 1_577_836_800_000_000;
const FIVE_YEARS_S: u64 = 5 * 365 * 24 * 3600;

/// Column builders for one batch.
struct Builders {
    id: Int64Builder,
    email: StringBuilder,
    name: StringBuilder,
    phone: StringBuilder,
    plan: StringBuilder,
    ltv: Decimal128Builder,
    signup_at: TimestampMicrosecondBuilder,
    active: BooleanBuilder,
    len: usize,
    text: String,
}

impl Builders {
    fn new() -> Self {
        Builders {
            id: Int64Builder::with_capacity(BATCH),
            email: StringBuilder::with_capacity(BATCH, BATCH * 32),
            name: StringBuilder::with_capacity(BATCH, BATCH * 16),
            phone: StringBuilder::with_capacity(BATCH, BATCH * 12),
            plan: StringBuilder::with_capacity(BATCH, BATCH * 8),
            ltv: Decimal128Builder::with_capacity(BATCH),
            signup_at: TimestampMicrosecondBuilder::with_capacity(BATCH),
            active: BooleanBuilder::with_capacity(BATCH),
            len: 0,
            text: String::with_capacity(64),
        }
    }

    /// Appends the row of `id`, from the hash `h`, with `bump` applied (an update).
    fn push(&mut self, id: i64, h: u64, bump: bool) {
        use std::fmt::Write;
        let f = (h & 15) as usize;
        let l = ((h >> 4) & 15) as usize;
        self.id.append_value(id);
        self.text.clear();
        let _ = write!(
            self.text,
            "{}.{}{}@{}",
            FIRST[f],
            LAST[l],
            id,
            DOMAINS[((h >> 8) & 3) as usize]
        );
        self.email.append_value(&self.text);
        self.text.clear();
        let _ = write!(self.text, "{} {}", FIRST_CAP[f], LAST_CAP[l]);
        self.name.append_value(&self.text);
        if (h >> 10) % 10 < 3 {
            self.phone.append_null();
        } else {
            self.text.clear();
            let _ = write!(self.text, "+1-555-{:07}", (h >> 14) % 10_000_000);
            self.phone.append_value(&self.text);
        }
        let plan = ((h >> 40) & 3) as usize + usize::from(bump);
        self.plan.append_value(PLANS[plan % PLANS.len()]);
        let cents = ((h >> 20) % 9_999_900) as i128 + if bump { 100 } else { 0 };
        self.ltv.append_value(cents);
        let offset_s = ((h >> 24) % FIVE_YEARS_S) as i64;
        self.signup_at
            .append_value(EPOCH_2020_US + offset_s * 1_000_000);
        if (h >> 50).is_multiple_of(20) {
            self.active.append_null();
        } else {
            self.active.append_value(!(h >> 55).is_multiple_of(5));
        }
        self.len += 1;
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, BenchError> {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.email.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.phone.finish()),
            Arc::new(self.plan.finish()),
            Arc::new(
                self.ltv
                    .finish()
                    .with_precision_and_scale(12, 2)
                    .map_err(|e| BenchError::msg(format!("decimal column: {e}")))?,
            ),
            Arc::new(self.signup_at.finish().with_timezone("UTC")),
            Arc::new(self.active.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns)
            .map_err(|e| BenchError::msg(format!("building a batch: {e}")))
    }
}

/// The model's Arrow schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("phone", DataType::Utf8, true),
        Field::new("plan", DataType::Utf8, false),
        Field::new("ltv", DataType::Decimal128(12, 2), false),
        Field::new(
            "signup_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("active", DataType::Boolean, true),
    ]))
}

/// Calls `sink` with every batch of a snapshot, in key order.
pub fn batches(
    rows: u64,
    seed: u64,
    day: Day,
    mut sink: impl FnMut(RecordBatch) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let schema = schema();
    let mut b = Builders::new();
    for i in 0..rows {
        let h = mix(seed ^ mix(i));
        let id = (10 * i + 10) as i64;
        match day {
            Day::Zero => b.push(id, h, false),
            Day::One => {
                if !is_deleted(i) {
                    b.push(id, h, is_updated(i));
                }
                if has_insert_after(i) {
                    let new_id = id + 5;
                    b.push(new_id, mix(seed ^ mix(new_id as u64 ^ (1 << 62))), false);
                }
            }
        }
        if b.len >= BATCH {
            sink(b.finish(&schema)?)?;
        }
    }
    if b.len > 0 {
        sink(b.finish(&schema)?)?;
    }
    Ok(())
}

/// The cached files of one data set.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// Its directory.
    pub dir: PathBuf,
    /// Rows of day 0.
    pub rows: u64,
    /// The seed.
    pub seed: u64,
    /// The exact change counts.
    pub expected: Expected,
}

impl DataSet {
    /// The directory of `rows` rows with `seed` under `cache`.
    pub fn at(cache: &Path, rows: u64, seed: u64) -> DataSet {
        DataSet {
            dir: cache.join(format!("{rows}-s{seed}")),
            rows,
            seed,
            expected: Expected::for_rows(rows),
        }
    }

    /// The Parquet file of a day.
    pub fn parquet(&self, day: Day) -> PathBuf {
        self.dir.join(match day {
            Day::Zero => "day0.parquet",
            Day::One => "day1.parquet",
        })
    }

    /// The CSV file of a day.
    pub fn csv(&self, day: Day) -> PathBuf {
        self.dir.join(match day {
            Day::Zero => "day0.csv",
            Day::One => "day1.csv",
        })
    }

    /// Writes the Parquet files (and the CSV files when `csv`) that are not cached yet.
    /// Returns the seconds spent generating (0 when everything was cached).
    pub fn ensure(&self, csv: bool) -> Result<f64, BenchError> {
        std::fs::create_dir_all(&self.dir).map_err(BenchError::io(&self.dir))?;
        let t = Instant::now();
        let mut wrote = false;
        for day in [Day::Zero, Day::One] {
            let parquet = self.parquet(day);
            let csv_path = self.csv(day);
            let need_parquet = !parquet.exists();
            let need_csv = csv && !csv_path.exists();
            if !need_parquet && !need_csv {
                continue;
            }
            wrote = true;
            eprintln!(
                "generating {} ({} rows{}) ...",
                self.dir.display(),
                self.rows,
                match day {
                    Day::Zero => ", day 0",
                    Day::One => ", day 1",
                }
            );
            write_day(
                self,
                day,
                need_parquet.then_some(parquet.as_path()),
                need_csv.then_some(csv_path.as_path()),
            )?;
        }
        Ok(if wrote {
            t.elapsed().as_secs_f64()
        } else {
            0.0
        })
    }
}

/// Writes one day's Parquet and/or CSV file in one pass, each through a temp file.
fn write_day(
    set: &DataSet,
    day: Day,
    parquet: Option<&Path>,
    csv: Option<&Path>,
) -> Result<(), BenchError> {
    let schema = schema();
    let tmp = |p: &Path| PathBuf::from(format!("{}.tmp", p.display()));
    let mut pq = match parquet {
        Some(p) => {
            let file = File::create(tmp(p)).map_err(BenchError::io(&tmp(p)))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP))
                .build();
            Some(
                ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
                    .map_err(|e| BenchError::msg(format!("parquet writer: {e}")))?,
            )
        }
        None => None,
    };
    let mut cw = match csv {
        Some(p) => {
            let file = File::create(tmp(p)).map_err(BenchError::io(&tmp(p)))?;
            Some(
                WriterBuilder::new()
                    .with_header(true)
                    .build(BufWriter::with_capacity(1 << 20, file)),
            )
        }
        None => None,
    };
    batches(set.rows, set.seed, day, |batch| {
        if let Some(w) = pq.as_mut() {
            w.write(&batch)
                .map_err(|e| BenchError::msg(format!("writing parquet: {e}")))?;
        }
        if let Some(w) = cw.as_mut() {
            w.write(&batch)
                .map_err(|e| BenchError::msg(format!("writing csv: {e}")))?;
        }
        Ok(())
    })?;
    if let (Some(w), Some(p)) = (pq, parquet) {
        w.close()
            .map_err(|e| BenchError::msg(format!("closing parquet: {e}")))?;
        std::fs::rename(tmp(p), p).map_err(BenchError::io(p))?;
    }
    if let (Some(w), Some(p)) = (cw, csv) {
        drop(w);
        std::fs::rename(tmp(p), p).map_err(BenchError::io(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    use super::*;

    /// Every row as (id -> debug text of its other columns).
    fn rows_of(rows: u64, day: Day) -> BTreeMap<i64, String> {
        let mut out = BTreeMap::new();
        batches(rows, 7, day, |b| {
            let ids = b.column(0).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                let rest: Vec<String> = (1..b.num_columns())
                    .map(|c| format!("{:?}", b.column(c).slice(r, 1)))
                    .collect();
                out.insert(ids.value(r), rest.join("|"));
            }
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn the_next_day_has_exactly_the_expected_changes() {
        for rows in [0, 1, 150, 1000, 2_003] {
            let e = Expected::for_rows(rows);
            let d0 = rows_of(rows, Day::Zero);
            let d1 = rows_of(rows, Day::One);
            assert_eq!(d0.len() as u64, e.day0_rows);
            assert_eq!(d1.len() as u64, e.day1_rows);
            let added = d1.keys().filter(|k| !d0.contains_key(k)).count() as u64;
            let deleted = d0.keys().filter(|k| !d1.contains_key(k)).count() as u64;
            let updated = d0
                .iter()
                .filter(|(k, v)| d1.get(k).is_some_and(|w| w != *v))
                .count() as u64;
            assert_eq!((added, updated, deleted), (e.added, e.updated, e.deleted));
        }
        let e = Expected::for_rows(1_000_000);
        assert_eq!((e.added, e.updated, e.deleted), (5_000, 10_000, 5_000));
    }

    #[test]
    fn batches_are_sorted_by_key_and_have_nulls() {
        let mut last = i64::MIN;
        let mut nulls = 0;
        batches(20_000, 1, Day::One, |b| {
            let ids = b.column(0).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                assert!(ids.value(r) > last);
                last = ids.value(r);
            }
            nulls += b.column(3).null_count();
            Ok(())
        })
        .unwrap();
        assert!(nulls > 0);
    }
}
