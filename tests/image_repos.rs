//! Repositories a build script adds (issue #4): a fixture root filesystem whose apt sources
//! name a vendor repository (one-line `signed-by` file, and a deb822 paragraph with an
//! inline key) served on 127.0.0.1 by the test, signed with throwaway keys made here. The
//! repositories are found with their keys, recorded with the build, and checked with the
//! image's key; each package's candidate comes only from its own origin.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use drover::build::debian_mirrors;
use drover::debian::sources::read_image_repos;
use drover::debian::{RepoClient, TrackedRepo};
use drover::manifest::rootfs::RootView;
use drover::paths::Paths;
use drover::stack::parse::parse_stack;
use drover::stack::{AptSource, RepoTrust, Stack};
use drover::store::builds::Success;
use drover::store::Store;
use drover::updates::{check_stack, CheckOptions};
use pgp::composed::SignedSecretKey;

#[path = "support/aptrepo.rs"]
mod aptrepo;
use aptrepo::{
    expired_key, fingerprint, future, key, key_with_expired_subkey, public_armored, public_keyring,
    publish_suite, sign_many, sign_with_subkey, Server, Suite,
};

/// One `Packages` paragraph (the .deb itself is not needed to find updates).
fn para(name: &str, version: &str, arch: &str) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n\
         Filename: pool/main/{name}_{version}_{arch}.deb\nSize: 4\n\
         SHA256: {}\nDescription: fixture\n\n",
        "0".repeat(64)
    )
}

fn suite<'a>(origin: &'a str, name: &'a str, valid_until: &'a str) -> Suite<'a> {
    Suite {
        origin,
        label: origin,
        suite: name,
        valid_until,
    }
}

struct World {
    _tmp: tempfile::TempDir,
    www: PathBuf,
    root: PathBuf,
    paths: Paths,
    server: Server,
    vendor_key: SignedSecretKey,
    debian_key: SignedSecretKey,
    stack: Stack,
}

impl World {
    fn vendor(&self) -> String {
        format!("{}/vendor", self.server.base)
    }
    fn debian(&self) -> String {
        format!("{}/debian", self.server.base)
    }

    /// Serve the vendor's `stable` and `extras` suites and Debian's `bookworm-security`.
    /// The vendor's Release claims `Origin: Debian` too: the family must not come from it.
    fn publish(&self, vendor_stable: &str, debian_security: &str) {
        let until = future();
        publish_suite(
            &self.www.join("vendor"),
            &suite("Debian", "stable", &until),
            vendor_stable,
            Some(&self.vendor_key),
        );
        publish_suite(
            &self.www.join("vendor"),
            &suite("Debian", "extras", &until),
            &para("vendor-extra", "3.0", "amd64"),
            Some(&self.vendor_key),
        );
        publish_suite(
            &self.www.join("debian"),
            &suite("Debian", "bookworm-security", &until),
            debian_security,
            Some(&self.debian_key),
        );
    }

    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let www = tmp.path().join("www");
        let server = Server::start(&www);
        let (vendor_key, debian_key) = (key(), key());
        let root = tmp.path().join("rootfs");
        let paths = Paths {
            config: tmp.path().join("config"),
            state: tmp.path().join("state"),
        };
        std::fs::create_dir_all(&paths.config).unwrap();
        std::fs::create_dir_all(&paths.state).unwrap();
        std::fs::write(paths.config.join("debian.gpg"), public_keyring(&debian_key)).unwrap();
        let base = &server.base;
        let toml = format!(
            "name = \"demo\"\npackages = [\"base-tool\"]\n[base]\ndistro = \"debian\"\n\
             suite = \"bookworm\"\nmirror = \"{base}/debian\"\n[track]\napt = [\n  \
             {{ mirror = \"{base}/debian\", suite = \"bookworm-security\", signed_by = \"debian.gpg\" }},\n]\n"
        );
        let stack = parse_stack(&paths.config.join("stacks/demo.toml"), &toml, &paths.config)
            .expect("valid stack");

