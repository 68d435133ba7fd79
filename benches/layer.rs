//! Writing a base-sized layer: the cost of a cold base (a warm build copies the blob).
//! Input: a Debian-like tree of ~48 MB (text and binary-ish files) made once.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drover::build::oci::{write_layer, LayerMode};

fn make_tree(root: &Path) -> u64 {
    let mut total = 0u64;
    let mut seed = 0x2545F4914F6CDD1Du64;
    for d in 0..40 {
        let dir = root.join(format!("usr/lib/pkg{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..30 {
            // Half text-like (compressible), half pseudo-random (like stripped binaries).
            let len = 40_000usize;
            let data: Vec<u8> = if f % 2 == 0 {
                (0..len)
                    .map(|i| b"the quick brown fox jumps over the lazy dog\n"[i % 44])
                    .collect()
            } else {
                (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed % 64) as u8
                    })
                    .collect()
            };
            total += data.len() as u64;
            std::fs::write(dir.join(format!("file{f}")), data).unwrap();
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let bytes = make_tree(&root);
    let out = tmp.path().join("layer.tar.gz");
    let mut g = c.benchmark_group("layer");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("write_layer_48MB", |b| {
        b.iter(|| write_layer(&root, LayerMode::Full, &[], &out).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
