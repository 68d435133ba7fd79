//! The lock against a repository of our own (issue #11), on the live Debian mirror plus a
//! signed fixture repository (`tests/support/aptrepo.rs`) with a real .deb: build (the base
//! is cached with `drover-probe 1.0`), publish 1.1 in the repository, `lock --update`
//! moves the lock to it, and the next build installs it; a plain build after that keeps it.
//! Needs mmdebstrap, dpkg-deb and the network to deb.debian.org (`.ci/setup`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "support/aptrepo.rs"]
mod aptrepo;
#[path = "support/drover_env.rs"]
mod drover_env;

use aptrepo::{future, public_keyring, publish_suite_as, sha, Server, Suite};
use drover_env::{run_ok, Env};

/// Build `drover-probe VERSION` (Architecture: all, one file) into `repo/pool/` with
/// dpkg-deb and return its Packages stanza.
fn probe_deb(repo: &Path, version: &str) -> String {
    let tree = repo.join(format!("../tree-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/drover-probe")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: drover-probe\nVersion: {version}\nArchitecture: all\n\
             Maintainer: drover tests <tests@example.invalid>\n\
             Description: fixture package of the drover tests\n"
        ),
    )
    .unwrap();
    std::fs::write(tree.join("usr/share/drover-probe/VERSION"), version).unwrap();
    let pool = repo.join("pool");
    std::fs::create_dir_all(&pool).unwrap();
    let file = format!("drover-probe_{version}_all.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zxz"])
            .arg(&tree)
            .arg(pool.join(&file)),
    );
    let data = std::fs::read(pool.join(&file)).unwrap();
    format!(
        "Package: drover-probe\nVersion: {version}\nArchitecture: all\n\
         Maintainer: drover tests <tests@example.invalid>\nFilename: pool/{file}\n\
         Size: {}\nSHA256: {}\nDescription: fixture package of the drover tests\n",
        data.len(),
        sha(&data)
    )
}

fn probe_version(env: &Env, build: &Value) -> String {
    let id = build["build_id"].to_string();
    let m = env.json(&["manifest", "probe", "--build", &id, "--format", "json"]);
    let p = m
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "drover-probe")
        .unwrap_or_else(|| panic!("drover-probe not in build {id}: {m}"));
    p["version"].as_str().unwrap().to_string()
}

