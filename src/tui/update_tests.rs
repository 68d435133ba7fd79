//! Pure tests of `update`: key → state change, for every key of the console.

use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::Keymap;
use super::msg::JobError;
use super::state::*;
use super::update::{update, Effect, JobMsg, Msg};
use crate::deploy::api::{AgentError, AgentStatus, DeployRequest};
use crate::jobs::{BuildEvent, Step, Stream};
use crate::manifest::Component;
use crate::store::builds::{BuildRecord, BuildStatus};
use crate::store::deploys::ReleaseRecord;

fn key(c: char) -> Msg {
    let m = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Msg::Key(KeyEvent::new(KeyCode::Char(c), m))
}

fn code(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn build(id: i64, status: BuildStatus) -> BuildRecord {
    BuildRecord::sample(id, status)
}

fn comp(name: &str, version: &str, source: &str, suite: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        suite: suite.into(),
        origin: "http://deb.debian.org/debian".into(),
        installed_size_kib: Some(10),
    }
}

/// Two stacks, three builds of `hello`, a manifest, a 100-line log in memory.
fn state() -> State {
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
    let mut s = State::new("/state".into(), now, Keymap::default());
    s.set_stacks(vec![
        StackRow {
            name: "hello".into(),
            description: "demo".into(),
            last_build: Some(build(3, BuildStatus::Succeeded)),
            updates: None,
            updates_stale: false,
            release: None,
        },
        StackRow {
            name: "web".into(),
            description: "web".into(),
            last_build: None,
            updates: None,
            updates_stale: false,
            release: None,
        },
    ]);
    s.loaded_stack = Some("hello".into());
    s.set_builds(vec![
        build(3, BuildStatus::Succeeded),
        build(2, BuildStatus::Failed),
        build(1, BuildStatus::Succeeded),
    ]);
    s.set_manifest(
        Some(3),
        vec![
            comp("zlib1g", "1:1.2.13", "zlib", "bookworm"),
            comp("libssl3", "3.0.15-1", "openssl", "bookworm"),
            comp("bash", "5.2.15", "bash", "bookworm-updates"),
        ],
    );
    s.log.build_id = Some(3);
    s.log.total = 100;
    s.log.height = 10;
    s.log.window = (0..100)
        .map(|i| ("stdout".into(), format!("line {i}")))
        .collect();
    s.log.follow = false;
    s
}

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
    ] {
        update(&mut s, key(c));
        assert_eq!(s.pane, p);
        assert_eq!(s.focus, Focus::Pane);
    }
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(s.pane, Pane::Builds, "tab wraps around");
    update(&mut s, code(KeyCode::BackTab));
    assert_eq!(s.pane, Pane::Releases);
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Tab, KeyModifiers::SHIFT)),
    );
    assert_eq!(s.pane, Pane::Updates);
    // From the stacks list, tab first moves focus to the pane.
    s.focus = Focus::Stacks;
    update(&mut s, code(KeyCode::Tab));
    assert_eq!((s.focus, s.pane), (Focus::Pane, Pane::Updates));
}

