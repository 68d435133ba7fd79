//! The Logs pane (runtime logs): `6`, `H`, `v`, `enter` from Releases, and the log keys (`i` with the agent's instances: tests/tui_snapshots.rs).

use super::*;
use crate::tui::state::InputTarget;

#[test]
fn logs_keys_set_the_runtime_filter() {
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    update(&mut s, key('6'));
    assert_eq!(s.pane, Pane::Logs);
    assert!(!s.runtime_filter.hide_health);
    update(&mut s, key('H'));
    assert!(s.runtime_filter.hide_health);
    assert_eq!(s.status.as_deref(), Some("health-check requests hidden"));
    update(&mut s, key('H'));
    assert!(!s.runtime_filter.hide_health);
    // v: all → newest release → older → all.
    for want in [Some(2), Some(1), None, Some(2)] {
        update(&mut s, key('v'));
        assert_eq!(s.runtime_filter.release, want);
    }
    // `/` searches the runtime log; f/w act on it.
    update(&mut s, key('/'));
    assert!(matches!(s.input, Some((InputTarget::LogSearch, _))));
    update(&mut s, code(KeyCode::Esc));
    let wrap = s.log.wrap;
    update(&mut s, key('w'));
    assert_ne!(s.log.wrap, wrap);
    // H and v mean nothing in another pane.
    update(&mut s, key('1'));
    update(&mut s, key('H'));
    assert!(!s.runtime_filter.hide_health);
}

#[test]
fn l_on_a_release_shows_its_runtime_log() {
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    update(&mut s, key('5'));
    update(&mut s, key('j'));
    update(&mut s, key('L'));
    assert_eq!(s.pane, Pane::Logs);
    assert_eq!(s.runtime_filter.release, Some(1));
}