#[test]
fn lock_update_takes_a_version_published_after_the_base_was_cached() {
    let env = Env::new(env!("CARGO_BIN_EXE_drover"));
    let repo = env.root.join("www/repo");
    let key = aptrepo::key();
    let suite = Suite {
        origin: "drover-test",
        label: "drover-test",
        suite: "probe",
        valid_until: &future(),
    };
    // One version of drover-probe in the signed suite `probe`, dated `date`.
    let publish = |version: &str, date: &str| {
        let stanza = probe_deb(&repo, version);
        publish_suite_as(&repo, "probe", &suite, &stanza, Some(&key), date);
    };
    publish("1.0", "Sat, 09 Nov 2024 10:12:34 UTC");
    let server = Server::start(&env.root.join("www"));
    let mirror = format!("{}/repo", server.base);
    let config = env.root.join("config");
    std::fs::create_dir_all(config.join("stacks")).unwrap();
    std::fs::create_dir_all(config.join("keys")).unwrap();
    std::fs::create_dir_all(config.join("app")).unwrap();
    std::fs::write(config.join("app/hello.txt"), "v1\n").unwrap();
    std::fs::write(config.join("keys/probe.gpg"), public_keyring(&key)).unwrap();
    std::fs::write(
        config.join("stacks/probe.toml"),
        format!(
            r#"name = "probe"
packages = ["python3-minimal", "drover-probe"]

[base]
distro = "debian"
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
components = ["main"]
variant = "apt"
extra_suites = [{{ mirror = "{mirror}", suite = "probe", components = ["main"] }}]

[track]
apt = [{{ mirror = "{mirror}", suite = "probe", components = ["main"], signed_by = "keys/probe.gpg" }}]

[app]
path = "app"

[scripts]
run = "sleep infinity"
"#
        ),
    )
    .unwrap();

    let first = env.json(&["--json", "build", "probe"]);
    assert_eq!(first["status"], "succeeded", "{first:#}");
    assert_eq!(probe_version(&env, &first), "1.0");
    let lock_file = config.join("stacks/probe.lock");
    let lock = std::fs::read_to_string(&lock_file).unwrap();
    assert!(
        lock.contains("drover-probe") && lock.contains(&mirror),
        "{lock}"
    );
    // The image's apt knows the repository by its keyring, copied into the image (not
    // the host's path).
    let bases = env.root.join("state/bases");
    let base_dir = std::fs::read_dir(&bases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("rootfs/etc/apt/sources.list").is_file())
        .expect("a cached base with a rootfs");
    let list = std::fs::read_to_string(base_dir.join("rootfs/etc/apt/sources.list")).unwrap();
    assert!(
        list.contains(&format!(
            "deb [signed-by=/etc/apt/keyrings/drover-source-0.gpg] {mirror} probe main"
        )),
        "{list}"
    );
    assert_eq!(
        std::fs::read(base_dir.join("rootfs/etc/apt/keyrings/drover-source-0.gpg")).unwrap(),
        public_keyring(&key)
    );
    // The manifest names the fixture repository as the origin of its package.
    let image_lists = env.json(&["--json", "manifest", "probe", "--summary"]);
    assert!(image_lists.to_string().contains(&mirror), "{image_lists}");

    // 1.1 published after the base was cached: a plain build keeps 1.0 (the lock), and
    // `lock --update` moves to 1.1.
    publish("1.1", "Sun, 10 Nov 2024 10:12:34 UTC");
    std::fs::write(config.join("app/hello.txt"), "v2\n").unwrap();
    let plain = env.json(&["--json", "build", "probe"]);
    assert_eq!(
        probe_version(&env, &plain),
        "1.0",
        "a plain build follows the lock"
    );
    assert_eq!(plain["base_cached"], true, "{plain:#}");
    let moved = env.drover(&["lock", "probe", "--update"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&moved.stdout),
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(moved.status.success(), "{said}");
    assert!(
        said.contains("drover-probe") && said.contains("1.1"),
        "{said}"
    );
    let lock = std::fs::read_to_string(&lock_file).unwrap();
    assert!(
        lock.contains("name = \"drover-probe\", arch = \"all\", version = \"1.1\""),
        "{lock}"
    );
    let updated = env.json(&["--json", "build", "probe"]);
    assert_eq!(updated["status"], "succeeded", "{updated:#}");
    assert_eq!(probe_version(&env, &updated), "1.1");
    assert_ne!(
        updated["base_key"], plain["base_key"],
        "a new lock, a new base"
    );
    // And nothing goes back afterwards.
    let again = env.json(&["--json", "build", "probe"]);
    assert_eq!(probe_version(&env, &again), "1.1");
    assert_eq!(again["base_cached"], true);
    // 1.2 signed by another key: `lock --update` is refused by apt's signature check, and
    // the lock stays at 1.1.
    let intruder = aptrepo::key();
    let stanza = probe_deb(&repo, "1.2");
    publish_suite_as(
        &repo,
        "probe",
        &suite,
        &stanza,
        Some(&intruder),
        "Mon, 11 Nov 2024 10:12:34 UTC",
    );
    let refused = env.drover(&["lock", "probe", "--update"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("NO_PUBKEY") || said.contains("signature"),
        "{said}"
    );
    let lock = std::fs::read_to_string(&lock_file).unwrap();
    assert!(
        lock.contains("name = \"drover-probe\", arch = \"all\", version = \"1.1\""),
        "{lock}"
    );
    // The fixture's .debs were fetched from the fixture server.
    assert!(server
        .requests()
        .iter()
        .any(|(p, code)| p.ends_with("drover-probe_1.1_all.deb") && *code == 200));
}
