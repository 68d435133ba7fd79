//! Fixture tests for the Debian repository client and CVE layering: small repositories
//! signed with a throwaway key generated here, served by an HTTP server on 127.0.0.1 started
//! by the test, and .deb files built here.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use drover::debian::changelog;
use drover::debian::deb::{changelog_from_deb, DocChangelog};
use drover::debian::{RepoClient, TrackedRepo};
use drover::manifest::Component;
use drover::stack::{AptSource, RepoTrust};
use drover::store::Store;
use drover::updates::{cves, find_pending, sort_by_risk};
use pgp::composed::SignedSecretKey;

#[path = "support/aptrepo.rs"]
mod aptrepo;
use aptrepo::{
    future, gz, key, public_keyring, publish_suite, publish_suite_as, sha, xz, Server, Suite,
};

const SUITE: &str = "testing-security";

/// Write `dists/SUITE/` under `root/debian` (see [`publish_suite`]).
fn publish(
    root: &Path,
    packages: &str,
    key: Option<&SignedSecretKey>,
    valid_until: &str,
) -> String {
    let s = Suite {
        origin: "Test",
        label: "Test-Security",
        suite: SUITE,
        valid_until,
    };
    publish_suite(&root.join("debian"), &s, packages, key)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    key: SignedSecretKey,
    keyring: PathBuf,
    served: PathBuf,
    cache: PathBuf,
    server: Server,
}

impl Fixture {
    fn new(packages: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let key = key();
        let keyring = tmp.path().join("test-keyring.gpg");
        std::fs::write(&keyring, public_keyring(&key)).unwrap();
        let served = tmp.path().join("www");
        publish(&served, packages, Some(&key), &future());
        let server = Server::start(&served);
        let cache = tmp.path().join("state/repos");
        Fixture {
            _tmp: tmp,
            key,
            keyring,
            served,
            cache,
            server,
        }
    }
    fn repo(&self) -> TrackedRepo {
        TrackedRepo {
            source: AptSource {
                mirror: self.url(),
                suite: SUITE.into(),
                components: vec!["main".into()],
            },
            trust: RepoTrust {
                trusted: false,
                signed_by: Some(self.keyring.clone()),
            },
            architectures: Vec::new(),
            family: None,
        }
    }
    fn url(&self) -> String {
        format!("{}/debian", self.server.base)
    }
    fn client(&self) -> RepoClient {
        RepoClient::new(&self.cache).unwrap()
    }
    fn inrelease_path(&self) -> PathBuf {
        self.served
            .join("debian/dists")
            .join(SUITE)
            .join("InRelease")
    }
}

fn amd64() -> Vec<String> {
    vec!["amd64".to_string()]
}

fn para(
    name: &str,
    version: &str,
    arch: &str,
    source: Option<&str>,
    file: &str,
    data: &[u8],
) -> String {
    let mut p = format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\n");
    if let Some(s) = source {
        p.push_str(&format!("Source: {s}\n"));
    }
    p.push_str(&format!(
        "Filename: {file}\nSize: {}\nSHA256: {}\nDescription: fixture\n\n",
        data.len(),
        sha(data)
    ));
    p
}

const SIMPLE: &str = "Package: libfoo1\nVersion: 1.0-1+b1\nArchitecture: amd64\nSource: foo (1.0-1)\n\
Filename: pool/main/f/foo/libfoo1.deb\nSize: 3\nSHA256: 00\n\n\
Package: foo-data\nVersion: 1.0-1\nArchitecture: all\nSource: foo\nFilename: pool/f.deb\nSize: 1\nSHA256: 00\n\n\
Package: bar\nVersion: 2:0.9-3\nArchitecture: amd64\nFilename: pool/b.deb\nSize: 1\nSHA256: 00\n\n";

