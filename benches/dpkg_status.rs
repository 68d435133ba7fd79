//! Parsing a 5,000-entry dpkg status file (the size of a large server image), and the
//! overlay-aware read of the same database from disk.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drover::manifest::dpkg::{parse_status, read_db};
use drover::manifest::rootfs::RootView;

/// A status file with `n` installed packages shaped like Debian's (multi-line
/// descriptions, Depends, Source with and without version, conffiles).
fn status_file(n: usize) -> String {
    let mut s = String::with_capacity(n * 700);
    for i in 0..n {
        let source = match i % 3 {
            0 => format!("Source: src{}\n", i / 3),
            1 => format!("Source: src{} (1.{}-2)\n", i / 3, i),
            _ => String::new(),
        };
        s.push_str(&format!(
            "Package: package-{i}\nStatus: install ok installed\nPriority: optional\n\
             Section: libs\nInstalled-Size: {}\nMaintainer: Debian Maintainers <debian@example.org>\n\
             Architecture: amd64\nMulti-Arch: same\n{source}Version: 1.{i}-2+deb12u1\n\
             Depends: libc6 (>= 2.34), libssl3 (>= 3.0.0), zlib1g (>= 1:1.2.0)\n\
             Conffiles:\n /etc/package-{i}/main.conf 0123456789abcdef0123456789abcdef\n\
             Description: package number {i}\n This is a long description line that wraps.\n .\n \
             More text follows on another line to look like a real package description.\n\
             Homepage: https://example.org/package-{i}\n\n",
            100 + i
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = status_file(5_000);
    let mut g = c.benchmark_group("dpkg_status");
    g.throughput(Throughput::Elements(5_000));
    g.bench_function("parse_5000_entries", |b| {
        b.iter(|| {
            let pkgs = parse_status(std::hint::black_box(&text), "status").unwrap();
            assert_eq!(pkgs.len(), 5_000);
        })
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
    std::fs::write(dir.path().join("var/lib/dpkg/status"), &text).unwrap();
    let view = RootView::Dir(dir.path().to_path_buf());
    g.bench_function("read_db_5000_entries_from_disk", |b| {
        b.iter(|| assert_eq!(read_db(&view).unwrap().len(), 5_000))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
