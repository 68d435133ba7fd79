use super::*;

fn sample() -> Lock {
    let pkg = |name: &str, version: &str, suite: &str| LockedPackage {
        name: name.into(),
        arch: "amd64".into(),
        version: version.into(),
        source: name.into(),
        source_version: version.into(),
        mirror: "http://deb.debian.org/debian".into(),
        suite: suite.into(),
        sha256: format!("{:064x}", name.len()),
        size: 1000,
    };
    Lock {
        version: LOCK_VERSION,
        stack: "hello".into(),
        arch: "amd64".into(),
        variant: "apt".into(),
        inputs: "ab".repeat(32),
        include: vec!["python3-minimal".into()],
        repositories: vec![
            LockedRepo {
                mirror: "http://deb.debian.org/debian".into(),
                suite: "bookworm".into(),
                components: vec!["main".into()],
                date: "Sat, 08 Nov 2025 09:43:56 UTC".into(),
            },
            LockedRepo {
                mirror: "http://deb.debian.org/debian".into(),
                suite: "bookworm-updates".into(),
                components: vec!["main".into()],
                date: String::new(),
            },
        ],
        packages: vec![
            pkg("libc6", "2.36-9+deb12u10", "bookworm"),
            pkg("tzdata", "2025b-0+deb12u1", "bookworm-updates"),
            pkg("adduser", "3.134", "bookworm"),
        ],
    }
}

#[test]
fn the_text_parses_back_to_the_same_lock_sorted_one_line_per_package() {
    let l = sample();
    let text = l.to_toml();
    let back = Lock::parse(&text, Path::new("hello.lock")).unwrap();
    let mut sorted = l.clone();
    sorted.packages.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(back, sorted);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("name = ")).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].contains("\"adduser\""), "{text}");
    // Stable: writing again gives the same bytes.
    assert_eq!(back.to_toml(), text);
}

#[test]
fn a_hand_edited_hash_is_reported_at_its_line_and_column() {
    let text = sample()
        .to_toml()
        .replace(&format!("{:064x}", 5), "not-a-hash");
    let err = Lock::parse(&text, Path::new("/c/hello.lock")).unwrap_err();
    let line = text.lines().position(|l| l.contains("not-a-hash")).unwrap() + 1;
    let d = &err[0];
    assert_eq!(d.line, line, "{err}");
    assert_eq!(d.col, 3, "{err}");
    assert!(
        d.message.contains("libc6") && d.message.contains("64 hex"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("/c/hello.lock:{line}:3:")),
        "{err}"
    );
}

#[test]
fn syntax_errors_unknown_keys_and_foreign_repositories_are_located() {
    let p = Path::new("x.lock");
    let e = Lock::parse("version = 1\nstack = \n", p).unwrap_err();
    assert_eq!(e[0].line, 2, "{e}");
    let text = sample()
        .to_toml()
        .replace("size = 1000 }", "size = 1000, extra = 1 }");
    let e = Lock::parse(&text, p).unwrap_err();
    assert!(e[0].message.contains("extra"), "{e}");
    let text = sample().to_toml().replace(
        "suite = \"bookworm-updates\", sha256",
        "suite = \"sid\", sha256",
    );
    let e = Lock::parse(&text, p).unwrap_err();
    assert!(
        e[0].message.contains("tzdata") && e[0].message.contains("sid"),
        "{e}"
    );
    let text = sample().to_toml().replace("version = 1\n", "version = 7\n");
    let e = Lock::parse(&text, p).unwrap_err();
    assert!(e[0].message.contains("version 7"), "{e}");
}

#[test]
fn the_base_key_follows_the_locked_set_only() {
    let a = sample();
    let mut b = a.clone();
    b.inputs = "cd".repeat(32);
    b.repositories[0].date = "later".into();
    assert_eq!(
        a.base_key(),
        b.base_key(),
        "dates and inputs do not change the tree"
    );
    b.packages[0].version = "2.36-9+deb12u11".into();
    assert_ne!(a.base_key(), b.base_key());
}

