//! Moving, switching panes, going back, filtering lists.

use super::*;

#[test]
fn navigation_keys() {
    let mut s = state();
    assert_eq!(s.focus, Focus::Stacks);
    update(&mut s, key('j'));
    assert_eq!(s.selected_stack(), Some("web"));
    update(&mut s, code(KeyCode::Up));
    assert_eq!(s.selected_stack(), Some("hello"));
    update(&mut s, code(KeyCode::Down));
    update(&mut s, key('k'));
    assert_eq!(s.selected_stack(), Some("hello"));
    update(&mut s, key('G'));
    assert_eq!(s.selected_stack(), Some("web"));
    update(&mut s, key('g'));
    assert_eq!(s.selected_stack(), Some("hello"));
    // enter focuses the pane; j moves the builds selection.
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.focus, Focus::Pane);
    assert_eq!(s.pane, Pane::Builds);
    update(&mut s, key('j'));
    assert_eq!(s.selected_build().map(|b| b.id), Some(2));
    update(&mut s, code(KeyCode::PageDown));
    assert_eq!(s.selected_build().map(|b| b.id), Some(1));
    update(&mut s, code(KeyCode::PageUp));
    assert_eq!(s.selected_build().map(|b| b.id), Some(3));
    // h / l switch sides.
    update(&mut s, key('h'));
    assert_eq!(s.focus, Focus::Stacks);
    update(&mut s, key('l'));
    assert_eq!(s.focus, Focus::Pane);
}

#[test]
fn panes_by_number_and_tab() {
    let mut s = state();
    for (c, p) in [
        ('1', Pane::Builds),
        ('2', Pane::Log),
        ('3', Pane::Manifest),
        ('4', Pane::Updates),
        ('5', Pane::Releases),
        ('6', Pane::Logs),
    ] {
        update(&mut s, key(c));
        assert_eq!(s.pane, p);
        assert_eq!(s.focus, Focus::Pane);
    }
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(s.pane, Pane::Builds, "tab wraps around");
    update(&mut s, code(KeyCode::BackTab));
    assert_eq!(s.pane, Pane::Logs);
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Tab, KeyModifiers::SHIFT)),
    );
    assert_eq!(s.pane, Pane::Releases);
    // From the stacks list, tab first moves focus to the pane.
    s.focus = Focus::Stacks;
    update(&mut s, code(KeyCode::Tab));
    assert_eq!((s.focus, s.pane), (Focus::Pane, Pane::Releases));
}

#[test]
fn esc_and_q_go_back_and_only_q_quits() {
    for (esc, back) in [(true, code(KeyCode::Esc)), (false, key('q'))] {
        let mut s = state();
        update(&mut s, key('2'));
        update(&mut s, key('F'));
        assert!(s.fullscreen);
        update(&mut s, back.clone());
        assert!(!s.fullscreen);
        update(&mut s, back.clone());
        assert_eq!(s.focus, Focus::Stacks);
        assert!(!s.quit);
        update(&mut s, back.clone());
        if esc {
            // esc never quits (k9s, lazygit): it says how to.
            assert!(!s.quit);
            assert!(s.status.as_deref().unwrap().contains("q or ctrl-c quits"));
        } else {
            assert!(s.quit);
        }
    }
}

#[test]
fn filter_lists() {
    let mut s = state();
    update(&mut s, key('3'));
    update(&mut s, key('/'));
    for c in "libssl".chars() {
        update(&mut s, key(c));
    }
    assert_eq!(s.manifest_list.visible.len(), 1);
    assert_eq!(
        s.manifest[s.manifest_list.current().unwrap()].name,
        "libssl3"
    );
    update(&mut s, code(KeyCode::Enter));
    assert!(s.input.is_none());
    assert_eq!(s.manifest_list.filter, "libssl");
    // '/' again and esc clears.
    update(&mut s, key('/'));
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.manifest_list.visible.len(), 3);
    // q inside a text field is text, not quit.
    s.focus = Focus::Stacks;
    update(&mut s, key('/'));
    update(&mut s, key('q'));
    assert!(!s.quit);
    assert_eq!(s.stacks_list.filter, "q");
    assert!(s.stacks_list.visible.is_empty());
    update(&mut s, code(KeyCode::Backspace));
    update(&mut s, key('w'));
    assert_eq!(s.selected_stack(), Some("web"));
    // Builds filter.
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('1'));
    update(&mut s, key('/'));
    for c in "failed".chars() {
        update(&mut s, key(c));
    }
    assert_eq!(s.builds_list.visible.len(), 1);
}
