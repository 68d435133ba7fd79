//! One stack's lifecycle from the console: `X` stop, `O` start, `+`/`-` scale by one, `T`
//! rolling restart. Each asks first (what happens, to which release, how many
//! instances), then runs as a job through the same library call as `drover stop|start|
//! scale|restart` ([`crate::deploy::client::lifecycle`]).

use crate::deploy::api::{LifecycleAction, LifecycleRequest};
use crate::deploy::plan::Current;
use crate::tui::state::{AgentView, Confirm, Overlay, Pending, State};

/// What the console knows of the selected stack's route: live release, replica count,
/// instances behind the route, whether it is stopped.
struct Route {
    release: i64,
    replicas: usize,
    running: usize,
    stopped: Option<String>,
    port: Option<u16>,
}

fn route(state: &State, name: &str) -> Option<Route> {
    let current = Current::from_releases(&state.releases)?;
    let agent = match &state.agent {
        AgentView::Running(a) => a.stacks.iter().find(|s| s.stack == name),
        _ => None,
    };
    Some(Route {
        release: current.release,
        replicas: agent.map_or(current.replicas, |s| s.replicas.max(1)),
        running: agent.map_or(0, |s| {
            s.instances
                .iter()
                .filter(|i| Some(i.release) == s.live_release && i.healthy)
                .count()
        }),
        stopped: agent.and_then(|s| s.stopped.clone()),
        port: agent.map(|s| s.route_port),
    })
}

/// `X`, `O`, `+`, `-`, `T`: ask to run `action` on the selected stack (`delta`: the
/// change of the replica count for a scale).
pub fn ask(state: &mut State, action: LifecycleAction, delta: i64) {
    let what = action.as_str();
    let Some(name) = state.idle_stack(what) else {
        return;
    };
    if state.loaded_stack.as_deref() != Some(name.as_str()) {
        state.status = Some(format!("{name} is still loading; try again"));
        return;
    }
    let Some(r) = route(state, &name) else {
        state.status = Some(format!(
            "cannot {what} {name}: nothing is live (deploy it first)"
        ));
        return;
    };
    let port = r.port.map(|p| format!(" on :{p}")).unwrap_or_default();
    let stopped = r.stopped.is_some();
    let (title, body, replicas) = match action {
        LifecycleAction::Stop if stopped => {
            state.status = Some(format!("{name} is stopped already; O starts it"));
            return;
        }
        LifecycleAction::Stop => (
            format!("Stop {name}?"),
            vec![
                format!(
                    "drains and stops the {} instance(s) of release #{} (grace 30 s)",
                    r.running, r.release
                ),
                format!("the route{port} answers 503 until O starts it again"),
                "the release history stays; a restarted agent keeps it stopped".into(),
            ],
            None,
        ),
        LifecycleAction::Start => (
            format!("Start {name}?"),
            vec![format!(
                "starts release #{} with {} instance(s), health-checked, behind the route{port}",
                r.release, r.replicas
            )],
            None,
        ),
        LifecycleAction::Scale | LifecycleAction::Restart if stopped => {
            state.status = Some(format!("cannot {what} {name}: it is stopped; O starts it"));
            return;
        }
        LifecycleAction::Scale => {
            let want = r.replicas as i64 + delta;
            if !(1..=64).contains(&want) {
                state.status = Some(format!(
                    "cannot scale {name} to {want}: 1 to 64 instances (X stops it)"
                ));
                return;
            }
            let how = if delta > 0 {
                "the new one joins the route once healthy"
            } else {
                "the newest drains (grace 30 s) and stops"
            };
            (
                format!("Scale {name} to {want}?"),
                vec![
                    format!(
                        "release #{}: {} -> {want} instance(s); {how}",
                        r.release, r.replicas
                    ),
                    "kept for this release (a restarted agent restores as many)".into(),
                ],
                Some(want as usize),
            )
        }
        LifecycleAction::Restart => (
            format!("Restart {name}?"),
            vec![
                format!(
                    "replaces the {} instance(s) of release #{} one at a time",
                    r.running, r.release
                ),
                "each new one joins once healthy before the old one drains: the healthy \
                 count never drops"
                    .into(),
            ],
            None,
        ),
    };
    state.overlay = Some(Overlay::Confirm(Confirm {
        title,
        body,
        pending: Pending::Lifecycle(LifecycleRequest {
            stack: name,
            action,
            replicas,
            grace_secs: None,
            by: String::new(),
        }),
    }));
}
