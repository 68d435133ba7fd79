//! The overlays: jobs (and quitting with jobs), help, palette, detail.

use super::*;

#[test]
fn jobs_list_and_cancel() {
    let mut s = state();
    update(&mut s, key('b'));
    update(&mut s, code(KeyCode::Enter));
    update(&mut s, key('J'));
    assert!(matches!(s.overlay, Some(Overlay::Jobs { selected: 0 })));
    update(&mut s, key('x'));
    assert!(matches!(&s.overlay, Some(Overlay::Confirm(c)) if c.pending == Pending::CancelJob(1)));
    assert!(!s.jobs[0].cancel.is_cancelled());
    update(&mut s, key('y'));
    assert!(s.jobs[0].cancel.is_cancelled());
    // The job reports back.
    update(
        &mut s,
        Msg::Job(JobMsg::Done {
            job: 1,
            outcome: Ok((
                BuildStatus::Cancelled,
                Some("cancelled by the operator".into()),
            )),
        }),
    );
    assert_eq!(s.jobs[0].state, JobState::Cancelled);
    // A panicked job is reported, not fatal.
    update(&mut s, key('r'));
    s.jobs.push(Job {
        id: 2,
        kind: "build".into(),
        stack: "web".into(),
        build_id: None,
        step: None,
        lines: 0,
        started: s.now,
        finished: None,
        state: JobState::Running,
        cancel: Default::default(),
        live: Default::default(),
    });
    update(
        &mut s,
        Msg::Job(JobMsg::Done {
            job: 2,
            outcome: Err(JobError::Panicked("boom".into())),
        }),
    );
    assert!(matches!(&s.jobs[1].state, JobState::Failed(e) if e.contains("boom")));
    assert!(s.status.as_deref().unwrap().contains("boom"));
    // J closes, esc closes too.
    update(&mut s, key('J'));
    update(&mut s, key('J'));
    assert!(s.overlay.is_none());
}

#[test]
fn quitting_with_running_jobs_asks() {
    let mut s = state();
    update(&mut s, key('b'));
    update(&mut s, key('y'));
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(!s.quit);
    assert!(matches!(&s.overlay, Some(Overlay::Confirm(c)) if c.pending == Pending::Quit));
    update(&mut s, key('q'));
    assert!(!s.quit && s.overlay.is_none(), "q answers no");
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    update(&mut s, key('y'));
    assert!(s.quit);
    assert!(
        s.jobs[0].cancel.is_cancelled(),
        "running jobs are cancelled"
    );
}

#[test]
fn help_overlay_filters() {
    let mut s = state();
    update(&mut s, key('?'));
    assert!(matches!(s.overlay, Some(Overlay::Help { .. })));
    for c in "wrap".chars() {
        update(&mut s, key(c));
    }
    match &s.overlay {
        Some(Overlay::Help { input, .. }) => assert_eq!(input.value(), "wrap"),
        o => panic!("{o:?}"),
    }
    // With text typed, q is a letter of the filter.
    update(&mut s, key('q'));
    match &s.overlay {
        Some(Overlay::Help { input, .. }) => assert_eq!(input.value(), "wrapq"),
        o => panic!("q typed into the filter: {o:?}"),
    }
    // esc clears the filter first, then closes.
    update(&mut s, code(KeyCode::Esc));
    match &s.overlay {
        Some(Overlay::Help { input, .. }) => assert_eq!(input.value(), ""),
        o => panic!("esc clears a non-empty filter, help stays: {o:?}"),
    }
    update(&mut s, code(KeyCode::Esc));
    assert!(s.overlay.is_none());
    update(&mut s, key('?'));
    update(&mut s, key('q'));
    assert!(s.overlay.is_none() && !s.quit);
}