        // The image as the build script left it.
        let w = |rel: &str, data: &[u8]| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        w(
            "etc/apt/sources.list",
            format!("deb {base}/debian bookworm main\n").as_bytes(),
        );
        w(
            "etc/apt/sources.list.d/vendor.list",
            format!(
                "# added by the build script\n\
                 deb [arch=amd64 signed-by=/usr/share/keyrings/vendor.gpg] {base}/vendor/ stable main\n"
            )
            .as_bytes(),
        );
        let inline: String = public_armored(&vendor_key)
            .lines()
            .map(|l| {
                if l.is_empty() {
                    " .\n".to_string()
                } else {
                    format!(" {l}\n")
                }
            })
            .collect();
        w(
            "etc/apt/sources.list.d/extras.sources",
            format!(
                "Types: deb\nURIs: {base}/vendor\nSuites: extras\nComponents: main\nSigned-By:\n{inline}"
            )
            .as_bytes(),
        );
        w(
            "usr/share/keyrings/vendor.gpg",
            &public_keyring(&vendor_key),
        );
        w(
            "var/lib/dpkg/status",
            b"Package: base-tool\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\
              Description: from Debian\n\n\
              Package: vendor-hello\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\n\
              Description: from the vendor\n\n",
        );
        let host = base.trim_start_matches("http://");
        w(
            &format!("var/lib/apt/lists/{host}_debian_dists_bookworm_main_binary-amd64_Packages"),
            para("base-tool", "1.0", "amd64").as_bytes(),
        );
        w(
            &format!("var/lib/apt/lists/{host}_vendor_dists_stable_main_binary-amd64_Packages"),
            para("vendor-hello", "1.0", "all").as_bytes(),
        );
        World {
            _tmp: tmp,
            www,
            root,
            paths,
            server,
            vendor_key,
            debian_key,
            stack,
        }
    }

    /// Read the image as the build does and record a succeeded build with its repositories.
    fn record_build(&self) -> Vec<drover::manifest::Component> {
        let view = RootView::Dir(self.root.clone());
        let (repos, warnings) = read_image_repos(&view, &debian_mirrors(&self.stack)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut sources = self.stack.base.sources();
        sources.extend(repos.iter().map(|r| r.source()));
        let comps = drover::manifest::capture(&view, &sources).unwrap();
        let mut store = Store::open(&self.paths.database()).unwrap();
        let id = store.create_build("demo", std::process::id()).unwrap();
        store
            .finish_build_success_with_repos(
                id,
                &Success {
                    image_digest: "sha256:00",
                    image_path: "/nonexistent.oci.tar",
                    components: &comps,
                },
                &repos,
            )
            .unwrap();
        comps
    }

    fn check(&self) -> anyhow::Result<drover::updates::CheckReport> {
        let store = Store::open(&self.paths.database()).unwrap();
        check_stack(
            &self.paths,
            &store,
            &self.stack,
            &drover::config::Config::default(),
            CheckOptions {
                refresh: true,
                cves: false,
            },
        )
    }
}

#[test]
fn image_sources_and_keys_are_found_with_their_origin() {
    let w = World::new();
    let view = RootView::Dir(w.root.clone());
    let (repos, _) = read_image_repos(&view, &debian_mirrors(&w.stack)).unwrap();
    // The Debian line of sources.list is the stack's own mirror: not a vendor repository.
    let names: Vec<(String, String)> = repos
        .iter()
        .map(|r| (r.uri.clone(), r.suite.clone()))
        .collect();
    assert_eq!(
        names,
        [(w.vendor(), "extras".into()), (w.vendor(), "stable".into())]
    );
    let fpr = fingerprint(&w.vendor_key);
    let stable = &repos[1];
    assert_eq!(stable.key.fingerprints, std::slice::from_ref(&fpr));
    assert_eq!(stable.key.from, "signed-by /usr/share/keyrings/vendor.gpg");
    assert_eq!(stable.architectures, ["amd64"]);
    assert_eq!(
        (stable.file.as_str(), stable.line),
        ("/etc/apt/sources.list.d/vendor.list", 2)
    );
    let extras = &repos[0];
    assert_eq!(extras.key.fingerprints, [fpr]);
    assert_eq!(
        extras.key.from,
        "inline Signed-By at /etc/apt/sources.list.d/extras.sources:1"
    );
    assert_eq!(extras.key.data, stable.key.data, "same key, binary form");

    // The manifest names each package's real origin, and the store keeps the repositories.
    let comps = w.record_build();
    let origin = |n: &str| {
        let c = comps.iter().find(|c| c.name == n).unwrap();
        (c.origin.clone(), c.suite.clone())
    };
    assert_eq!(origin("vendor-hello"), (w.vendor(), "stable".into()));
    assert_eq!(origin("base-tool"), (w.debian(), "bookworm".into()));
    let store = Store::open(&w.paths.database()).unwrap();
    let build = store.latest_succeeded("demo").unwrap().unwrap();
    assert_eq!(store.image_repos(build.id).unwrap(), repos);
}

