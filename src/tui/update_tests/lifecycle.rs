//! `X` stop, `O` start, `+`/`-` scale, `T` restart: each confirms (naming the release and
//! the instance counts), then runs one lifecycle job; what cannot run is refused at once.

use super::*;
use crate::deploy::api::{InstanceStatus, LifecycleAction, LifecycleRequest, StackStatus};

fn pending(s: &State) -> LifecycleRequest {
    match &s.overlay {
        Some(Overlay::Confirm(Confirm {
            pending: Pending::Lifecycle(r),
            ..
        })) => r.clone(),
        o => panic!("no lifecycle confirmation: {o:?} (status {:?})", s.status),
    }
}

/// The fixture with release 2 live and the agent running it with `healthy` instances,
/// stopped when `stopped`.
fn live(healthy: usize, stopped: bool) -> State {
    let mut s = state();
    s.set_releases(vec![
        ReleaseRecord::sample(2, 3, "live"),
        ReleaseRecord::sample(1, 1, "superseded"),
    ]);
    let instances = (0..healthy)
        .map(|n| InstanceStatus {
            id: format!("hello-r2-{n}"),
            release: 2,
            pid: Some(100 + n as u32),
            port: 4000 + n as u16,
            state: "healthy".parse().unwrap(),
            healthy: true,
            last_check: "200".into(),
            in_flight: 0,
            started_at: String::new(),
        })
        .collect();
    let a = AgentStatus {
        pid: 1,
        started_at: String::new(),
        stacks: vec![StackStatus {
            stack: "hello".into(),
            route_port: 8080,
            live_release: Some(2),
            build_id: Some(3),
            image_digest: None,
            replicas: healthy.max(1),
            deploying: None,
            instances,
            watching: None,
            stopped: stopped.then(|| "by alice at 2026-01-01T10:00:00Z".into()),
        }],
    };
    update(&mut s, Msg::Agent(AgentView::Running(a)));
    s
}

#[test]
fn stop_confirms_what_it_drains_then_runs_a_job() {
    let mut s = live(2, false);
    update(&mut s, key('X'));
    let body = confirm_body(&s).join("\n");
    assert!(
        body.contains("drains and stops the 2 instance(s) of release #2"),
        "{body}"
    );
    assert!(body.contains("the route on :8080 answers 503"), "{body}");
    let req = pending(&s);
    assert_eq!((req.action, req.replicas), (LifecycleAction::Stop, None));
    let e = update(&mut s, key('y'));
    match e.as_slice() {
        [Effect::Lifecycle { job: 1, req }] => assert_eq!(req.stack, "hello"),
        e => panic!("{e:?}"),
    }
    assert_eq!(s.jobs[0].kind, "stop");
    // `n` answers no: nothing runs.
    let mut s = live(2, false);
    update(&mut s, key('X'));
    assert!(update(&mut s, key('n')).is_empty());
    assert!(s.jobs.is_empty());
}

#[test]
fn scale_by_one_each_way_within_1_to_64() {
    let mut s = live(2, false);
    update(&mut s, key('+'));
    assert!(confirm_body(&s)[0].contains("release #2: 2 -> 3 instance(s)"));
    assert_eq!(pending(&s).replicas, Some(3));
    let mut s = live(2, false);
    update(&mut s, key('-'));
    assert!(confirm_body(&s)[0].contains("2 -> 1 instance(s); the newest drains"));
    assert_eq!(pending(&s).replicas, Some(1));
    // Not below one: `X` is the way to zero.
    let mut s = live(1, false);
    update(&mut s, key('-'));
    assert!(s.overlay.is_none());
    assert!(s
        .status
        .as_deref()
        .unwrap()
        .contains("1 to 64 instances (X stops it)"));
}

#[test]
fn a_stopped_stack_starts_and_refuses_scale_restart_and_a_second_stop() {
    let mut s = live(0, true);
    for (k, want) in [
        ('X', "is stopped already; O starts it"),
        ('+', "cannot scale hello: it is stopped; O starts it"),
        ('T', "cannot restart hello: it is stopped; O starts it"),
    ] {
        update(&mut s, key(k));
        assert!(s.overlay.is_none(), "{k}");
        assert!(
            s.status.as_deref().unwrap().contains(want),
            "{k}: {:?}",
            s.status
        );
    }
    update(&mut s, key('O'));
    assert!(confirm_body(&s)[0].contains("starts release #2 with 1 instance(s)"));
    assert_eq!(pending(&s).action, LifecycleAction::Start);
}

#[test]
fn restart_says_the_healthy_count_never_drops_and_nothing_live_is_refused() {
    let mut s = live(2, false);
    update(&mut s, key('T'));
    let body = confirm_body(&s).join("\n");
    assert!(body.contains("replaces the 2 instance(s) of release #2 one at a time"));
    assert!(body.contains("the healthy count never drops"), "{body}");
    let mut s = state();
    update(&mut s, key('X'));
    assert!(s.overlay.is_none());
    assert!(s.status.as_deref().unwrap().contains("nothing is live"));
}