#[test]
fn palette_completes_and_runs() {
    let mut s = state();
    update(&mut s, key(':'));
    for c in "ma".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Tab));
    match &s.overlay {
        Some(Overlay::Palette { input, .. }) => assert_eq!(input.value(), "manifest"),
        o => panic!("{o:?}"),
    }
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.pane, Pane::Manifest);
    assert!(s.overlay.is_none());
    // `build web` selects the stack and asks.
    update(&mut s, key(':'));
    for c in "build web".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.selected_stack(), Some("web"));
    assert!(
        matches!(&s.overlay, Some(Overlay::Confirm(c)) if c.pending == Pending::Build("web".into()))
    );
    update(&mut s, code(KeyCode::Esc));
    // deploy: asks with from -> to (for the loaded stack; web is not loaded here).
    update(&mut s, key(':'));
    for c in "deploy".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.status.as_deref(), Some("web is still loading; try again"));
    s.focus = Focus::Stacks;
    update(&mut s, key('g'));
    update(&mut s, key(':'));
    for c in "deploy".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert!(
        matches!(&s.overlay, Some(Overlay::Confirm(c)) if c.title == "Deploy hello?"),
        "{:?} {:?}",
        s.overlay,
        s.status
    );
    update(&mut s, code(KeyCode::Esc));
    // unknown command.
    update(&mut s, key(':'));
    for c in "zzz".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert!(s.status.as_deref().unwrap().contains("unknown command"));
    // quit.
    update(&mut s, key(':'));
    for c in "quit".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert!(s.quit);
}

#[test]
fn detail_scrolls_with_the_list_keys_and_closes_with_esc_or_q() {
    let mut s = state();
    let lines: Vec<String> = (0..58).map(|i| format!("line {i}")).collect();
    s.overlay = Some(Overlay::detail("Long".into(), lines));
    // As the renderer leaves it for a 20-row box.
    if let Some(Overlay::Detail { page, max, .. }) = &mut s.overlay {
        *page = 20;
        *max = 38;
    }
    let scroll = |s: &State| match &s.overlay {
        Some(Overlay::Detail { scroll, .. }) => *scroll,
        o => panic!("detail closed: {o:?}"),
    };
    update(&mut s, key('j'));
    update(&mut s, code(KeyCode::Down));
    assert_eq!(scroll(&s), 2);
    update(&mut s, key('k'));
    assert_eq!(scroll(&s), 1);
    update(&mut s, code(KeyCode::PageDown));
    assert_eq!(scroll(&s), 21);
    update(&mut s, code(KeyCode::PageDown));
    assert_eq!(scroll(&s), 38, "clamped to the last page");
    update(&mut s, code(KeyCode::PageUp));
    assert_eq!(scroll(&s), 18);
    update(&mut s, key('g'));
    assert_eq!(scroll(&s), 0);
    update(&mut s, code(KeyCode::Up));
    assert_eq!(scroll(&s), 0);
    update(&mut s, key('G'));
    assert_eq!(scroll(&s), 38);
    update(&mut s, code(KeyCode::Esc));
    assert!(s.overlay.is_none());
    s.overlay = Some(Overlay::detail("Short".into(), vec!["x".into()]));
    update(&mut s, key('q'));
    assert!(s.overlay.is_none() && !s.quit);
}

#[test]
fn palette_lock_starts_a_lock_job_for_the_selected_stack() {
    let mut s = state();
    let run = |s: &mut State, text: &str| {
        update(s, key(':'));
        for c in text.chars() {
            update(s, key(c));
        }
        update(s, code(KeyCode::Enter))
    };
    let e = run(&mut s, "lock");
    let stack = s.selected_stack().unwrap().to_string();
    assert!(
        matches!(e.as_slice(), [Effect::Lock { update: false, stack: st, .. }] if *st == stack),
        "{e:?}"
    );
    assert!(s.status.as_deref().unwrap().contains("refreshing the lock"));
    let mut s = state();
    let e = run(&mut s, "lock update");
    assert!(
        matches!(e.as_slice(), [Effect::Lock { update: true, .. }]),
        "{e:?}"
    );
    assert!(s.status.as_deref().unwrap().contains("updating the lock"));
}