#[test]
fn signed_repository_is_indexed_by_package_and_architecture() {
    let f = Fixture::new(SIMPLE);
    let client = f.client();
    let s = client.sync(&f.repo(), &amd64(), true).expect("sync");
    assert!(s.waived.is_none() && s.refresh_error.is_none());
    assert_eq!(s.release.origin, "Test");
    assert!(s.release.acquire_by_hash);
    let reqs = f.server.requests();
    assert!(
        reqs.iter()
            .any(|(p, c)| p.contains("/by-hash/SHA256/") && *c == 200),
        "by-hash not used: {reqs:?}"
    );
    let index = client.load_index(&[s], &amd64()).unwrap();
    let lib: Vec<_> = index.candidates("libfoo1", "amd64").collect();
    assert_eq!(lib.len(), 1);
    assert_eq!(lib[0].version, "1.0-1+b1");
    assert_eq!(
        (lib[0].source.as_str(), lib[0].source_version.as_str()),
        ("foo", "1.0-1")
    );
    assert_eq!(&*lib[0].family, "Test");
    let data: Vec<_> = index.candidates("foo-data", "all").collect();
    assert_eq!(data.len(), 1);
    assert_eq!(
        (data[0].source.as_str(), data[0].source_version.as_str()),
        ("foo", "1.0-1")
    );
    assert_eq!(index.candidates("foo-data", "amd64").count(), 0);
    let bar: Vec<_> = index.candidates("bar", "amd64").collect();
    assert_eq!(
        (bar[0].source.as_str(), bar[0].version.as_str()),
        ("bar", "2:0.9-3")
    );

    // An unchanged repository costs one conditional request answered 304.
    f.server.clear();
    let again = client.sync(&f.repo(), &amd64(), true).unwrap();
    assert!(again.not_modified);
    assert_eq!(
        f.server.requests(),
        vec![(format!("debian/dists/{SUITE}/InRelease"), 304)]
    );
    // Without --refresh the cache answers alone.
    f.server.clear();
    client.sync(&f.repo(), &amd64(), false).unwrap();
    assert!(f.server.requests().is_empty());
}

#[test]
fn tampered_inrelease_is_refused_and_the_previous_index_stays() {
    let f = Fixture::new(SIMPLE);
    let client = f.client();
    client.sync(&f.repo(), &amd64(), true).unwrap();
    let cached_file = client.repo_dir(&f.repo()).join("InRelease");
    let good = std::fs::read(&cached_file).unwrap();

    // One byte changed in the served file's signed text.
    let served = std::fs::read_to_string(f.inrelease_path()).unwrap();
    std::fs::write(
        f.inrelease_path(),
        served.replacen("Label: Test-Security", "Label: Test-Securitz", 1),
    )
    .unwrap();
    let s = client
        .sync(&f.repo(), &amd64(), true)
        .expect("previous good index");
    let err = s.refresh_error.clone().expect("refresh error reported");
    assert!(err.contains(&f.repo().name()), "{err}");
    assert!(err.contains("no signature"), "{err}");
    assert_eq!(std::fs::read(&cached_file).unwrap(), good, "cache replaced");
    let index = client.load_index(&[s], &amd64()).unwrap();
    assert_eq!(index.candidates("libfoo1", "amd64").count(), 1);

    // Without a cached copy the same answer is an error naming the repository.
    let fresh = RepoClient::new(&f.cache.with_file_name("other")).unwrap();
    let e = format!("{:#}", fresh.sync(&f.repo(), &amd64(), true).unwrap_err());
    assert!(
        e.contains(&f.repo().name()) && e.contains("refusing"),
        "{e}"
    );

    // One byte changed in the cached file: rejected, and fetched again when refreshing.
    std::fs::write(f.inrelease_path(), served).unwrap();
    let mut bad = good.clone();
    let pos = bad.windows(6).position(|w| w == b"Origin").unwrap();
    bad[pos] = b'X';
    std::fs::write(&cached_file, &bad).unwrap();
    let e = format!(
        "{:#}",
        client
            .sync(&f.repo(), &amd64(), false)
            .map(|s| s.cache_rejected)
            .unwrap()
            .unwrap()
    );
    assert!(e.contains(&f.repo().name()), "{e}");
    assert_eq!(std::fs::read(&cached_file).unwrap(), good);

    // The wrong key is refused as well.
    let other = key();
    publish(&f.served, SIMPLE, Some(&other), &future());
    let e = format!("{:#}", fresh.sync(&f.repo(), &amd64(), true).unwrap_err());
    assert!(e.contains("no signature"), "{e}");
    let _ = &f.key;
}

