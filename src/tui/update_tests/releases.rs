//! The Releases pane: `d` and `R` confirm then run a job; the agent's status.

use super::*;

fn pending_deploy(s: &State) -> DeployRequest {
    match &s.overlay {
        Some(Overlay::Confirm(Confirm {
            pending: Pending::Deploy(r),
            ..
        })) => r.clone(),
        o => panic!("no deploy confirmation: {o:?} (status {:?})", s.status),
    }
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
    update(&mut s, Msg::Agent(AgentView::NotRunning));
    assert_eq!(s.agent, AgentView::NotRunning);
    let a = AgentStatus {
        pid: 7,
        started_at: "2026-01-01T00:00:00Z".into(),
        stacks: vec![],
    };
    update(&mut s, Msg::Agent(AgentView::Running(a.clone())));
    assert_eq!(s.agent, AgentView::Running(a.clone()));
    update(
        &mut s,
        Msg::Agent(AgentView::Denied("permission denied".into())),
    );
    assert_eq!(s.agent, AgentView::Denied("permission denied".into()));
    update(&mut s, Msg::Agent(AgentView::Running(a.clone())));
    assert_eq!(s.agent, AgentView::Running(a));
}

#[test]
fn enter_on_a_release_asks_for_its_detail() {
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    update(&mut s, key('5'));
    update(&mut s, key('j'));
    match update(&mut s, code(KeyCode::Enter)).as_slice() {
        [Effect::ReleaseDetail { stack, release }] => {
            assert_eq!((stack.as_str(), *release), ("hello", 1))
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_recreate_deploy_says_the_stack_is_unavailable_until_the_new_release_is_healthy() {
    let mut s = state();
    s.set_releases(vec![ReleaseRecord::sample(1, 1, "live")]);
    s.stacks[0].strategy = crate::stack::Strategy::Recreate;
    update(&mut s, key('d'));
    let body = confirm_body(&s).join("\n");
    assert!(
        body.contains("strategy  recreate ([data] not shared): the old instances drain"),
        "{body}"
    );
    assert!(
        body.contains("hello answers 503 until the new ones"),
        "{body}"
    );
    assert!(body.contains("are healthy (a few seconds)"), "{body}");
    assert!(!body.contains("blue-green"), "{body}");
    // After a recreate, the next confirmation gives the window it measured.
    let mut s = state();
    s.set_releases(vec![ReleaseRecord::sample(1, 1, "live")]);
    s.stacks[0].strategy = crate::stack::Strategy::Recreate;
    s.stacks[0].last_unavailable_ms = Some(1340.0);
    update(&mut s, key('d'));
    let body = confirm_body(&s).join("\n");
    assert!(body.contains("are healthy (1.3 s the last time)"), "{body}");
    // A TCP route has no 503 to answer with.
    let mut s = state();
    s.set_releases(vec![ReleaseRecord::sample(1, 1, "live")]);
    s.stacks[0].strategy = crate::stack::Strategy::Recreate;
    s.stacks[0].tcp = true;
    update(&mut s, key('d'));
    let body = confirm_body(&s).join("\n");
    assert!(
        body.contains("hello refuses clients until the new ones"),
        "{body}"
    );
    // Blue-green (the default) says so, and that the route switches once the new ones
    // are healthy.
    let mut s = state();
    s.set_releases(vec![ReleaseRecord::sample(1, 1, "live")]);
    update(&mut s, key('d'));
    let body = confirm_body(&s).join("\n");
    assert!(body.contains("strategy  blue-green, no downtime"), "{body}");
    assert!(body.contains("the route switches once all"), "{body}");
}