/// A deploy failure as the footer shows it: longer than any terminal line.
const LONG: &str = "deploy of hello failed: release #3 never became healthy within 30 s: \
     the last health check GET /up answered 500 Internal Server Error with the body \
     `database connection refused (postgres at 10.0.0.5:5432)`; instance hello-r3-1 \
     printed 14 lines (J, enter: details)";

#[test]
fn a_long_footer_message_wraps_and_an_endless_one_points_to_message() {
    use crate::tui::chrome::{footer_lines, MESSAGE_POINTER};
    use ratatui::layout::Rect;
    let mut s = state();
    s.status = Some(LONG.into());
    let lines = footer_lines(&s, Rect::new(0, 0, 80, 24));
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{lines:?}");
    assert!(
        lines[3].ends_with("(J, enter: details)"),
        "nothing cut: {lines:?}"
    );
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(words(&lines.join(" ")), words(LONG), "every word, in order");
    // Wide enough: one line, as before.
    assert_eq!(footer_lines(&s, Rect::new(0, 0, 400, 60)).len(), 1);
    // Longer than a third of the screen: cut there, ending with where the whole text is.
    s.status = Some(LONG.repeat(10));
    let lines = footer_lines(&s, Rect::new(0, 0, 80, 24));
    assert_eq!(lines.len(), 8, "a third of 24 rows");
    assert!(lines[7].ends_with(MESSAGE_POINTER), "{lines:?}");
    assert!(lines[7].chars().count() <= 80, "{lines:?}");
    // No message: the footer keeps its one line (the key hints).
    s.status = None;
    assert!(footer_lines(&s, Rect::new(0, 0, 80, 24)).is_empty());

    // The next key clears the footer; `:message` shows the message whole.
    s.status = Some(LONG.repeat(10));
    update(&mut s, key(':'));
    assert!(s.status.is_none());
    for c in "message".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    match &s.overlay {
        Some(Overlay::Detail { title, lines, .. }) => {
            assert_eq!(title, "Message");
            assert_eq!(lines.join(""), LONG.repeat(10));
        }
        o => panic!("{o:?}"),
    }
    // Nothing shown yet: it says so.
    let mut s = state();
    update(&mut s, key(':'));
    for c in "message".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.status.as_deref(), Some("no message yet"));
}

fn typed(s: &mut State, text: &str) {
    update(s, key(':'));
    for c in text.chars() {
        update(s, key(c));
    }
}

fn palette_text(s: &State) -> String {
    match &s.overlay {
        Some(Overlay::Palette { input, .. }) => input.value().to_string(),
        o => panic!("{o:?}"),
    }
}