/// Write `dists/SUITE/` of the fixture with a Release that names `suite` and is dated
/// `date`, signed by `key`.
fn publish_as(f: &Fixture, suite: &str, packages: &str, date: &str) {
    let until = future();
    let s = Suite {
        origin: "Test",
        label: "Test-Security",
        suite,
        valid_until: &until,
    };
    publish_suite_as(
        &f.served.join("debian"),
        SUITE,
        &s,
        packages,
        Some(&f.key),
        date,
    );
}

fn release_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

/// Issue #12 §1: a validly signed Release of another suite (e.g. `bookworm` served as
/// `bookworm-security`) would hide every security update; it is refused as apt's
/// "Conflicting distribution", and the cache keeps the good index.
#[test]
fn a_signed_release_of_another_suite_is_refused_and_the_cache_stays() {
    let f = Fixture::new(SIMPLE);
    let client = f.client();
    client.sync(&f.repo(), &amd64(), true).unwrap();
    let cached_file = client.repo_dir(&f.repo()).join("InRelease");
    let good = std::fs::read(&cached_file).unwrap();

    // Genuinely signed by the trusted key, but for suite `testing` and without libfoo1.
    publish_as(
        &f,
        "testing",
        "Package: bar\nVersion: 2:0.9-3\nArchitecture: amd64\nFilename: pool/b.deb\nSize: 1\nSHA256: 00\n\n",
        "Sun, 10 Nov 2024 10:12:34 UTC",
    );
    let s = client
        .sync(&f.repo(), &amd64(), true)
        .expect("previous good index");
    let err = s.refresh_error.clone().expect("refusal reported");
    assert!(err.contains("conflicting distribution"), "{err}");
    assert!(err.contains("`testing`") && err.contains(SUITE), "{err}");
    assert_eq!(std::fs::read(&cached_file).unwrap(), good, "cache replaced");
    let index = client.load_index(&[s], &amd64()).unwrap();
    assert_eq!(index.candidates("libfoo1", "amd64").count(), 1);

    // Without a cached copy it is an error, not an empty repository.
    let fresh = RepoClient::new(&f.cache.with_file_name("fresh")).unwrap();
    let e = format!("{:#}", fresh.sync(&f.repo(), &amd64(), true).unwrap_err());
    assert!(e.contains("conflicting distribution"), "{e}");
}

