//! Micro-benchmarks of the change-detection hot paths: key encoding and fingerprinting.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::datatypes::DataType;
use retl_benches::sample_columns;
use retl_engine::diff::fingerprint::Fingerprinter;
use retl_engine::diff::key::encode_key;

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

criterion_group!(benches, key_encoding, fingerprinting);
criterion_main!(benches);