#[test]
fn diff_names_upgrades_downgrades_additions_and_removals() {
    let old = sample();
    let mut new = old.clone();
    new.packages[0].version = "2.36-9+deb12u11".into();
    new.packages[1].version = "2024a-0+deb12u1".into();
    new.packages.retain(|p| p.name != "adduser");
    new.packages.push(LockedPackage {
        name: "curl".into(),
        ..old.packages[0].clone()
    });
    let d = diff(&old, &new);
    let kinds: Vec<(&str, &str)> = d
        .iter()
        .map(|c| (c.name.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("adduser", "removed"),
            ("curl", "added"),
            ("libc6", "upgraded"),
            ("tzdata", "downgraded")
        ]
    );
    assert_eq!(d[2].line(), "libc6 2.36-9+deb12u10 -> 2.36-9+deb12u11");
    assert!(diff(&old, &old).is_empty());
    let m = diff::mismatches(&old, &new);
    assert_eq!(m.len(), 4, "{m:?}");
}

#[test]
fn pins_hold_every_locked_version_above_all_sources() {
    let l = sample();
    let t = resolve::pins_text(l.packages.iter());
    assert!(t.contains("Package: libc6\nPin: version 2.36-9+deb12u10\nPin-Priority: 1001\n"));
    assert_eq!(t.matches("Pin-Priority: 1001").count(), 3);
}

/// Issue #13 polish: which builds applied updates comes from the locks the store keeps.
#[test]
fn moved_counts_version_changes_and_the_store_marks_the_builds_that_applied_updates() {
    let a = sample();
    let mut b = a.clone();
    b.packages[0].version = format!("{}+deb12u9", b.packages[0].version);
    let mut added = a.clone();
    let mut extra = added.packages[0].clone();
    extra.name = "zzz-added".into();
    added.packages.push(extra);
    assert_eq!(moved(&a, &b), 1);
    assert_eq!(moved(&a, &a), 0);
    assert_eq!(moved(&a, &added), 0, "an added package is no update");

    let store = crate::store::Store::open_in_memory().unwrap();
    let ids: Vec<i64> = (0..4)
        .map(|_| store.create_build("hello", 1).unwrap())
        .collect();
    store.set_build_lock(ids[0], &a.to_toml()).unwrap();
    store.set_build_lock(ids[1], &a.to_toml()).unwrap(); // a plain build: nothing moved
                                                         // ids[2] failed before its lock step: no lock, skipped.
    store.set_build_lock(ids[3], &b.to_toml()).unwrap(); // --apply-updates
    let applied = store.applied_updates("hello").unwrap();
    assert_eq!(applied.into_iter().collect::<Vec<_>>(), [(ids[3], 1)]);
    assert!(store.applied_updates("other").unwrap().is_empty());
}

#[test]
fn a_keyring_of_one_of_the_locked_repositories_is_part_of_the_cache_key() {
    use crate::build::keyrings::{cache_key, Keyring};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vendor.gpg");
    std::fs::write(&file, b"key one").unwrap();
    let lock = sample();
    let keyring = |mirror: &str| Keyring {
        mirror: mirror.into(),
        suite: "bookworm".into(),
        file: file.clone(),
    };
    // No keyring, or one of a repository the lock does not use: the lock's own key.
    assert_eq!(cache_key(&lock, &[]).unwrap(), lock.base_key());
    let other = [keyring("http://vendor.example/debian")];
    assert_eq!(cache_key(&lock, &other).unwrap(), lock.base_key());
    // A keyring of a locked repository: another key, which follows the file's content.
    let used = [keyring("http://deb.debian.org/debian")];
    let one = cache_key(&lock, &used).unwrap();
    assert_ne!(one, lock.base_key());
    std::fs::write(&file, b"key two").unwrap();
    assert_ne!(cache_key(&lock, &used).unwrap(), one);
    std::fs::remove_file(&file).unwrap();
    assert!(cache_key(&lock, &used).is_err());
}