/// Issue #12 §1: a Release older than the cached one (a rollback of the repository, or a
/// replay of a file without Valid-Until) is refused; so is one dated in the future beyond
/// the clock skew.
#[test]
fn a_release_older_than_the_cached_one_or_from_the_future_is_refused() {
    let f = Fixture::new(SIMPLE);
    let client = f.client();
    client.sync(&f.repo(), &amd64(), true).unwrap(); // dated 9 Nov 2024
    let cached_file = client.repo_dir(&f.repo()).join("InRelease");
    let good = std::fs::read(&cached_file).unwrap();

    publish_as(&f, SUITE, SIMPLE, "Fri, 01 Nov 2024 10:12:34 UTC");
    let s = client.sync(&f.repo(), &amd64(), true).unwrap();
    let err = s.refresh_error.clone().expect("rollback reported");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(std::fs::read(&cached_file).unwrap(), good, "cache replaced");

    // The rollback is caught even when the cached copy itself became unusable.
    let mut bad = good.clone();
    let pos = bad.windows(6).position(|w| w == b"Origin").unwrap();
    bad[pos] = b'X';
    std::fs::write(&cached_file, &bad).unwrap();
    let e = format!("{:#}", client.sync(&f.repo(), &amd64(), true).unwrap_err());
    assert!(e.contains("rolled back"), "{e}");

    // A day ahead of our clock: not valid yet. Five minutes ahead: within the skew.
    let now = chrono::Utc::now();
    publish_as(
        &f,
        SUITE,
        SIMPLE,
        &release_date(now + chrono::Duration::days(1)),
    );
    let fresh = RepoClient::new(&f.cache.with_file_name("fresh")).unwrap();
    let e = format!("{:#}", fresh.sync(&f.repo(), &amd64(), true).unwrap_err());
    assert!(e.contains("not valid yet"), "{e}");
    publish_as(
        &f,
        SUITE,
        SIMPLE,
        &release_date(now + chrono::Duration::minutes(5)),
    );
    let s = fresh.sync(&f.repo(), &amd64(), true).unwrap();
    assert!(s.refresh_error.is_none(), "{:?}", s.refresh_error);
    // And a newer Release replaces the rejected cached copy of the first client.
    let s = client.sync(&f.repo(), &amd64(), true).unwrap();
    assert!(s.refresh_error.is_none(), "{:?}", s.refresh_error);
}

#[test]
fn packages_with_a_wrong_hash_are_refused() {
    let f = Fixture::new(SIMPLE);
    let client = f.client();
    client.sync(&f.repo(), &amd64(), true).unwrap();
    // New Release for new contents, but the served Packages files are different bytes.
    let newer = SIMPLE.replace("1.0-1+b1", "1.0-1+b2");
    publish(&f.served, &newer, Some(&f.key), &future());
    let bin = f
        .served
        .join("debian/dists")
        .join(SUITE)
        .join("main/binary-amd64");
    let evil = xz(SIMPLE.replace("1.0-1+b1", "9.9-9").as_bytes());
    std::fs::write(bin.join("Packages.xz"), &evil).unwrap();
    for e in std::fs::read_dir(bin.join("by-hash/SHA256")).unwrap() {
        std::fs::write(e.unwrap().path(), &evil).unwrap();
    }
    let s = client.sync(&f.repo(), &amd64(), true).unwrap();
    let err = s.refresh_error.clone().expect("hash mismatch reported");
    assert!(err.contains("SHA-256") || err.contains("bytes"), "{err}");
    assert!(err.contains(&f.repo().name()), "{err}");
    let index = client.load_index(&[s], &amd64()).unwrap();
    let c: Vec<_> = index.candidates("libfoo1", "amd64").collect();
    assert_eq!(c[0].version, "1.0-1+b1", "the previous good index stays");
}

#[test]
fn expired_release_and_missing_signature_are_refused() {
    let f = Fixture::new(SIMPLE);
    publish(
        &f.served,
        SIMPLE,
        Some(&f.key),
        "Sat, 01 Jan 2000 00:00:00 UTC",
    );
    let e = format!(
        "{:#}",
        f.client().sync(&f.repo(), &amd64(), true).unwrap_err()
    );
    assert!(e.contains("expired") && e.contains(&f.repo().name()), "{e}");

    publish(&f.served, SIMPLE, None, &future());
    let e = format!(
        "{:#}",
        f.client().sync(&f.repo(), &amd64(), true).unwrap_err()
    );
    assert!(e.contains("not OpenPGP cleartext-signed"), "{e}");
    // trusted = true waives it, loudly.
    let mut repo = f.repo();
    repo.trust.trusted = true;
    let s = f.client().sync(&repo, &amd64(), true).unwrap();
    assert!(s.waived.is_some());
    assert_eq!(s.release.origin, "Test");
}

