//! Micro-benchmarks of the change-detection hot paths: key encoding, fingerprinting, and the
//! sort-merge of a sorted extract with the state (RocksDB).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::datatypes::DataType;
use retl_benches::sample_columns;
use retl_engine::destination::spec::ChangeKind;
use retl_engine::diff::DiffSink;
use retl_engine::diff::fingerprint::{Fingerprint, Fingerprinter};
use retl_engine::diff::key::encode_key;
use retl_engine::diff::local::SortMergeDiffer;
use retl_engine::error::Error;
use retl_engine::id::MappingId;
use retl_engine::state::rocks::RocksStateStore;
use retl_engine::state::{RunStamp, StateStore, StateWrite, SyncedBy};
use retl_engine::store::Store;

const ROWS: usize = 8192;

fn key_encoding(c: &mut Criterion) {
    let (keys, _) = sample_columns(ROWS);
    let mut g = c.benchmark_group("key_encoding");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("int64_batch_8192", |b| {
        b.iter(|| {
            for row in 0..ROWS {
                black_box(encode_key(keys.as_ref(), row));
            }
        })
    });
    g.finish();
}

fn fingerprinting(c: &mut Criterion) {
    let (_, columns) = sample_columns(ROWS);
    let fp = Fingerprinter::new(&[DataType::Utf8, DataType::Utf8], b"bench").unwrap();
    let mut g = c.benchmark_group("fingerprint");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("two_utf8_columns_batch_8192", |b| {
        b.iter(|| black_box(fp.fingerprints(&columns, ROWS).unwrap()))
    });
    g.finish();
}

/// Rows in the merged extract and keys in the state.
const MERGE_ROWS: usize = 100_000;

fn diff_merge(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let state = RocksStateStore::new(Store::open(dir.path()).unwrap());
    let mapping = MappingId::new("bench");
    let key = |i: usize| {
        encode_key(
            &datafusion::arrow::array::Int64Array::from(vec![i as i64 * 10]),
            0,
        )
        .unwrap()
    };
    // The state holds every even-numbered key; fingerprint = the index; written by one run.
    let synced_by = RunStamp::of("01a22fa7-7b67-70d3-8ec8-6c6cf55959e4")
        .map(|run| SyncedBy { run, sent: true });
    let writes: Vec<StateWrite> = (0..MERGE_ROWS)
        .map(|i| StateWrite::Put {
            key: key(i),
            fingerprint: Fingerprint(i as u128),
            synced_by,
        })
        .collect();
    for chunk in writes.chunks(10_000) {
        state.commit(&mapping, chunk).unwrap();
    }
    // The extract: 98% unchanged, 1% updated, 0.5% deleted (skipped), 0.5% added.
    let mut rows: Vec<(Vec<u8>, Fingerprint)> = Vec::with_capacity(MERGE_ROWS);
    for i in 0..MERGE_ROWS {
        if i % 200 != 3 {
            let fp = if i % 100 == 37 { u128::MAX } else { i as u128 };
            rows.push((key(i), Fingerprint(fp)));
        }
        if i % 200 == 101 {
            let mut k = key(i);
            if let Some(last) = k.last_mut() {
                *last += 5;
            }
            rows.push((k, Fingerprint(0)));
        }
    }
    let mut g = c.benchmark_group("diff_merge");
    g.throughput(Throughput::Elements(MERGE_ROWS as u64));
    g.sample_size(20);
    g.bench_function("rocksdb_state_100k_keys_2pct_changed", |b| {
        b.iter(|| {
            let mut differ = SortMergeDiffer::new(&state, mapping.clone());
            let mut sink = CountingSink::default();
            for (row, (key, fp)) in rows.iter().enumerate() {
                differ.push(key, row as u64, *fp, &mut sink).unwrap();
            }
            differ.finish(&mut sink).unwrap();
            black_box(sink.0)
        })
    });
    g.finish();
}

/// Counts the differ's findings.
#[derive(Default)]
struct CountingSink(usize);

impl DiffSink for CountingSink {
    fn changed(&mut self, _: ChangeKind, _: &[u8], _: u64, _: Fingerprint) -> Result<(), Error> {
        self.0 += 1;
        Ok(())
    }
    fn deleted(&mut self, _: &[u8]) -> Result<(), Error> {
        self.0 += 1;
        Ok(())
    }
    fn rejected(&mut self, _: String, _: String) {
        self.0 += 1;
    }
    fn checkpoint(&mut self, _: u64) -> Result<(), Error> {
        Ok(())
    }
}

criterion_group!(benches, key_encoding, fingerprinting, diff_merge);
criterion_main!(benches);
