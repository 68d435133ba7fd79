//! The Builds pane: `b` asks then starts a job; `enter` opens a build's log.

use super::*;

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
fn enter_on_a_build_opens_its_log() {
    let mut s = state();
    update(&mut s, key('1'));
    update(&mut s, key('j'));
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.pane, Pane::Log);
    assert_eq!(s.log_target(), Some(2));
}
