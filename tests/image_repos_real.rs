//! The real thing for "repositories the scripts add" (issue #4): a stack whose build script
//! adds a vendor repository (served on 127.0.0.1 by this test, signed with a throwaway key
//! made here, its .debs built with `dpkg-deb`) with `signed-by`, and installs
//! `vendor-hello` 1.0 from it with apt. The build sandbox shares the host's network
//! namespace (bubblewrap without `--unshare-net`), so apt in the script reaches the
//! test's server on 127.0.0.1. Then the repository serves 1.1: `drover updates --refresh
//! --json` lists vendor-hello 1.0 -> 1.1 from the vendor suite, and `drover manifest
//! --json` names the vendor origin. Needs root, network to the Debian mirror, and
//! `.ci/setup`'s packages.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use pgp::composed::SignedSecretKey;

#[path = "support/drover_env.rs"]
mod drover_env;
use drover_env::{run_ok, Env};

#[path = "support/aptrepo.rs"]
mod aptrepo;
use aptrepo::{future, key, public_keyring, publish_suite, sha, Server, Suite};

const BIN: &str = env!("CARGO_BIN_EXE_drover");

/// Build `vendor-hello_VERSION_all.deb` into `pool` with dpkg-deb; returns its Packages
/// paragraph.
fn vendor_deb(pool: &Path, version: &str) -> String {
    let tree = pool.join(format!("tree-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/vendor-hello")).unwrap();
    let control = format!(
        "Package: vendor-hello\nVersion: {version}\nArchitecture: all\n\
         Maintainer: Vendor <vendor@example.invalid>\nDescription: drover test package\n"
    );
    std::fs::write(tree.join("DEBIAN/control"), &control).unwrap();
    std::fs::write(tree.join("usr/share/vendor-hello/VERSION"), version).unwrap();
    let name = format!("vendor-hello_{version}_all.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(pool.join(&name)),
    );
    std::fs::remove_dir_all(&tree).unwrap();
    let data = std::fs::read(pool.join(&name)).unwrap();
    format!(
        "{control}Filename: pool/main/{name}\nSize: {}\nSHA256: {}\n\n",
        data.len(),
        sha(&data)
    )
}

fn publish(www: &Path, key: &SignedSecretKey, version: &str) {
    let repo = www.join("vendor");
    let pool = repo.join("pool/main");
    std::fs::create_dir_all(&pool).unwrap();
    let packages = vendor_deb(&pool, version);
    let until = future();
    let s = Suite {
        origin: "Vendor",
        label: "Vendor",
        suite: "stable",
        valid_until: &until,
    };
    publish_suite(&repo, &s, &packages, Some(key));
}

#[test]
fn a_vendor_repository_added_by_the_build_script_is_tracked() {
    let env = Env::new(BIN);
    let root = env.root.clone();
    let www = root.join("www");
    let key = key();
    publish(&www, &key, "1.0");
    let server = Server::start(&www);
    let vendor = format!("{}/vendor", server.base);

    // The stack: a small base; the app directory carries the vendor's key, and the build
    // script adds the repository with signed-by and installs vendor-hello from it.
    let config = root.join("config");
    std::fs::create_dir_all(config.join("stacks")).unwrap();
    std::fs::create_dir_all(config.join("vendor-app")).unwrap();
    std::fs::write(config.join("vendor-app/vendor.gpg"), public_keyring(&key)).unwrap();
    std::fs::write(
        config.join("stacks/vendor.toml"),
        format!(
            r#"name = "vendor"
packages = []
[base]
distro = "debian"
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
[app]
path = "vendor-app"
dest = "/opt/vendor"
[scripts]
build = """
set -eu
install -m 0644 /opt/vendor/vendor.gpg /usr/share/keyrings/vendor.gpg
echo 'deb [signed-by=/usr/share/keyrings/vendor.gpg] {vendor} stable main' > /etc/apt/sources.list.d/vendor.list
apt-get -q update
apt-get -q install -y vendor-hello
"""
run = "exec sleep infinity"
[track]
apt = []
"#
        ),
    )
    .unwrap();
    let build = env.json(&["build", "vendor", "--json"]);
    assert_eq!(build["status"], "succeeded", "{build}");
    let reqs = server.requests();
    assert!(
        reqs.iter()
            .any(|(p, c)| p == "vendor/pool/main/vendor-hello_1.0_all.deb" && *c == 200),
        "apt in the build sandbox did not download from 127.0.0.1: {reqs:?}"
    );

    // The manifest names the vendor origin.
    let manifest = env.json(&["manifest", "vendor", "--format", "json"]);
    let hello = manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vendor-hello")
        .unwrap_or_else(|| panic!("vendor-hello not in the manifest: {manifest}"));
    assert_eq!(hello["version"], "1.0");
    assert_eq!(hello["origin"], vendor.as_str(), "{hello}");
    assert_eq!(hello["suite"], "stable", "{hello}");
    let debian = manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "apt")
        .unwrap();
    assert_eq!(debian["origin"], "http://deb.debian.org/debian", "{debian}");

    // Nothing newer yet; then the vendor publishes 1.1.
    let before = env.json(&["updates", "vendor", "--refresh", "--json"]);
    assert_eq!(before, serde_json::json!([]), "{before}");
    publish(&www, &key, "1.1");
    let updates = env.json(&["updates", "vendor", "--refresh", "--json"]);
    let list = updates.as_array().unwrap();
    assert_eq!(list.len(), 1, "{updates}");
    let u = &list[0];
    assert_eq!(
        (
            u["package"].as_str(),
            u["installed"].as_str(),
            u["candidate"].as_str(),
            u["suite"].as_str()
        ),
        (
            Some("vendor-hello"),
            Some("1.0"),
            Some("1.1"),
            Some("stable")
        ),
        "{u}"
    );

    // A rebuild (the base reused from this test's state) runs the script again, which
    // installs 1.1; the new build has nothing pending from the vendor.
    let again = env.json(&["build", "vendor", "--json"]);
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["base_cached"], true, "{again}");
    let manifest = env.json(&["manifest", "vendor", "--format", "json"]);
    assert!(
        manifest
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "vendor-hello" && c["version"] == "1.1"),
        "{manifest}"
    );
    let after = env.json(&["updates", "vendor", "--refresh", "--json"]);
    assert_eq!(after, serde_json::json!([]), "{after}");
}
