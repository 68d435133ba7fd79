use super::*;
use crate::debian::changelog::Entry;
use crate::store::builds::Success;

fn comp(name: &str, version: &str, source: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        suite: "bookworm-security".into(),
        origin: "http://deb.debian.org/debian-security".into(),
        installed_size_kib: None,
    }
}

fn build(s: &mut Store, comps: &[Component]) -> i64 {
    let id = s.create_build("hello", 1).unwrap();
    s.finish_build_success(
        id,
        &Success {
            image_digest: &format!("sha256:{id:064}"),
            image_path: "/nonexistent",
            components: comps,
        },
    )
    .unwrap();
    id
}

fn entry(v: &str, cves: &[&str]) -> Entry {
    Entry {
        version: v.into(),
        distributions: "bookworm-security".into(),
        urgency: "high".into(),
        date: String::new(),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        advisories: Vec::new(),
        text: String::new(),
    }
}

#[test]
fn refs_parse_as_the_operator_types_them() {
    assert_eq!("12".parse(), Ok(Ref::Build(12)));
    assert_eq!("#12".parse(), Ok(Ref::Build(12)));
    assert_eq!("r3".parse(), Ok(Ref::Release(3)));
    assert_eq!("live".parse(), Ok(Ref::Live));
    assert_eq!("newest".parse(), Ok(Ref::Newest));
    for bad in ["", "r", "r0", "-1", "x7", "1.5"] {
        let e = bad.parse::<Ref>().unwrap_err();
        assert!(e.contains("`r3`"), "{bad}: {e}");
    }
}

#[test]
fn packages_compare_by_source_in_debian_version_order() {
    let old = [
        comp("libexpat1", "2.5.0-1+deb12u1", "expat"),
        comp("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
        comp("gone", "1.0", "gone"),
        // String order would call 1.10 older than 1.9.
        comp("tool", "1.9-1", "tool"),
        comp("libfoo1", "2.0", "foo"),
    ];
    let new = [
        comp("libexpat1", "2.5.0-1+deb12u5", "expat"),
        comp("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
        comp("tool", "1.10-1", "tool"),
        comp("libfoo1", "2.0", "foo"),
        comp("foo-utils", "2.0", "foo"),
        comp("fresh", "0.1", "fresh"),
    ];
    let got: Vec<(String, Change, usize)> = compare(&old, &new)
        .into_iter()
        .map(|s| (s.source, s.change, s.packages.len()))
        .collect();
    let want = [
        ("expat", Change::Upgraded, 1),
        ("foo", Change::Changed, 1),
        ("fresh", Change::Added, 1),
        ("gone", Change::Removed, 1),
        ("tool", Change::Upgraded, 1),
    ];
    let want: Vec<(String, Change, usize)> = want
        .iter()
        .map(|(s, c, n)| (s.to_string(), *c, *n))
        .collect();
    assert_eq!(got, want);
    // And the other way round the upgrade is a downgrade.
    let back = compare(&new, &old);
    assert_eq!(back[0].change, Change::Downgraded);
    assert_eq!(back[0].old.as_deref(), Some("2.5.0-1+deb12u5"));
}

#[test]
fn a_diff_names_the_fixes_from_changelogs_and_feeds_and_what_going_back_undoes() {
    let mut s = Store::open_in_memory().unwrap();
    let a = build(&mut s, &[comp("libexpat1", "2.5.0-1+deb12u1", "expat")]);
    let b = build(&mut s, &[comp("libexpat1", "2.5.0-1+deb12u5", "expat")]);
    s.put_changelog(
        "expat",
        "2.5.0-1+deb12u5",
        &[
            entry("2.5.0-1+deb12u5", &["CVE-2025-3"]),
            entry("2.5.0-1+deb12u2", &["CVE-2025-1", "CVE-2025-2"]),
            entry("2.5.0-1+deb12u1", &["CVE-2024-9"]),
        ],
    )
    .unwrap();
    // A's update check knew a feed CVE fixed in between, and one fixed only later.
    let feed = |id: &str, v: &str| crate::manifest::pending::FeedCve {
        id: id.into(),
        source: "expat".into(),
        urgency: None,
        fixed_version: Some(v.into()),
        status: "resolved".into(),
        note: None,
        feed: "security-tracker".into(),
    };
    let pending = crate::manifest::pending::PendingUpdate {
        package: "libexpat1".into(),
        arch: "amd64".into(),
        installed: "2.5.0-1+deb12u1".into(),
        candidate: "2.5.0-1+deb12u5".into(),
        suite: "bookworm-security".into(),
        source: "expat".into(),
        source_installed: "2.5.0-1+deb12u1".into(),
        source_candidate: "2.5.0-1+deb12u5".into(),
        cves: vec![],
        urgency: None,
        checked_at: "2026-12-01T00:00:00Z".into(),
        advisories: vec![],
        dates: vec![],
        deb: None,
        feed_cves: vec![
            feed("CVE-2025-7", "2.5.0-1+deb12u4"),
            feed("CVE-2026-1", "2.6"),
        ],
        open_cves: vec![],
    };
    s.record_update_check("hello", a, "2026-12-01T00:00:00Z", &[pending], &[], &[])
        .unwrap();
    let side = |id| resolve(&s, "hello", Ref::Build(id)).unwrap();
    let d = diff(&s, "hello", side(a), side(b), false).unwrap();
    assert_eq!(
        d.cves_fixed,
        ["CVE-2025-1", "CVE-2025-2", "CVE-2025-3", "CVE-2025-7"]
    );
    assert!(d.cves_undone.is_empty());
    assert!(d.packages[0].changelog_known);
    assert_eq!(d.summary(), "1 package changes, fixes 4 CVEs, undoes 0");
    let back = diff(&s, "hello", side(b), side(a), false).unwrap();
    assert_eq!(back.packages[0].change, Change::Downgraded);
    // Going back undoes the same fixes (the feed's too: the older build's check has it).
    assert_eq!(back.cves_undone, d.cves_fixed);
    assert_eq!(back.summary(), "1 package changes, fixes 0 CVEs, undoes 4");

    // OpenVEX: one fixed statement per CVE, the product is B's image by digest.
    let new = s.manifest(b).unwrap();
    let doc = vex::openvex(&d, &new, "op", "2026-12-02T00:00:00Z").unwrap();
    let st = doc["statements"].as_array().unwrap();
    assert_eq!(st.len(), 4);
    assert_eq!(st[0]["status"], "fixed");
    let product = st[0]["products"][0]["@id"].as_str().unwrap();
    assert!(product.starts_with("pkg:oci/hello@sha256%3A"), "{product}");
    let sub = st[0]["products"][0]["subcomponents"][0]["@id"]
        .as_str()
        .unwrap();
    assert!(
        sub.starts_with("pkg:deb/debian/libexpat1@2.5.0-1%2Bdeb12u5"),
        "{sub}"
    );
    assert!(matches!(
        vex::openvex(&back, &new, "op", "t"),
        Err(vex::VexError::NothingFixed { .. })
    ));
}

#[test]
fn sides_that_are_not_there_are_bad_input() {
    let mut s = Store::open_in_memory().unwrap();
    let e = resolve(&s, "hello", Ref::Live).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("nothing of hello is live"),
        "{e}"
    );
    let e = resolve(&s, "hello", Ref::Release(4)).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("no release 4"),
        "{e}"
    );
    let e = resolve(&s, "hello", Ref::Build(99)).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let id = build(&mut s, &[]);
    let r = s
        .create_release("hello", id, "sha256:x", 1, "op", None)
        .unwrap();
    s.mark_release_live("hello", r).unwrap();
    let live = resolve(&s, "hello", Ref::Live).unwrap();
    assert_eq!((live.build, live.release), (id, Some(r)));
    assert_eq!(resolve(&s, "hello", Ref::Release(r)).unwrap(), live);
}

