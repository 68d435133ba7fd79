//! The Log pane: scrolling, follow, wrap, fullscreen, search.

use super::*;

#[test]
fn log_keys() {
    let mut s = state();
    update(&mut s, key('2'));
    update(&mut s, key('G'));
    assert!(s.log.follow);
    assert_eq!(s.log.top, 90);
    update(&mut s, key('k'));
    assert!(!s.log.follow);
    assert_eq!(s.log.top, 89);
    update(&mut s, key('g'));
    assert_eq!(s.log.top, 0);
    update(&mut s, key('j'));
    assert_eq!(s.log.top, 1);
    update(&mut s, code(KeyCode::PageDown));
    assert_eq!(s.log.top, 11);
    update(&mut s, code(KeyCode::PageUp));
    assert_eq!(s.log.top, 1);
    update(&mut s, key('f'));
    assert!(s.log.follow);
    assert_eq!(s.log.top, 90);
    update(&mut s, key('f'));
    assert!(!s.log.follow);
    update(&mut s, key('w'));
    assert!(s.log.wrap);
    update(&mut s, key('w'));
    assert!(!s.log.wrap);
    update(&mut s, key('F'));
    assert!(s.fullscreen);
    update(&mut s, key('F'));
    assert!(!s.fullscreen);
    // n before any search says so.
    assert!(update(&mut s, key('n')).is_empty());
    assert!(s.status.as_deref().unwrap_or("").contains("no search"));
    // '/' in the log searches.
    update(&mut s, key('/'));
    assert!(matches!(s.input, Some((InputTarget::LogSearch, _))));
    for c in "line 5".chars() {
        update(&mut s, key(c));
    }
    let e = update(&mut s, code(KeyCode::Enter));
    assert!(
        matches!(&e[..], [Effect::SearchLog { needle, forward: true, .. }] if needle == "line 5"),
        "{e:?}"
    );
    s.log.matched = Some(5);
    let e = update(&mut s, key('n'));
    assert!(
        matches!(
            &e[..],
            [Effect::SearchLog {
                from: 6,
                forward: true,
                ..
            }]
        ),
        "{e:?}"
    );
    let e = update(&mut s, key('N'));
    assert!(
        matches!(
            &e[..],
            [Effect::SearchLog {
                from: 4,
                forward: false,
                ..
            }]
        ),
        "{e:?}"
    );
}
