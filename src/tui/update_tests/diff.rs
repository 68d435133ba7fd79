//! `D`: which two sides a diff compares, from the pane and its selection.

use super::*;
use crate::diff::Ref;

fn asked(e: &[Effect]) -> (Ref, Ref) {
    match e {
        [Effect::Diff { stack, a, b }] => {
            assert_eq!(stack, "hello");
            (*a, *b)
        }
        e => panic!("no diff asked: {e:?}"),
    }
}

#[test]
fn d_in_builds_compares_the_selected_build_with_live_or_the_build_before() {
    let mut s = state();
    update(&mut s, key('1'));
    // Nothing live: #3 against the succeeded build before it (#2 failed).
    assert_eq!(
        asked(&update(&mut s, key('D'))),
        (Ref::Build(1), Ref::Build(3))
    );
    update(&mut s, key('j')); // #2, failed
    assert!(update(&mut s, key('D')).is_empty());
    assert!(s
        .status
        .as_deref()
        .unwrap()
        .contains("only a succeeded build"));
    update(&mut s, key('j')); // #1: the first
    assert!(update(&mut s, key('D')).is_empty());
    assert!(s.status.as_deref().unwrap().contains("nothing to compare"));
    // With a live release: the selected build against it.
    s.set_releases(vec![ReleaseRecord::sample(1, 1, "live")]);
    update(&mut s, key('g'));
    assert_eq!(asked(&update(&mut s, key('D'))), (Ref::Live, Ref::Build(3)));
}

#[test]
fn d_in_releases_compares_a_release_with_the_one_before_it() {
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    update(&mut s, key('5'));
    assert_eq!(
        asked(&update(&mut s, key('D'))),
        (Ref::Release(1), Ref::Release(2))
    );
    update(&mut s, key('j'));
    assert!(update(&mut s, key('D')).is_empty());
    assert!(s.status.as_deref().unwrap().contains("first"));
    // The text that comes back opens in the Detail overlay; an error goes to the footer.
    update(
        &mut s,
        Msg::Detail(Ok(("Diff hello: build #1 -> #3".into(), vec!["x".into()]))),
    );
    assert!(
        matches!(&s.overlay, Some(Overlay::Detail { title, .. }) if title.contains("#1 -> #3"))
    );
    s.overlay = None;
    update(&mut s, Msg::Detail(Err("boom".into())));
    assert_eq!(s.status.as_deref(), Some("cannot read it: boom"));
}

#[test]
fn a_asks_for_the_selected_stacks_audit_log_and_shows_it() {
    let mut s = state();
    match update(&mut s, key('A')).as_slice() {
        [Effect::Audit { stack }] => assert_eq!(stack, "hello"),
        e => panic!("{e:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let paths = crate::paths::Paths {
        config: dir.path().join("config"),
        state: dir.path().to_path_buf(),
    };
    let store = crate::store::Store::open(&paths.database()).unwrap();
    store
        .audit("deploy", Some("hello"), "release 2 live")
        .unwrap();
    store
        .audit("deploy", Some("web"), "release 9 live")
        .unwrap();
    let loaded = crate::tui::overlays::detail::load_audit(&paths, "hello");
    update(&mut s, Msg::Detail(loaded));
    match &s.overlay {
        Some(Overlay::Detail { title, lines, .. }) => {
            assert!(title.starts_with("Audit of hello (1 records"), "{title}");
            assert!(lines[0].starts_with("TIME"), "{lines:?}");
            assert!(lines[1].contains("release 2 live"), "{lines:?}");
            assert!(!lines.iter().any(|l| l.contains("release 9")), "{lines:?}");
        }
        o => panic!("{o:?}"),
    }
}