/// Issue #13 polish: the palette completes stack names, build ids and release numbers from
/// what the console holds, and runs deploy/rollback/diff with them.
#[test]
fn palette_completes_stacks_builds_and_releases() {
    use crate::tui::overlays::palette::completions;
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    // :deploy h<tab> -> :deploy hello
    typed(&mut s, "deploy h");
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(palette_text(&s), "deploy hello ");
    // Then the succeeded builds of the loaded stack (not the failed #2).
    let words = |t: &str, s: &State| -> Vec<String> {
        completions(t, s).into_iter().map(|c| c.0).collect()
    };
    assert_eq!(words("deploy hello ", &s), ["3", "1"]);
    assert!(completions("deploy hello ", &s)[0].1.contains("live #2"));
    update(&mut s, code(KeyCode::Down));
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(palette_text(&s), "deploy hello 1 ");
    // :rollback hello r<tab> offers the release numbers.
    assert_eq!(words("rollback hello r", &s), ["r2", "r1"]);
    assert_eq!(words("rollback hello r1", &s), ["r1"]);
    // :diff hello 3 <tab> offers builds and releases (and live, newest).
    assert_eq!(
        words("diff hello 3 ", &s),
        ["live", "newest", "3", "1", "r2", "r1"]
    );
    assert_eq!(words("diff w", &s), ["web"]);
    // Another stack's builds are not loaded: a hint, which tab does not take.
    let c = completions("deploy web ", &s);
    assert_eq!(c.len(), 1);
    assert!(!c[0].2 && c[0].1.contains("select web first"), "{c:?}");
    update(&mut s, code(KeyCode::Esc));
    typed(&mut s, "deploy web ");
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(palette_text(&s), "deploy web ");
    update(&mut s, code(KeyCode::Esc));

    // enter: deploy hello 1 asks to deploy build #1 (selected in Builds).
    typed(&mut s, "deploy hello 1");
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.selected_build().map(|b| b.id), Some(1));
    assert!(
        matches!(&s.overlay, Some(Overlay::Confirm(c)) if c.title == "Deploy hello?"),
        "{:?} {:?}",
        s.overlay,
        s.status
    );
    update(&mut s, code(KeyCode::Esc));
    // rollback hello r1 selects release 1 in Releases and asks.
    typed(&mut s, "rollback hello r1");
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.pane, Pane::Releases);
    assert!(
        matches!(&s.overlay, Some(Overlay::Confirm(_))),
        "{:?}",
        s.status
    );
    update(&mut s, code(KeyCode::Esc));
    // diff hello 3 r1 reads that diff off the UI task.
    typed(&mut s, "diff hello 3 r1");
    let e = update(&mut s, code(KeyCode::Enter));
    match e.as_slice() {
        [Effect::Diff { stack, a, b }] => {
            assert_eq!(stack, "hello");
            assert_eq!(*a, crate::diff::Ref::Build(3));
            assert_eq!(*b, crate::diff::Ref::Release(1));
        }
        e => panic!("{e:?}"),
    }
    // A build that is not there is said, nothing runs.
    typed(&mut s, "deploy hello 42");
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.status.as_deref(), Some("hello has no build `42`"));
    assert!(s.overlay.is_none());
}

/// Issue #14: `:new NAME TEMPLATE` writes a stack from a template off the UI task and
/// selects it once the Stacks list holds it.
#[test]
fn palette_new_writes_a_stack_from_a_template_and_selects_it() {
    use crate::tui::msg::Loaded;
    use crate::tui::overlays::palette::completions;
    let mut s = state();
    let names: Vec<String> = completions("new api ", &s)
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(
        names.contains(&"python".to_string()) && names.contains(&"postgres".to_string()),
        "{names:?}"
    );
    assert_eq!(completions("new api py", &s)[0].0, "python");
    let run = |s: &mut State, text: &str| {
        update(s, key(':'));
        for c in text.chars() {
            update(s, key(c));
        }
        update(s, code(KeyCode::Enter))
    };
    let e = run(&mut s, "new api");
    assert!(e.is_empty(), "{e:?}");
    assert!(s
        .status
        .as_deref()
        .unwrap()
        .starts_with("usage: new NAME TEMPLATE"));
    let e = run(&mut s, "new api python");
    assert!(
        matches!(e.as_slice(), [Effect::NewStack { name, template }] if name == "api" && template == "python"),
        "{e:?}"
    );
    // The job reports back; the list reloads and then holds the new stack: it is selected.
    let e = update(
        &mut s,
        Msg::StackCreated(Ok(("api".into(), "wrote config/stacks/api.toml".into()))),
    );
    assert!(matches!(e.as_slice(), [Effect::Reload]), "{e:?}");
    let mut rows = s.stacks.clone();
    let mut api = rows[0].clone();
    api.name = "api".into();
    rows.insert(0, api);
    let e = update(
        &mut s,
        Msg::Stacks(Ok(Loaded {
            rows,
            problems: vec![],
            stack: None,
        })),
    );
    assert_eq!(s.selected_stack(), Some("api"));
    assert!(matches!(e.as_slice(), [Effect::Reload]), "{e:?}");
    // A refusal is said in the footer and selects nothing.
    update(&mut s, Msg::StackCreated(Err("new api: exists".into())));
    assert_eq!(s.status.as_deref(), Some("new api: exists"));
    assert!(s.select_when_loaded.is_none());
}