/// A .deb (deb(5)) with `files` in data.tar.xz: (path, Some(contents)) for files,
/// (path, None) with `link` for symlinks. Paths are written raw (so `..` is possible).
/// One data.tar entry: path, file contents, symlink target.
type Entry<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

fn deb(files: &[Entry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, link) in files {
        let mut h = tar::Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(0o644);
        match (data, link) {
            (_, Some(target)) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(target).unwrap();
                h.set_size(0);
                h.set_cksum();
                tar.append(&h, &[][..]).unwrap();
            }
            (Some(d), None) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_cksum();
                tar.append(&h, *d).unwrap();
            }
            (None, None) => unreachable!(),
        }
    }
    let data = xz(&tar.into_inner().unwrap());
    let mut control = tar::Builder::new(Vec::new());
    let c = b"Package: x\n";
    let mut h = tar::Header::new_gnu();
    h.set_path("./control").unwrap();
    h.set_size(c.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    control.append(&h, &c[..]).unwrap();
    let control = gz(&control.into_inner().unwrap());
    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control),
        ("data.tar.xz", data),
    ] {
        ar.append(
            &ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64),
            &bytes[..],
        )
        .unwrap();
    }
    ar.into_inner().unwrap()
}

const CHANGELOG: &str = "foo (1.0-3) testing-security; urgency=high

  * Non-maintainer upload by the Security Team.
  * Fix CVE-2026-0001 and cve-2026-10002 (DSA-9999-1).

 -- Security Team <team@security.example>  Mon, 02 Nov 2026 10:00:00 +0000

foo (1.0-2) testing-security; urgency=medium

  * Fix CVE-2026-0003.

 -- Security Team <team@security.example>  Sun, 01 Nov 2026 10:00:00 +0000

foo (1.0-1) unstable; urgency=low

  * Initial release, fixes CVE-2020-0001 upstream.

 -- Maintainer <m@example.org>  Sat, 01 Feb 2020 10:00:00 +0000
";

#[test]
fn changelog_is_read_from_debs_with_symlinks_and_traversal_rejected() {
    let log = gz(CHANGELOG.as_bytes());
    let plain = deb(&[("./usr/share/doc/foo/changelog.Debian.gz", Some(&log), None)]);
    match changelog_from_deb(&plain, "foo", "amd64", "foo.deb").unwrap() {
        DocChangelog::Found { changelog, binnmu } => {
            assert!(binnmu.is_none());
            let entries = changelog::parse(&changelog);
            assert_eq!(entries.len(), 3);
            assert_eq!(entries[0].version, "1.0-3");
            assert_eq!(entries[0].urgency, "high");
            assert_eq!(entries[0].cves, vec!["CVE-2026-0001", "CVE-2026-10002"]);
            assert_eq!(entries[0].advisories, vec!["DSA-9999-1"]);
            assert_eq!(entries[0].date, "Mon, 02 Nov 2026 10:00:00 +0000");
            assert_eq!(entries[1].cves, vec!["CVE-2026-0003"]);
        }
        other => panic!("{other:?}"),
    }
    let binnmu_log = gz(b"foo (1.0-3+b1) testing-security; urgency=low, binary-only=yes\n\n  * Rebuild.\n\n -- B <b@example.org>  Tue, 03 Nov 2026 10:00:00 +0000\n");
    let with_binnmu = deb(&[
        ("./usr/share/doc/foo/changelog.Debian.gz", Some(&log), None),
        (
            "./usr/share/doc/foo/changelog.Debian.amd64.gz",
            Some(&binnmu_log),
            None,
        ),
    ]);
    assert!(matches!(
        changelog_from_deb(&with_binnmu, "foo", "amd64", "foo.deb").unwrap(),
        DocChangelog::Found {
            binnmu: Some(_),
            ..
        }
    ));
    let linked = deb(&[("./usr/share/doc/libfoo1", None, Some("foo"))]);
    assert_eq!(
        changelog_from_deb(&linked, "libfoo1", "amd64", "libfoo1.deb").unwrap(),
        DocChangelog::SymlinkTo("foo".into())
    );
    let evil = deb(&[
        ("./usr/share/doc/foo/changelog.Debian.gz", Some(&log), None),
        (
            "../../etc/cron.d/evil",
            Some(b"* * * * * root true\n"),
            None,
        ),
    ]);
    let e = format!(
        "{:#}",
        changelog_from_deb(&evil, "foo", "amd64", "evil.deb").unwrap_err()
    );
    assert!(
        e.contains("path traversal") && e.contains("evil.deb"),
        "{e}"
    );
    let not_deb = changelog_from_deb(b"garbage", "foo", "amd64", "g.deb");
    assert!(not_deb.is_err());
}