#[test]
fn a_missing_signed_by_key_names_the_file_and_line() {
    let w = World::new();
    std::fs::remove_file(w.root.join("usr/share/keyrings/vendor.gpg")).unwrap();
    let e =
        read_image_repos(&RootView::Dir(w.root.clone()), &debian_mirrors(&w.stack)).unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("/etc/apt/sources.list.d/vendor.list:2")
            && e.contains("/usr/share/keyrings/vendor.gpg does not exist"),
        "{e}"
    );
}

#[test]
fn vendor_updates_come_only_from_the_vendor_and_debian_ones_only_from_debian() {
    let w = World::new();
    w.record_build();
    // Each side also offers a newer version of the other side's package: never applied.
    w.publish(
        &(para("vendor-hello", "1.1", "all") + &para("base-tool", "9.0", "amd64")),
        &(para("base-tool", "1.1", "amd64") + &para("vendor-hello", "5.0", "all")),
    );
    let r = w.check().expect("check");
    assert!(r.refresh_errors.is_empty(), "{:?}", r.refresh_errors);
    let got: Vec<(&str, &str, &str, &str)> = r
        .updates
        .iter()
        .map(|u| {
            (
                u.package.as_str(),
                u.installed.as_str(),
                u.candidate.as_str(),
                u.suite.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("base-tool", "1.0", "1.1", "bookworm-security"),
            ("vendor-hello", "1.0", "1.1", "stable"),
        ]
    );
    let reqs = w.server.requests();
    assert!(
        reqs.iter()
            .any(|(p, c)| p == "vendor/dists/extras/InRelease" && *c == 200),
        "the deb822 repository was not checked: {reqs:?}"
    );

    // A one-byte change to the served vendor InRelease: an error naming the repository,
    // and the previous good index stays in use.
    let file = w.www.join("vendor/dists/stable/InRelease");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("Suite: stable", "Suite: stablf", 1)).unwrap();
    let r = w.check().expect("previous index used");
    let name = format!("{} stable", w.vendor());
    assert_eq!(r.refresh_errors.len(), 1, "{:?}", r.refresh_errors);
    assert!(
        r.refresh_errors[0].contains(&name) && r.refresh_errors[0].contains("no signature"),
        "{}",
        r.refresh_errors[0]
    );
    assert!(r.updates.iter().any(|u| u.package == "vendor-hello"));

    // Without a cached copy it is an error naming the repository.
    std::fs::remove_dir_all(w.paths.state.join("repos")).unwrap();
    let e = format!("{:#}", w.check().unwrap_err());
    assert!(e.contains(&name) && e.contains("refusing"), "{e}");
}

#[test]
fn an_expired_signing_key_is_named_with_its_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    let (k, expires) = expired_key();
    publish_suite(
        &www.join("vendor"),
        &suite("Vendor", "stable", &future()),
        &para("vendor-hello", "1.1", "all"),
        Some(&k),
    );
    let server = Server::start(&www);
    let keyring = tmp.path().join("vendor.gpg");
    std::fs::write(&keyring, public_keyring(&k)).unwrap();
    let repo = TrackedRepo {
        source: AptSource {
            mirror: format!("{}/vendor", server.base),
            suite: "stable".into(),
            components: vec!["main".into()],
        },
        trust: RepoTrust {
            trusted: false,
            signed_by: Some(keyring),
        },
        architectures: Vec::new(),
        family: None,
    };
    let client = RepoClient::new(&tmp.path().join("cache")).unwrap();
    let e = format!(
        "{:#}",
        client
            .sync(&repo, &["amd64".to_string()], true)
            .unwrap_err()
    );
    let date = chrono::DateTime::from_timestamp(i64::from(expires), 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    assert!(e.contains(&repo.name()), "{e}");
    assert!(e.contains(&fingerprint(&k)), "{e}");
    assert!(e.contains(&format!("expired on {date}")), "{e}");
}

