//! The Updates pane: `u` checks, `r` confirms a rebuild, `enter` lists an update's CVEs.

use super::*;

fn openssl_update() -> UpdateRow {
    UpdateRow {
        source: "openssl".into(),
        packages: vec!["libssl3".into(), "openssl".into()],
        from: "3.0.15-1~deb12u1".into(),
        to: "3.0.17-1~deb12u2".into(),
        cves: vec![
            "CVE-2025-1".into(),
            "CVE-2025-2".into(),
            "CVE-2025-3".into(),
        ],
        urgency: "high".into(),
        suites: vec!["bookworm-security".into()],
        entries: vec![
            UpdateEntry {
                version: "3.0.17-1~deb12u2".into(),
                urgency: "high".into(),
                date: "Mon, 01 Sep 2025 10:00:00 +0000".into(),
                cves: vec!["CVE-2025-1".into(), "CVE-2025-2".into()],
                advisories: vec!["DSA-6000-1".into()],
                text: String::new(),
            },
            UpdateEntry {
                version: "3.0.16-1~deb12u1".into(),
                urgency: "medium".into(),
                date: String::new(),
                cves: vec!["CVE-2025-2".into()],
                advisories: vec![],
                text: String::new(),
            },
        ],
        ecosystem: None,
    }
}

#[test]
fn check_for_updates_runs_a_job_without_asking() {
    let mut s = state();
    let e = update(&mut s, key('u'));
    assert!(s.overlay.is_none());
    match e.as_slice() {
        [Effect::CheckUpdates { job: 1, stack }] => assert_eq!(stack, "hello"),
        e => panic!("{e:?}"),
    }
    assert_eq!(s.jobs[0].kind, "check");
    assert!(update(&mut s, key('u')).is_empty(), "one job per stack");
    let e = update(
        &mut s,
        Msg::Job(JobMsg::Ended {
            job: 1,
            outcome: Ok("hello: build #3, 2 pending update(s) from 1 source package(s)".into()),
        }),
    );
    assert!(
        matches!(e.as_slice(), [Effect::Reload]),
        "the Updates pane reloads"
    );
}

#[test]
fn rebuild_confirms_with_the_updates_it_applies() {
    let mut s = state();
    update(&mut s, key('r'));
    assert!(s.overlay.is_none());
    assert_eq!(
        s.status.as_deref(),
        Some("hello has no pending updates known: press u to check first")
    );
    // A language package alone is nothing a rebuild applies.
    let lang = UpdateRow {
        source: "requests (pypi)".into(),
        packages: vec!["/srv/app/requests.dist-info/METADATA".into()],
        from: "2.28.1".into(),
        to: "2.32.3".into(),
        cves: vec![],
        urgency: String::new(),
        suites: vec!["https://pypi.org/pypi/requests/json".into()],
        entries: vec![],
        ecosystem: Some("pypi".into()),
    };
    s.set_updates(vec![lang.clone()]);
    update(&mut s, key('r'));
    assert!(s.overlay.is_none());
    assert!(s
        .status
        .as_deref()
        .unwrap_or("")
        .contains("no pending updates known"));
    s.set_updates(vec![openssl_update(), lang]);
    update(&mut s, key('r'));
    let body = confirm_body(&s);
    assert!(!body.iter().any(|l| l.contains("requests")), "{body:?}");
    assert!(body.contains(&"stack  hello".to_string()), "{body:?}");
    assert!(
        body.contains(&format!("from   image {} (build #3)", digest(3))),
        "{body:?}"
    );
    assert!(
        body.contains(&"  openssl 3.0.15-1~deb12u1 -> 3.0.17-1~deb12u2 (3 CVEs, high)".to_string()),
        "{body:?}"
    );
    let e = update(&mut s, key('y'));
    assert!(
        matches!(e.as_slice(), [Effect::StartBuild { apply_updates: true, stack, .. }] if stack == "hello"),
        "{e:?}"
    );
    assert_eq!(s.jobs[0].kind, "rebuild");
}

#[test]
fn enter_on_an_update_lists_its_cves_with_their_changelog_entries() {
    let mut s = state();
    s.set_updates(vec![openssl_update()]);
    update(&mut s, key('4'));
    update(&mut s, code(KeyCode::Enter));
    let lines = match &s.overlay {
        Some(Overlay::Detail { title, lines, .. }) => {
            assert_eq!(title, "Update of openssl");
            lines.clone()
        }
        o => panic!("{o:?}"),
    };
    let want = [
        "source      openssl 3.0.15-1~deb12u1 -> 3.0.17-1~deb12u2",
        "suite       bookworm-security",
        "packages    libssl3, openssl",
        "urgency     high",
        "",
        "CVEs fixed: 3",
        "3.0.17-1~deb12u2 (high, Mon, 01 Sep 2025 10:00:00 +0000) DSA-6000-1",
        "  DSA-6000-1  https://security-tracker.debian.org/tracker/DSA-6000-1",
        "  CVE-2025-1  https://security-tracker.debian.org/tracker/CVE-2025-1",
        "  CVE-2025-2  https://security-tracker.debian.org/tracker/CVE-2025-2",
        "not in a cached changelog entry:",
        "  CVE-2025-3  https://security-tracker.debian.org/tracker/CVE-2025-3",
        "",
        "r rebuilds applying every pending update (asks first); `drover lock STACK --update \
         openssl` then `drover build STACK` applies this one only",
    ];
    assert_eq!(lines, want);
}

#[test]
fn update_detail_links_the_tracker_and_shows_a_high_urgency_entry_without_cves() {
    let row = UpdateRow {
        source: "tzdata".into(),
        packages: vec!["tzdata".into()],
        from: "2024a-0+deb12u1".into(),
        to: "2025b-0+deb12u1".into(),
        cves: vec!["CVE-2025-1".into()],
        urgency: "high".into(),
        suites: vec!["bookworm-security".into()],
        entries: vec![
            UpdateEntry {
                version: "2025b-0+deb12u1".into(),
                urgency: "high".into(),
                date: String::new(),
                cves: vec![],
                advisories: vec![],
                text: "* New upstream release.\n  - Paraguay moves to -03.".into(),
            },
            UpdateEntry {
                version: "2025a-0+deb12u1".into(),
                urgency: "medium".into(),
                date: String::new(),
                cves: vec!["CVE-2025-1".into()],
                advisories: vec!["DLA-4000-1".into()],
                text: String::new(),
            },
        ],
        ecosystem: None,
    };
    let lines = crate::tui::overlays::detail::update_detail(&row, "r");
    let text = lines.join("\n");
    assert!(
        text.contains(
            "  (high urgency, no CVE named in the changelog entry)\n    \
             * New upstream release.\n      - Paraguay moves to -03.\n"
        ),
        "{text}"
    );
    // Without its text (a changelog cached before texts were kept) it says so.
    let mut old = row.clone();
    old.entries[0].text.clear();
    let text = crate::tui::overlays::detail::update_detail(&old, "r").join("\n");
    assert!(
        text.contains("changelog entry)\n    (its text was not cached by the check)\n"),
        "{text}"
    );
    assert!(
        text.contains("CVE-2025-1  https://security-tracker.debian.org/tracker/CVE-2025-1"),
        "{text}"
    );
    assert!(
        text.contains("https://security-tracker.debian.org/tracker/DLA-4000-1"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "`drover lock STACK --update tzdata` then `drover build STACK` applies this one only"
        ),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.starts_with("r rebuilds")), "{text}");
}