#[test]
fn pending_updates_carry_the_cves_of_their_changelog() {
    let log = gz(CHANGELOG.as_bytes());
    let foo_deb = deb(&[("./usr/share/doc/foo/changelog.Debian.gz", Some(&log), None)]);
    let lib_deb = deb(&[("./usr/share/doc/libfoo1", None, Some("foo"))]);
    let other_log = gz(b"baz (2.0-2) testing-security; urgency=medium\n\n  * Fix CVE-2026-5555.\n\n -- T <t@example.org>  Mon, 02 Nov 2026 10:00:00 +0000\n");
    let baz_deb = deb(&[(
        "./usr/share/doc/baz/changelog.Debian.gz",
        Some(&other_log),
        None,
    )]);
    let mut packages = String::new();
    packages += &para(
        "foo",
        "1.0-3",
        "amd64",
        None,
        "pool/main/f/foo/foo_1.0-3_amd64.deb",
        &foo_deb,
    );
    packages += &para(
        "libfoo1",
        "1.0-3",
        "amd64",
        Some("foo"),
        "pool/main/f/foo/libfoo1_1.0-3_amd64.deb",
        &lib_deb,
    );
    packages += &para(
        "baz",
        "2.0-2",
        "amd64",
        None,
        "pool/main/b/baz/baz_2.0-2_amd64.deb",
        &baz_deb,
    );
    packages += &para("qux", "1.0-1", "amd64", None, "pool/q.deb", b"q");
    let f = Fixture::new(&packages);
    for (name, data) in [
        ("pool/main/f/foo/foo_1.0-3_amd64.deb", &foo_deb),
        ("pool/main/f/foo/libfoo1_1.0-3_amd64.deb", &lib_deb),
        ("pool/main/b/baz/baz_2.0-2_amd64.deb", &baz_deb),
    ] {
        let p = f.served.join("debian").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let client = f.client();
    let s = client.sync(&f.repo(), &amd64(), true).unwrap();
    let index = client.load_index(&[s], &amd64()).unwrap();
    let comp = |name: &str, version: &str, source: &str, origin: &str| Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        suite: "testing".into(),
        origin: origin.into(),
        installed_size_kib: None,
    };
    let manifest = vec![
        comp("foo", "1.0-1", "foo", &f.url()),
        comp("libfoo1", "1.0-1", "foo", &f.url()),
        comp("baz", "2.0-1", "baz", &f.url()),
        // Same version: nothing pending; newer installed: nothing pending.
        comp("qux", "1.0-1", "qux", &f.url()),
        // From another repository family: Debian data never applies.
        comp("vendor", "0.1", "vendor", "http://vendor.example/apt"),
    ];
    let mut families = HashMap::new();
    families.insert(f.url(), "Test".to_string());
    families.insert(
        "http://vendor.example/apt".to_string(),
        "Vendor".to_string(),
    );
    let mut updates = find_pending(&manifest, &index, &families, "2026-11-29T00:00:00.000Z");
    let names: Vec<&str> = updates.iter().map(|u| u.package.as_str()).collect();
    assert_eq!(names, vec!["baz", "foo", "libfoo1"]);
    let store = Store::open_in_memory().unwrap();
    let mut warnings = Vec::new();
    cves::layer(&client, &store, &index, &mut updates, &mut warnings);
    assert!(warnings.is_empty(), "{warnings:?}");
    sort_by_risk(&mut updates);
    let foo = &updates[0];
    assert_eq!(foo.package, "foo");
    assert_eq!(foo.urgency.as_deref(), Some("high"));
    assert_eq!(
        foo.cves,
        vec!["CVE-2026-0001", "CVE-2026-0003", "CVE-2026-10002"]
    );
    assert_eq!(foo.advisories, vec!["DSA-9999-1"]);
    assert_eq!(updates[1].package, "libfoo1");
    assert_eq!(updates[1].cves, foo.cves);
    assert_eq!(updates[2].package, "baz");
    assert_eq!(updates[2].cves, vec!["CVE-2026-5555"]);
    assert_eq!(updates[2].urgency.as_deref(), Some("medium"));
    // Cached per (source, version): the second layering downloads nothing.
    f.server.clear();
    let mut again = find_pending(&manifest, &index, &families, "t");
    cves::layer(&client, &store, &index, &mut again, &mut warnings);
    assert!(f.server.requests().is_empty());
    assert!(store.cached_changelog("foo", "1.0-3").unwrap().is_some());

    // A .deb whose bytes do not match the index is refused.
    std::fs::write(
        f.served.join("debian/pool/main/b/baz/baz_2.0-2_amd64.deb"),
        b"tampered",
    )
    .unwrap();
    let fresh_store = Store::open_in_memory().unwrap();
    let mut w = Vec::new();
    let mut third = find_pending(&manifest, &index, &families, "t");
    cves::layer(&client, &fresh_store, &index, &mut third, &mut w);
    assert!(
        w.iter()
            .any(|m| m.contains("baz") && m.contains("SHA-256") || m.contains("bytes")),
        "{w:?}"
    );
}

