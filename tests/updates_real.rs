//! The real thing for issue #4: build the demo stack from the live mirror (its base comes
//! from `bookworm` only, while it tracks `bookworm-security` and `bookworm-updates`), run
//! `drover updates hello --refresh --json`, and compare with `apt list --upgradable` run
//! inside the same rootfs (unpacked with skopeo + umoci, the tracked suites added to its
//! sources, run under bubblewrap): the same (package, candidate) set. Needs root, network to
//! the Debian mirror, and `.ci/setup`'s packages.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "support/drover_env.rs"]
mod drover_env;
use drover_env::{run_ok, Env};

const BIN: &str = env!("CARGO_BIN_EXE_drover");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn setup() -> Env {
    let env = Env::new(BIN);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("config"), &env.root.join("config"));
    copy_dir(
        &repo.join("assets/demo/hello"),
        &env.root.join("assets/demo/hello"),
    );
    env
}

/// Unpack an OCI archive into `dir/rootfs`.
fn unpack(image: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let oci = dir.join("oci");
    let rootfs = dir.join("rootfs");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci-archive:{image}"),
        &format!("oci:{}:img", oci.display()),
    ]));
    run_ok(Command::new("umoci").args([
        "raw",
        "unpack",
        "--image",
        &format!("{}:img", oci.display()),
        rootfs.to_str().unwrap(),
    ]));
    rootfs
}

/// apt's own answer: `apt list --upgradable` inside `rootfs` with the tracked suites added.
fn apt_upgradable(rootfs: &Path) -> BTreeSet<(String, String)> {
    std::fs::write(
        rootfs.join("etc/apt/sources.list.d/drover-tracked.list"),
        "deb http://deb.debian.org/debian-security bookworm-security main\n\
         deb http://deb.debian.org/debian bookworm-updates main\n",
    )
    .unwrap();
    std::fs::copy("/etc/resolv.conf", rootfs.join("etc/resolv.conf")).unwrap();
    let out = run_ok(Command::new("bwrap").arg("--bind").arg(rootfs).args([
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "sh",
        "-c",
        "apt-get -q update >&2 && apt list --upgradable",
    ]));
    out.lines()
        .filter(|l| l.contains("[upgradable from:"))
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().unwrap().split('/').next().unwrap().to_string();
            (name, f.next().unwrap().to_string())
        })
        .collect()
}

