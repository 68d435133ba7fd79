//! Tests of [`super`]: loading stacks and panes from a seeded store.

use super::*;
use crate::updates::PendingUpdate;

fn pending(pkg: &str, src: &str, cves: &[&str], urgency: Option<&str>) -> PendingUpdate {
    PendingUpdate {
        package: pkg.into(),
        arch: "amd64".into(),
        installed: "1".into(),
        candidate: "2".into(),
        suite: "bookworm-security".into(),
        source: src.into(),
        source_installed: "1".into(),
        source_candidate: "2".into(),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        urgency: urgency.map(str::to_string),
        checked_at: "2026-11-29T00:00:00Z".into(),
        advisories: vec![],
        dates: vec![],
        deb: None,
        feed_cves: vec![],
        open_cves: vec![],
    }
}

#[test]
fn updates_group_by_source_riskiest_first_with_their_changelog_entries() {
    let store = Store::open_in_memory().unwrap();
    let id = store.create_build("hello", 1).unwrap();
    assert!(update_rows(&store, "hello").unwrap().is_none());
    store
        .record_update_check(
            "hello",
            id,
            "2026-11-29T00:00:00Z",
            &[
                pending("tzdata", "tzdata", &[], Some("medium")),
                pending("libssl3", "openssl", &["CVE-1", "CVE-2"], Some("high")),
                pending("openssl", "openssl", &["CVE-2", "CVE-3"], Some("medium")),
                pending("libc6", "glibc", &["CVE-9"], Some("medium")),
            ],
            &[],
            &[],
        )
        .unwrap();
    let rows = update_rows(&store, "hello").unwrap().unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(order, ["openssl", "glibc", "tzdata"]);
    assert_eq!(rows[0].packages, ["libssl3", "openssl"]);
    assert_eq!(rows[0].cves, ["CVE-1", "CVE-2", "CVE-3"]);
    assert_eq!(rows[0].urgency, "high");

    assert!(rows[0].entries.is_empty(), "no changelog cached");
    // A cached changelog of the candidate: the entries between installed and candidate.
    let entry = |v: &str, cves: &[&str], adv: &[&str]| crate::debian::changelog::Entry {
        version: v.into(),
        distributions: "bookworm-security".into(),
        urgency: "high".into(),
        date: format!("date of {v}"),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        advisories: adv.iter().map(|c| c.to_string()).collect(),
        text: String::new(),
    };
    store
        .put_changelog(
            "openssl",
            "2",
            &[
                entry("2", &["CVE-1", "CVE-2"], &["DSA-1-1"]),
                entry("1.5", &["CVE-3"], &[]),
                entry("1", &["CVE-0"], &[]),
            ],
        )
        .unwrap();
    let rows = update_rows(&store, "hello").unwrap().unwrap();
    let versions: Vec<&str> = rows[0].entries.iter().map(|e| e.version.as_str()).collect();
    assert_eq!(versions, ["2", "1.5"]);
    assert_eq!(rows[0].entries[0].advisories, ["DSA-1-1"]);
    assert_eq!(rows[0].entries[1].date, "date of 1.5");
    assert_eq!(rows[0].suites, ["bookworm-security"]);
}

#[test]
fn feed_cves_count_with_their_urgency() {
    let store = Store::open_in_memory().unwrap();
    let id = store.create_build("hello", 1).unwrap();
    let mut tz = pending("tzdata", "tzdata", &[], Some("low"));
    tz.feed_cves = vec![crate::updates::FeedCve {
        id: "CVE-2026-7".into(),
        source: "tzdata".into(),
        urgency: Some("high".into()),
        fixed_version: Some("2".into()),
        status: "fixed".into(),
        note: None,
        feed: "security-tracker".into(),
    }];
    store
        .record_update_check(
            "hello",
            id,
            "2026-11-29T00:00:00Z",
            &[pending("libc6", "glibc", &["CVE-9"], Some("medium")), tz],
            &[],
            &[],
        )
        .unwrap();
    let rows = update_rows(&store, "hello").unwrap().unwrap();
    assert_eq!(
        rows[0].source, "tzdata",
        "the feed's high urgency ranks it first"
    );
    assert_eq!(rows[0].cves, ["CVE-2026-7"]);
    assert_eq!(rows[0].urgency, "high");
}

fn two_stacks() -> State {
    let now = chrono::Utc::now();
    let mut s = State::new("/state".into(), now, crate::tui::keymap::Keymap::default());
    let row = |name: &str| StackRow {
        name: name.into(),
        description: String::new(),
        last_build: None,
        updates: None,
        updates_stale: false,
        release: None,
        strategy: crate::stack::Strategy::BlueGreen,
        last_unavailable_ms: None,
        tcp: false,
        problem: None,
    };
    s.set_stacks(vec![row("hello"), row("web")]);
    s
}

#[test]
fn a_background_read_lands_only_on_the_stack_still_selected() {
    let store = Store::open_in_memory().unwrap();
    let a = store.create_build("hello", 1).unwrap();
    store.create_build("web", 1).unwrap();
    let mut state = two_stacks();
    let q = StackQuery::of(&state).unwrap();
    assert_eq!((q.name.as_str(), q.have_manifest), ("hello", None));
    let data = read_stack(&store, &q).unwrap();
    // The operator moved to `web` while `hello` was read: the read is dropped.
    state.stacks_list.selected = 1;
    apply_stack(&mut state, data.clone());
    assert!(state.builds.is_empty() && state.loaded_stack.is_none());
    state.stacks_list.selected = 0;
    apply_stack(&mut state, data);
    assert_eq!(state.loaded_stack.as_deref(), Some("hello"));
    assert_eq!(state.builds.iter().map(|b| b.id).collect::<Vec<_>>(), [a]);
    // Loaded now: the next query says which manifest the state holds, so an unchanged
    // one is not read again.
    let q = StackQuery::of(&state).unwrap();
    assert_eq!(q.have_manifest, Some(None));
    assert!(read_stack(&store, &q).unwrap().manifest.is_none());
}
