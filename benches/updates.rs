//! Issue #4 benchmarks: parsing the full bookworm `main` amd64 Packages index next to plain
//! xz decompression of the same file, and matching 10,000 manifests of 300 packages against
//! it. The index is fetched once (verified like any tracked repository) into
//! `.bench-cache/` at the crate root (git-ignored) and reused.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drover::debian::packages::{decompress, IndexOrigin, PackageIndex};
use drover::debian::{RepoClient, TrackedRepo};
use drover::manifest::Component;
use drover::stack::AptSource;
use drover::updates::find_pending;

const MIRROR: &str = "http://deb.debian.org/debian";

/// The bookworm main amd64 Packages.xz bytes, fetched once.
fn packages_xz() -> Vec<u8> {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".bench-cache");
    let repo = TrackedRepo::new(AptSource {
        mirror: MIRROR.into(),
        suite: "bookworm".into(),
        components: vec!["main".into()],
    });
    let client = RepoClient::new(&cache).expect("client");
    let synced = client
        .sync(&repo, &["amd64".to_string()], false)
        .expect("fetch bookworm main amd64 (network to the Debian mirror needed once)");
    let (_, f) = synced.release.packages_index("main", "amd64").unwrap();
    let obj = synced.dir.join("objects").join(format!("{}.xz", f.sha256));
    std::fs::read(&obj).expect("cached Packages.xz")
}

fn bench(c: &mut Criterion) {
    let xz = packages_xz();
    let origin = IndexOrigin {
        mirror: MIRROR,
        suite: "bookworm",
        family: "Debian",
    };
    let text = decompress("Packages.xz", &xz).unwrap();
    let mut g = c.benchmark_group("packages_index");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("xz_decompress_only", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(xz.len() * 6);
            liblzma::read::XzDecoder::new(&xz[..])
                .read_to_end(&mut out)
                .unwrap();
            out.len()
        })
    });
    g.bench_function("decompress_and_parse_bookworm_main_amd64", |b| {
        b.iter(|| {
            let mut index = PackageIndex::new();
            index.add_compressed("Packages.xz", &xz, &origin).unwrap()
        })
    });
    g.finish();

    // 10,000 manifests of 300 packages drawn from the index; one package in 20 is installed
    // at an older version so that it is pending.
    let mut index = PackageIndex::new();
    index.add_packages(&text, &origin).unwrap();
    let entries: Vec<(String, String, String)> =
        deb822_fast::borrowed::iter_paragraphs_borrowed(&text)
            .filter_map(Result::ok)
            .filter_map(|p| {
                Some((
                    p.get_single("Package")?.trim().to_string(),
                    p.get_single("Version")?.trim().to_string(),
                    p.get_single("Architecture")?.trim().to_string(),
                ))
            })
            .collect();
    let manifests: Vec<Vec<Component>> = (0..10_000)
        .map(|m| {
            (0..300)
                .map(|i| {
                    let (name, version, arch) = &entries[(m * 7 + i * 211) % entries.len()];
                    Component {
                        name: name.clone(),
                        version: if i % 20 == 0 {
                            "0~old".into()
                        } else {
                            version.clone()
                        },
                        arch: arch.clone(),
                        source: name.clone(),
                        source_version: version.clone(),
                        suite: "bookworm".into(),
                        origin: MIRROR.into(),
                        installed_size_kib: None,
                    }
                })
                .collect()
        })
        .collect();
    let families: HashMap<String, String> = [(MIRROR.to_string(), "Debian".to_string())].into();
    let mut g = c.benchmark_group("match");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(manifests.len() as u64));
    g.bench_function("10000_manifests_of_300_packages", |b| {
        b.iter(|| {
            manifests
                .iter()
                .map(|m| find_pending(m, &index, &families, "t").len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