fn pairs(updates: &Value) -> BTreeSet<(String, String)> {
    updates
        .as_array()
        .expect("an array")
        .iter()
        .map(|u| {
            (
                u["package"].as_str().unwrap().to_string(),
                u["candidate"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn pending_updates_equal_apts_answer() {
    let env = setup();
    let build = env.json(&["build", "hello", "--json"]);
    assert_eq!(build["status"], "succeeded", "{build}");
    let image = build["image_path"].as_str().unwrap().to_string();

    let updates = env.json(&["updates", "hello", "--refresh", "--json"]);
    let ours = pairs(&updates);
    let rootfs = unpack(&image, &env.root.join("unpacked"));
    let apt = apt_upgradable(&rootfs);
    assert!(
        !apt.is_empty(),
        "the demo tracks bookworm-security, so apt should list upgrades"
    );
    assert_eq!(ours, apt, "drover vs apt list --upgradable");

    // Every entry has the contract's fields; the changelogs were read (urgency set), and
    // at least one live security update names CVEs.
    let keys = [
        "package",
        "arch",
        "installed",
        "candidate",
        "suite",
        "source",
        "source_installed",
        "source_candidate",
        "cves",
        "urgency",
        "checked_at",
        // Added with the feeds (empty here: the shipped drover.toml configures none).
        "feed_cves",
        "open_cves",
        // Added with the lock (issue #11): the build the update was computed for.
        "against",
    ];
    for u in updates.as_array().unwrap() {
        let obj = u.as_object().unwrap();
        let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
        got.sort();
        let mut want = keys.to_vec();
        want.sort();
        assert_eq!(got, want, "{u}");
        assert!(u["urgency"].is_string(), "changelog not read: {u}");
        assert!(
            ["bookworm-security", "bookworm-updates"].contains(&u["suite"].as_str().unwrap()),
            "{u}"
        );
        for c in u["cves"].as_array().unwrap() {
            assert!(c.as_str().unwrap().starts_with("CVE-"), "{u}");
        }
    }
    assert!(
        updates
            .as_array()
            .unwrap()
            .iter()
            .any(|u| !u["cves"].as_array().unwrap().is_empty()),
        "no pending update names a CVE: {updates}"
    );
    // Binaries of one source carry the same source data.
    for a in updates.as_array().unwrap() {
        for b in updates.as_array().unwrap() {
            if a["source"] == b["source"] && a["source_candidate"] == b["source_candidate"] {
                assert_eq!(a["cves"], b["cves"]);
                assert_eq!(a["urgency"], b["urgency"]);
            }
        }
    }

    // From the cache (no --refresh) the answer is the same, and a second refresh is a
    // conditional request that changes nothing.
    let cached = env.json(&["updates", "hello", "--json"]);
    assert_eq!(pairs(&cached), ours);
    let again = env.json(&["updates", "hello", "--refresh", "--json"]);
    assert_eq!(pairs(&again), ours);
    assert!(env
        .root
        .join("state/repos/deb.debian.org_debian-security_dists_bookworm-security/InRelease")
        .is_file());

    // One rebuild applies them: the lock moves to the updates (another base, its key the
    // new lock's), and the new build's pending list no longer holds any of the applied ones.
    let applied = env.json(&["build", "hello", "--apply-updates", "--json"]);
    assert_eq!(applied["status"], "succeeded", "{applied}");
    assert_ne!(applied["base_key"], build["base_key"]);
    assert_eq!(applied["lock_changed"], !ours.is_empty(), "{applied}");
    let applied_manifest = env.json(&["manifest", "hello", "--format", "json"]);
    for (package, candidate) in &ours {
        assert!(
            applied_manifest
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == package.as_str() && c["version"] == candidate.as_str()),
            "{package} {candidate} not installed by --apply-updates"
        );
    }
    let after = env.json(&["updates", "hello", "--json"]);
    let still: BTreeSet<_> = pairs(&after).intersection(&ours).cloned().collect();
    assert!(
        still.is_empty(),
        "still pending after --apply-updates: {still:?}"
    );
    assert_eq!(applied["warnings"], serde_json::json!([]), "{applied}");
    let lock = std::fs::read_to_string(env.root.join("config/stacks/hello.lock")).unwrap();
    for (package, candidate) in &ours {
        assert!(
            lock.contains(&format!("name = \"{package}\", arch = "))
                && lock.contains(candidate.as_str()),
            "{package} {candidate} not in the lock"
        );
    }

    // Issue #11: then an app change and a plain build keep the applied fixes: the same
    // system packages, the base of the moved lock reused, and nothing pending for it.
    let server = env.root.join("assets/demo/hello/server.py");
    let mut text = std::fs::read_to_string(&server).unwrap();
    text.push_str("\n# an app-only change\n");
    std::fs::write(&server, text).unwrap();
    let plain = env.json(&["build", "hello", "--json"]);
    assert_eq!(plain["status"], "succeeded", "{plain}");
    assert_eq!(plain["base_key"], applied["base_key"], "{plain}");
    assert_eq!(plain["base_cached"], true, "{plain}");
    assert_eq!(plain["lock_changed"], false, "{plain}");
    assert_eq!(plain["warnings"], serde_json::json!([]), "{plain}");
    let plain_manifest = env.json(&["manifest", "hello", "--format", "json"]);
    let versions = |m: &Value| -> BTreeSet<(String, String, String)> {
        m.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["arch"].as_str().unwrap().to_string(),
                    c["version"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(versions(&plain_manifest), versions(&applied_manifest));
    let plain_updates = env.json(&["updates", "hello", "--refresh", "--json"]);
    let again: BTreeSet<_> = pairs(&plain_updates).intersection(&ours).cloned().collect();
    assert!(again.is_empty(), "the plain build undid {again:?}");

    // `--reproduce` of the first build after the lock moved on: the same manifest, made
    // without the network (no network namespace at all) from the local .deb cache.
    let out = Command::new("unshare")
        .arg("--net")
        .arg(&env.bin)
        .arg("--config")
        .arg(env.root.join("config"))
        .arg("--state")
        .arg(env.root.join("state"))
        .args(["build", "hello", "--json", "--refresh-base", "--reproduce"])
        .arg(build["build_id"].to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["base_key"], build["base_key"], "{again}");
    assert_eq!(again["base_cached"], false, "{again}");
    let first = env.json(&[
        "manifest",
        "hello",
        "--format",
        "json",
        "--build",
        &build["build_id"].to_string(),
    ]);
    let reproduced = env.json(&["manifest", "hello", "--format", "json"]);
    assert_eq!(versions(&reproduced), versions(&first));
    let lock_after = std::fs::read_to_string(env.root.join("config/stacks/hello.lock")).unwrap();
    assert_eq!(lock_after, lock, "--reproduce must not touch the lock file");
}