#[test]
fn esc_and_q_go_back_then_quit() {
    for back in [code(KeyCode::Esc), key('q')] {
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
        assert!(s.quit);
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

#[test]
fn manifest_sort_and_details() {
    let mut s = state();
    update(&mut s, key('3'));
    let names = |s: &State| {
        s.manifest_list
            .visible
            .iter()
            .map(|i| s.manifest[*i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&s), ["bash", "libssl3", "zlib1g"]);
    update(&mut s, key('S'));
    assert_eq!(names(&s), ["zlib1g", "libssl3", "bash"]);
    update(&mut s, key('s'));
    assert_eq!(s.manifest_sort, ManifestColumn::Version);
    assert_eq!(names(&s), ["zlib1g", "libssl3", "bash"]);
    update(&mut s, key('s'));
    assert_eq!(s.manifest_sort, ManifestColumn::Source);
    assert_eq!(names(&s), ["bash", "libssl3", "zlib1g"]);
    update(&mut s, key('s'));
    assert_eq!(s.manifest_sort, ManifestColumn::Suite);
    assert_eq!(names(&s)[2], "bash");
    update(&mut s, key('g'));
    update(&mut s, code(KeyCode::Enter));
    match &s.overlay {
        Some(Overlay::Detail { lines, .. }) => {
            assert!(lines.iter().any(|l| l.contains("source")), "{lines:?}")
        }
        o => panic!("expected details, got {o:?}"),
    }
    update(&mut s, key('q'));
    assert!(s.overlay.is_none());
    assert!(!s.quit);
}

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

#[test]
fn build_asks_then_starts_a_job() {
    let mut s = state();
    let e = update(&mut s, key('b'));
    assert!(e.is_empty());
    let Some(Overlay::Confirm(c)) = &s.overlay else {
        panic!("no confirmation")
    };
    assert_eq!(c.title, "Build hello?");
    assert!(
        c.body
            .iter()
            .any(|l| l.contains("image 000000000000 (build #3)")),
        "{:?}",
        c.body
    );
    // n declines.
    update(&mut s, key('n'));
    assert!(s.overlay.is_none() && s.jobs.is_empty());
    update(&mut s, key('b'));
    let e = update(&mut s, key('y'));
    assert!(matches!(&e[..], [Effect::StartBuild { job: 1, stack, .. }] if stack == "hello"));
    assert_eq!(s.running_jobs(), 1);
    assert_eq!((s.focus, s.pane), (Focus::Pane, Pane::Builds));
    // A second build of the same stack is refused while one runs.
    update(&mut s, key('b'));
    assert!(s.overlay.is_none());
    assert!(s
        .status
        .as_deref()
        .unwrap()
        .contains("job 1 (build) is running"));

    // Events: started selects the new build after the reload; log lines stream in.
    let e = update(
        &mut s,
        Msg::Job(JobMsg::Event {
            job: 1,
            event: BuildEvent::Started {
                build_id: 4,
                stack: "hello".into(),
            },
        }),
    );
    assert!(matches!(&e[..], [Effect::Reload]));
    assert_eq!(s.select_build, Some(4));
    assert_eq!(
        s.log.build_id,
        Some(4),
        "the new build's log is shown from line 1"
    );
    update(
        &mut s,
        Msg::Job(JobMsg::Event {
            job: 1,
            event: BuildEvent::StepStarted {
                build_id: 4,
                step: Step::Base,
            },
        }),
    );
    s.log = LogView {
        build_id: Some(4),
        follow: true,
        height: 5,
        ..LogView::default()
    };
    for i in 0..20 {
        update(
            &mut s,
            Msg::Job(JobMsg::Event {
                job: 1,
                event: BuildEvent::Log {
                    build_id: 4,
                    seq: i,
                    stream: Stream::Stdout,
                    line: format!("\u{1b}[31mline {i}\u{1b}[0m"),
                },
            }),
        );
    }
    assert_eq!(s.log.total, 20);
    assert_eq!(s.log.top, 15, "follow keeps the end in view");
    assert_eq!(s.log.line(19), Some(("stdout", "line 19")), "ANSI stripped");
    assert_eq!(s.jobs[0].lines, 20);
    assert_eq!(s.jobs[0].step, Some(Step::Base));
    update(
        &mut s,
        Msg::Job(JobMsg::Done {
            job: 1,
            outcome: Ok((BuildStatus::Succeeded, None)),
        }),
    );
    assert_eq!(s.jobs[0].state, JobState::Succeeded);
    assert_eq!(s.running_jobs(), 0);
}

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
fn enter_on_a_build_opens_its_log() {
    let mut s = state();
    update(&mut s, key('1'));
    update(&mut s, key('j'));
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.pane, Pane::Log);
    assert_eq!(s.log_target(), Some(2));
}

fn confirm_body(s: &State) -> Vec<String> {
    match &s.overlay {
        Some(Overlay::Confirm(c)) => c.body.clone(),
        o => panic!("no confirmation: {o:?} (status {:?})", s.status),
    }
}

fn pending_deploy(s: &State) -> DeployRequest {
    match &s.overlay {
        Some(Overlay::Confirm(Confirm {
            pending: Pending::Deploy(r),
            ..
        })) => r.clone(),
        o => panic!("no deploy confirmation: {o:?} (status {:?})", s.status),
    }
}

fn digest(build: i64) -> String {
    crate::text::short_digest(&format!("sha256:{build:064}"))
}

#[test]
fn deploy_confirms_from_nothing_to_the_newest_succeeded_build_then_runs_a_job() {
    let mut s = state();
    update(&mut s, key('d'));
    let body = confirm_body(&s);
    assert!(body.contains(&"stack     hello".to_string()), "{body:?}");
    assert!(
        body.contains(&"from      nothing deployed".to_string()),
        "{body:?}"
    );
    assert!(
        body.contains(&format!("to        build #3, {} (new release)", digest(3))),
        "{body:?}"
    );
    assert!(body.contains(&"replicas  1".to_string()), "{body:?}");
    let req = pending_deploy(&s);
    assert_eq!(
        (req.build, req.replicas, req.rollback),
        (None, Some(1), false)
    );
    let e = update(&mut s, key('y'));
    match e.as_slice() {
        [Effect::Deploy { job: 1, req }] => assert_eq!(req.stack, "hello"),
        e => panic!("{e:?}"),
    }
    assert_eq!(s.jobs[0].kind, "deploy");
    assert_eq!(s.pane, Pane::Releases);
    // One job per stack at a time.
    update(&mut s, key('d'));
    assert!(s.overlay.is_none());
    assert!(s
        .status
        .as_deref()
        .unwrap()
        .contains("job 1 (deploy) is running"));
}

#[test]
fn deploy_takes_the_build_selected_in_builds_and_refuses_what_cannot_deploy() {
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    update(&mut s, key('1'));
    update(&mut s, key('j')); // build 2, failed
    update(&mut s, key('d'));
    assert!(s.overlay.is_none());
    assert_eq!(
        s.status.as_deref(),
        Some("cannot deploy hello: build 2 failed; only succeeded builds deploy")
    );
    update(&mut s, key('j')); // build 1
    update(&mut s, key('d'));
    let body = confirm_body(&s);
    assert!(
        body.contains(&format!(
            "from      live release #2: build #3, {}",
            digest(3)
        )),
        "{body:?}"
    );
    assert!(
        body.contains(&format!("to        build #1, {} (new release)", digest(1))),
        "{body:?}"
    );
    assert!(
        body.contains(&"replicas  2".to_string()),
        "live release's count"
    );
    assert_eq!(pending_deploy(&s).build, Some(1));
    update(&mut s, key('n'));
    assert!(s.jobs.is_empty(), "no means nothing runs");

    // Nothing built: refused with what to do.
    s.set_builds(vec![build(4, BuildStatus::Failed)]);
    update(&mut s, key('2'));
    update(&mut s, key('d'));
    assert!(s.overlay.is_none());
    assert_eq!(
        s.status.as_deref(),
        Some("cannot deploy hello: hello has no succeeded build: run `drover build hello` first")
    );
}

#[test]
fn rollback_confirms_previous_or_selected_release_and_refuses_without_one() {
    let mut s = state();
    update(&mut s, key('R'));
    assert!(s.overlay.is_none());
    assert_eq!(
        s.status.as_deref(),
        Some("cannot roll back hello: hello has no live release to roll back from")
    );
    s.set_releases(vec![
        ReleaseRecord::sample(3, 3, "live"),
        ReleaseRecord::sample(2, 2, "failed"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    update(&mut s, key('R'));
    let body = confirm_body(&s);
    assert!(
        body.contains(&format!(
            "from      live release #3: build #3, {}",
            digest(3)
        )),
        "{body:?}"
    );
    assert!(
        body.contains(&format!(
            "to        release #1: build #1, {} (as a new release)",
            digest(1)
        )),
        "{body:?}"
    );
    let req = pending_deploy(&s);
    assert!(req.rollback && req.to.is_none());
    update(&mut s, code(KeyCode::Esc));

    // In Releases: the selected release (= --to N); the live one means "previous".
    update(&mut s, key('5'));
    update(&mut s, key('R'));
    assert_eq!(pending_deploy(&s).to, None);
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('G'));
    update(&mut s, key('R'));
    assert_eq!(pending_deploy(&s).to, Some(1));
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('k')); // release 2 failed
    update(&mut s, key('R'));
    assert!(s.overlay.is_none());
    assert!(s.status.as_deref().unwrap().contains("never went live"));
    // y runs it as a rollback job.
    update(&mut s, key('g'));
    update(&mut s, key('R'));
    let e = update(&mut s, key('y'));
    assert!(matches!(e.as_slice(), [Effect::Deploy { req, .. }] if req.rollback));
    assert_eq!(s.jobs[0].kind, "rollback");
}

#[test]
fn deploy_job_lines_and_failure_stay_with_the_job() {
    let mut s = state();
    update(&mut s, key('d'));
    update(&mut s, key('y'));
    update(
        &mut s,
        Msg::Job(JobMsg::Line {
            job: 1,
            line: "started the drover agent".into(),
        }),
    );
    let e = update(
        &mut s,
        Msg::Job(JobMsg::Ended {
            job: 1,
            outcome: Err(JobError::Agent(AgentError::ReleaseFailed("deploy of hello release 1 (build 3) failed: health check: 503 down\nlast instance log lines:\nboom".into()))),
        }),
    );
    assert!(matches!(e.as_slice(), [Effect::Reload]));
    assert!(matches!(&s.jobs[0].state, JobState::Failed(m) if m.contains("503 down")));
    let st = s.status.clone().unwrap();
    assert!(
        st.contains("503 down") && st.contains("boom") && !st.contains('\n'),
        "{st}"
    );
    update(&mut s, key('J'));
    update(&mut s, code(KeyCode::Enter));
    match &s.overlay {
        Some(Overlay::Detail { title, lines, .. }) => {
            assert_eq!(title, "Job 1: deploy of hello");
            assert_eq!(lines[0], "started the drover agent");
            assert!(lines.iter().any(|l| l.contains("503 down")));
            assert_eq!(lines.last().unwrap(), "boom");
        }
        o => panic!("{o:?}"),
    }
    update(&mut s, code(KeyCode::Esc));
    // A running deploy cannot be cancelled (the agent finishes or fails it).
    update(&mut s, key('d'));
    update(&mut s, key('y'));
    update(&mut s, key('J'));
    update(&mut s, key('x'));
    assert!(matches!(s.overlay, Some(Overlay::Jobs { .. })));
    assert!(
        s.status
            .as_deref()
            .unwrap_or("")
            .contains("cannot be cancelled"),
        "{:?} {:?}",
        s.status,
        s.jobs
            .iter()
            .map(|j| (&j.kind, &j.state))
            .collect::<Vec<_>>()
    );
    assert!(!s.jobs[1].cancel.is_cancelled());
    update(&mut s, code(KeyCode::Esc));
    // A success: the summary.
    update(&mut s, key('d'));
    update(&mut s, key('y'));
    update(
        &mut s,
        Msg::Job(JobMsg::Ended {
            job: 2,
            outcome: Ok("hello: release #1 is live".into()),
        }),
    );
    assert_eq!(s.jobs[1].state, JobState::Succeeded);
    assert_eq!(s.status.as_deref(), Some("hello: release #1 is live"));
}

#[test]
fn agent_status_polls_set_the_agent_view() {
    let mut s = state();
    assert_eq!(s.agent, AgentView::Unknown);
    update(&mut s, Msg::Agent(None));
    assert_eq!(s.agent, AgentView::NotRunning);
    let a = AgentStatus {
        pid: 7,
        started_at: "2026-01-01T00:00:00Z".into(),
        stacks: vec![],
    };
    update(&mut s, Msg::Agent(Some(a.clone())));
    assert_eq!(s.agent, AgentView::Running(a));
}

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
            },
            UpdateEntry {
                version: "3.0.16-1~deb12u1".into(),
                urgency: "medium".into(),
                date: String::new(),
                cves: vec!["CVE-2025-2".into()],
                advisories: vec![],
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
        "  CVE-2025-1",
        "  CVE-2025-2",
        "not in a cached changelog entry:",
        "  CVE-2025-3",
    ];
    assert_eq!(lines, want);
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
