//! Manifest capture of a real base (issue #11 goal: ≤ 0.1 s with origins from the lock),
//! against the full scan of the apt lists for origins, in one run on the same tree.
//!
//! Input: `DROVER_BENCH_BASE=STATE/bases/KEY` (a base drover made: its `rootfs/`) and
//! `DROVER_BENCH_LOCK=CONFIG/stacks/NAME.lock` (the lock it was made from). Without them
//! the benchmark says so and measures nothing (CI has no base at bench time).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use drover::lock::Lock;
use drover::manifest::{capture, capture_known, rootfs::RootView};

fn bench(c: &mut Criterion) {
    let (Some(base), Some(lock)) = (
        std::env::var_os("DROVER_BENCH_BASE"),
        std::env::var_os("DROVER_BENCH_LOCK"),
    ) else {
        eprintln!("manifest_capture: set DROVER_BENCH_BASE and DROVER_BENCH_LOCK; skipped");
        return;
    };
    let root = RootView::Dir(PathBuf::from(base).join("rootfs"));
    let lock_path = PathBuf::from(lock);
    let lock = Lock::parse(&std::fs::read_to_string(&lock_path).unwrap(), &lock_path).unwrap();
    let sources = lock.sources();
    let known: HashMap<(String, String, String), (String, String)> = lock
        .packages
        .iter()
        .map(|p| {
            (
                (p.name.clone(), p.arch.clone(), p.version.clone()),
                (p.suite.clone(), p.mirror.clone()),
            )
        })
        .collect();
    let by_lock = |n: &str, a: &str, v: &str| {
        known
            .get(&(n.to_string(), a.to_string(), v.to_string()))
            .cloned()
    };
    // Same answer both ways.
    let full = capture(&root, &sources).unwrap();
    let fast = capture_known(&root, &sources, &by_lock).unwrap();
    assert_eq!(full, fast);
    let mut g = c.benchmark_group("manifest_capture");
    g.sample_size(10);
    g.bench_function("full_scan_of_the_apt_lists", |b| {
        b.iter(|| capture(&root, &sources).unwrap())
    });
    g.bench_function("origins_from_the_lock", |b| {
        b.iter(|| capture_known(&root, &sources, &by_lock).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