#[test]
fn pipelined_parse_equals_whole_file_parse_across_blocks() {
    use drover::debian::packages::{decompress, IndexOrigin, PackageIndex};
    // ~6 MiB of paragraphs, so paragraphs straddle the 1 MiB decompression blocks.
    let mut text = String::new();
    for i in 0..30_000 {
        text += &format!(
            "Package: pkg{i}\nVersion: 1.{i}-1\nArchitecture: {}\nSource: src{} (1.{i}-1)\n\
             Filename: pool/p{i}.deb\nSize: {i}\nSHA256: {}\nDescription: d\n long text {i}\n\n",
            if i % 3 == 0 { "all" } else { "amd64" },
            i / 2,
            "ab".repeat(32)
        );
    }
    let origin = IndexOrigin {
        mirror: "http://m",
        suite: "s",
        family: "F",
    };
    let data = xz(text.as_bytes());
    let mut piped = PackageIndex::new();
    assert_eq!(
        piped.add_compressed("Packages.xz", &data, &origin).unwrap(),
        30_000
    );
    let mut whole = PackageIndex::new();
    let plain = decompress("Packages.xz", &data).unwrap();
    assert_eq!(whole.add_packages(&plain, &origin).unwrap(), 30_000);
    assert_eq!(piped.len(), whole.len());
    for i in [0, 1, 12_345, 29_999] {
        let arch = if i % 3 == 0 { "all" } else { "amd64" };
        let a: Vec<_> = piped.candidates(&format!("pkg{i}"), arch).collect();
        assert_eq!(a.len(), 1, "pkg{i}");
        assert_eq!(a[0].version, format!("1.{i}-1"));
        assert_eq!(a[0].source, format!("src{}", i / 2));
        assert_eq!(a[0].size, i as u64);
    }
    // Corrupt data is an error naming the file.
    let mut bad = data.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let e = format!(
        "{:#}",
        PackageIndex::new()
            .add_compressed("Packages.xz", &bad, &origin)
            .unwrap_err()
    );
    assert!(e.contains("Packages.xz"), "{e}");
}