#[test]
fn image_diff_reads_config_and_app_files_from_real_archives() {
    use crate::build::oci;
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str, files: &[(&str, &str)], env: &str| {
        let base = dir.path().join(format!("{name}-base"));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::write(base.join("etc/os-release"), "debian").unwrap();
        let app = dir.path().join(format!("{name}-app"));
        for (p, body) in files {
            let f = app.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body).unwrap();
        }
        let l0 = oci::write_layer(
            &base,
            oci::LayerMode::Full,
            &[],
            &dir.path().join(format!("{name}0")),
        )
        .unwrap();
        let l1 = oci::write_layer(
            &app,
            oci::LayerMode::Full,
            &[],
            &dir.path().join(format!("{name}1")),
        )
        .unwrap();
        let spec = oci::ImageSpec {
            entrypoint: vec!["/etc/drover/entrypoint".into()],
            env: vec![format!("GREETING={env}"), "PATH=/usr/bin".into()],
            exposed_ports: vec!["8080".into()],
            ref_name: "drover/hello:x".into(),
            architecture: "amd64".into(),
            created: "2026-12-02T00:00:00Z".into(),
            ..Default::default()
        };
        let out = dir.path().join(format!("{name}.oci.tar"));
        oci::write_archive(&[l0, l1], &spec, &out).unwrap();
        image::read(&out).unwrap()
    };
    let a = mk(
        "a",
        &[("srv/app/server.py", "v1"), ("srv/app/README", "same")],
        "hi",
    );
    let b = mk(
        "b",
        &[
            ("srv/app/server.py", "v2"),
            ("srv/app/README", "same"),
            ("srv/app/new.txt", "n"),
        ],
        "hello",
    );
    assert!(
        !a.files.contains_key("etc/os-release"),
        "the base layer is not an app file"
    );
    let d = image::diff(&a, &b);
    let files: Vec<(&str, Change)> = d
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.change))
        .collect();
    assert_eq!(
        files,
        [
            ("srv/app/new.txt", Change::Added),
            ("srv/app/server.py", Change::Changed)
        ]
    );
    let sha = |s: &str| {
        format!(
            "sha256:{}",
            hex::encode(<Sha256Alias as sha2::Digest>::digest(s))
        )
    };
    assert_eq!(d.files[1].new.as_deref(), Some(sha("v2").as_str()));
    assert_eq!(d.config.len(), 1);
    assert_eq!(d.config[0].field, "Env GREETING");
    assert_eq!(
        (d.config[0].old.as_deref(), d.config[0].new.as_deref()),
        (Some("hi"), Some("hello"))
    );
}

type Sha256Alias = sha2::Sha256;