#[test]
fn one_valid_signature_among_several_is_enough_but_not_an_expired_one_alone() {
    use drover::debian::signature::{verify_inrelease_at, Keyring, Verified};
    let (old, _) = expired_key();
    let fresh = key();
    let mut both = public_keyring(&old);
    both.extend(public_keyring(&fresh));
    let keyring = Keyring::from_bytes(&both).unwrap();
    let text = "Origin: Vendor\nSuite: stable\n";
    let now = chrono::Utc::now();
    let signed = sign_many(&[&old, &fresh], text);
    let v = verify_inrelease_at(signed.as_bytes(), &keyring, false, "R s", now).unwrap();
    assert_eq!(v, Verified::Signed(text.to_string()));
    let only_old = sign_many(&[&old], text);
    let e = verify_inrelease_at(only_old.as_bytes(), &keyring, false, "R s", now).unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains(&fingerprint(&old)) && e.contains("expired on"),
        "{e}"
    );
    // `trusted = true` waives it, with the reason.
    match verify_inrelease_at(only_old.as_bytes(), &keyring, true, "R s", now).unwrap() {
        Verified::Waived(_, why) => assert!(why.contains("expired on"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_signing_subkey_is_named() {
    use drover::debian::signature::{verify_inrelease_at, Keyring};
    let (k, fpr, expires) = key_with_expired_subkey();
    let keyring = Keyring::from_bytes(&public_keyring(&k)).unwrap();
    let signed = sign_with_subkey(&k, "Origin: Vendor\nSuite: stable\n");
    let e = verify_inrelease_at(
        signed.as_bytes(),
        &keyring,
        false,
        "http://v.example/apt stable",
        chrono::Utc::now(),
    )
    .unwrap_err();
    let e = format!("{e:#}");
    let date = chrono::DateTime::from_timestamp(i64::from(expires), 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        e.contains("http://v.example/apt stable")
            && e.contains(&fpr)
            && e.contains(&format!("expired on {date}")),
        "{e}"
    );
    // Before the expiry the same signature verifies.
    let before = chrono::DateTime::from_timestamp(i64::from(expires) - 3600, 0).unwrap();
    let e = verify_inrelease_at(signed.as_bytes(), &keyring, false, "r", before)
        .expect_err("signed after the expiry, so still refused");
    assert!(format!("{e:#}").contains("was signed on"), "{e:#}");
}

#[test]
fn entries_drover_cannot_track_are_warnings_naming_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("etc/apt/sources.list.d/misc.list");
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    std::fs::write(
        &list,
        "deb [trusted=yes] file:/opt/repo ./\n\
         deb [signed-by=0123456789ABCDEF0123456789ABCDEF01234567] http://x.example/apt stable main\n\
         deb http://y.example/apt ./\n\
         deb [trusted=yes] http://z.example/apt stable main\n",
    )
    .unwrap();
    let (repos, warnings) = read_image_repos(&RootView::Dir(tmp.path().into()), &[]).unwrap();
    assert_eq!(repos.len(), 1, "{repos:?}");
    assert_eq!(repos[0].uri, "http://z.example/apt");
    assert!(repos[0].trusted && repos[0].key.data.is_empty());
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    let f = "/etc/apt/sources.list.d/misc.list";
    assert!(warnings[0].starts_with(&format!("{f}:1:")) && warnings[0].contains("http(s)"));
    assert!(warnings[1].starts_with(&format!("{f}:2:")) && warnings[1].contains("fingerprint"));
    assert!(warnings[2].starts_with(&format!("{f}:3:")) && warnings[2].contains("flat"));

    // Without trusted=yes and without any key, it is an error naming the line.
    std::fs::write(&list, "deb http://z.example/apt stable main\n").unwrap();
    let e = read_image_repos(&RootView::Dir(tmp.path().into()), &[]).unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains(&format!("{f}:1")) && e.contains("signed-by"),
        "{e}"
    );
}

#[test]
fn a_trusted_yes_repository_is_checked_with_a_loud_waiver() {
    let w = World::new();
    std::fs::write(
        w.root.join("etc/apt/sources.list.d/vendor.list"),
        format!("deb [trusted=yes] {} stable main\n", w.vendor()),
    )
    .unwrap();
    w.record_build();
    w.publish(
        &para("vendor-hello", "1.1", "all"),
        &para("base-tool", "1.0", "amd64"),
    );
    let r = w.check().expect("check");
    let name = format!("{} stable", w.vendor());
    assert!(
        r.warnings
            .iter()
            .any(|x| x.contains("SIGNATURE CHECK WAIVED") && x.contains(&name)),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.updates.len(), 1, "{:?}", r.updates);
    assert_eq!(r.updates[0].candidate, "1.1");
}
