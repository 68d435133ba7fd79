//! Deploy and roll back from a front end (the CLI and the console call the same function):
//! check the request against the store first ([`super::plan::check`]: a bad request fails
//! at once and never starts the agent), start the agent when needed, send the request, and
//! report progress lines while the agent works (from its status, polled on the socket).
//! [`AgentClient`] is the one typed way to speak to the agent's socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::api::{
    self, AgentError, AgentStatus, DeployReport, DeployRequest, InstanceState, InstanceStatus,
    LifecycleReport, LifecycleRequest,
};
use crate::paths::Paths;
use crate::store::Store;

/// How often the agent's status is polled for progress during a deploy.
pub const PROGRESS_POLL: Duration = Duration::from_millis(300);

/// A typed client of the agent's API (see [`super::api`]) on its socket,
/// `STATE/agent.sock`: one method per endpoint. Blocking; every error is an
/// [`AgentError`].
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
}

impl AgentClient {
    /// The client of the agent of `paths`' state directory ([`Paths::agent_socket`]).
    pub fn new(paths: &Paths) -> AgentClient {
        AgentClient {
            socket: paths.agent_socket(),
        }
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether an agent answers `GET /v1/status` within `timeout` (whatever its body).
    pub fn running(&self, timeout: Duration) -> bool {
        self.get_status(Some(timeout)).is_ok()
    }

    /// `GET /v1/status`, its body as sent.
    fn get_status(&self, timeout: Option<Duration>) -> Result<serde_json::Value, AgentError> {
        api::call(&self.socket, "GET", "/v1/status", None, timeout)
    }

    /// `GET /v1/status`: the agent's PID, start time and every stack with a route.
    /// `timeout` bounds the wait for the answer (`None`: wait as long as it takes).
    ///
    /// Errors: [`AgentError::Unreachable`] when no agent answers, [`AgentError::Unexpected`]
    /// when the answer is not an [`AgentStatus`].
    pub fn status(&self, timeout: Option<Duration>) -> Result<AgentStatus, AgentError> {
        let v = self.get_status(timeout)?;
        serde_json::from_value(v).map_err(|e| AgentError::Unexpected(e.to_string()))
    }

    /// `POST /v1/deploy`: deploy (or roll back) as `req` says; blocks until the agent
    /// answers (the deploy's whole run).
    ///
    /// Errors: the agent's [`AgentError`] (input errors: 400/404/409; a release that did
    /// not go live: 422), or [`AgentError::Unreachable`].
    pub fn deploy(&self, req: &DeployRequest) -> Result<DeployReport, AgentError> {
        let body = serde_json::to_value(req).map_err(|e| AgentError::Internal(e.to_string()))?;
        let v = api::call(&self.socket, "POST", "/v1/deploy", Some(&body), None)?;
        serde_json::from_value(v).map_err(|e| {
            AgentError::Unexpected(format!("the agent sent an unexpected report: {e}"))
        })
    }

    /// `POST /v1/lifecycle`: stop, start, scale or restart one stack's live release;
    /// blocks until the agent answers.
    ///
    /// Errors: the agent's [`AgentError`] (no route/live release: 404; bad replicas or a
    /// stopped stack: 400; a deploy running: 409; instances not healthy: 422), or
    /// [`AgentError::Unreachable`].
    pub fn lifecycle(&self, req: &LifecycleRequest) -> Result<LifecycleReport, AgentError> {
        let body = serde_json::to_value(req).map_err(|e| AgentError::Internal(e.to_string()))?;
        let v = api::call(&self.socket, "POST", "/v1/lifecycle", Some(&body), None)?;
        serde_json::from_value(v).map_err(|e| {
            AgentError::Unexpected(format!("the agent sent an unexpected report: {e}"))
        })
    }

    /// `POST /v1/stop`: ask the agent to stop (its instances stop with it); returns once it
    /// accepted, not once it is gone.
    ///
    /// Errors: [`AgentError::Unreachable`] when no agent answers within `timeout`.
    pub fn stop(&self, timeout: Option<Duration>) -> Result<(), AgentError> {
        api::call(&self.socket, "POST", "/v1/stop", None, timeout).map(|_| ())
    }
}

fn failed(e: impl std::fmt::Display) -> AgentError {
    AgentError::Internal(e.to_string())
}

/// Whether `status` shows the stack's release `release` live with at least its replica
/// count (at least 1) of healthy instances of that release behind the route, or the
/// stack stopped (`drover stop`: its route is up, on purpose without instances).
pub fn serving(status: &AgentStatus, stack: &str, release: i64) -> bool {
    status.stacks.iter().any(|st| {
        st.stack == stack
            && st.live_release == Some(release)
            && (st.stopped.is_some()
                || st
                    .instances
                    .iter()
                    .filter(|i| {
                        i.healthy && i.release == release && i.state == InstanceState::Healthy
                    })
                    .count()
                    >= st.replicas.max(1))
    })
}

/// Wait, at most `timeout`, until the agent serves every release the store has live (what
/// a freshly started agent restores): polled every [`PROGRESS_POLL`]. Returns the last
/// status seen and the stacks not serving yet (empty when all are). Errors: the store
/// cannot be read, or the agent does not answer.
pub fn wait_serving(
    paths: &Paths,
    timeout: Duration,
) -> Result<(AgentStatus, Vec<String>), AgentError> {
    let live = Store::open(&paths.database())
        .and_then(|s| s.live_releases())
        .map_err(|e| failed(format!("{e:#}")))?;
    let deadline = std::time::Instant::now() + timeout;
    let client = AgentClient::new(paths);
    loop {
        let s = client.status(Some(Duration::from_secs(5))).map_err(|_| {
            AgentError::Unreachable(format!(
                "the agent does not answer on {}; see {}",
                paths.agent_socket().display(),
                paths.agent_log().display()
            ))
        })?;
        let waiting: Vec<String> = live
            .iter()
            .filter(|r| !serving(&s, &r.stack, r.release))
            .map(|r| r.stack.clone())
            .collect();
        if waiting.is_empty() || std::time::Instant::now() >= deadline {
            return Ok((s, waiting));
        }
        std::thread::sleep(PROGRESS_POLL);
    }
}

/// Run a lifecycle action through the agent, starting it when needed (a starting agent
/// restores the live releases first). A stack with no live release in the store is
/// refused as bad input before the agent starts; so is `scale` outside 1-64.
///
/// Errors: as [`AgentClient::lifecycle`].
pub fn lifecycle(paths: &Paths, req: &LifecycleRequest) -> Result<LifecycleReport, AgentError> {
    paths.ensure_state().map_err(failed)?;
    let store = Store::open(&paths.database()).map_err(failed)?;
    let live = store
        .releases(&req.stack)
        .map_err(failed)?
        .into_iter()
        .any(|r| r.status == crate::store::deploys::ReleaseStatus::Live);
    if !live {
        return Err(AgentError::NotFound(format!(
            "{} has no live release: nothing to {} (`drover deploy {}` first)",
            req.stack,
            req.action.as_str(),
            req.stack
        )));
    }
    if req.action == super::api::LifecycleAction::Scale
        && !req.replicas.is_some_and(|n| (1..=64).contains(&n))
    {
        return Err(AgentError::BadInput(format!(
            "replicas must be 1 to 64, got {} (`drover stop {}` stops every instance)",
            req.replicas.unwrap_or(0),
            req.stack
        )));
    }
    super::ensure_agent(paths).map_err(|e| failed(format!("{e:#}")))?;
    // The agent restores the stack's route in the background: wait for it (bounded).
    let client = AgentClient::new(paths);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        match client.status(Some(Duration::from_secs(2))) {
            Ok(s) if s.stacks.iter().any(|x| x.stack == req.stack) => break,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    client.lifecycle(req)
}

/// Check `req` against the store; a rejection is an input error.
pub fn precheck(paths: &Paths, req: &DeployRequest) -> Result<super::plan::Target, AgentError> {
    paths.ensure_state().map_err(failed)?;
    let store = Store::open(&paths.database()).map_err(failed)?;
    Ok(super::plan::check(&store, req).map_err(failed)??)
}

/// One progress line per change of the stack's deploy state or instances.
fn describe(s: &AgentStatus, stack: &str) -> Option<String> {
    let st = s.stacks.iter().find(|x| x.stack == stack)?;
    let inst = |i: &InstanceStatus| format!("{} {}", i.id, i.state);
    Some(format!(
        "{}; instances: {}",
        st.deploying.as_deref().unwrap_or("no deploy running"),
        if st.instances.is_empty() {
            "none".to_string()
        } else {
            st.instances.iter().map(inst).collect::<Vec<_>>().join(", ")
        }
    ))
}

/// The first progress line of an accepted request: `deploying STACK…` or
/// `rolling back STACK…`.
pub fn accepted_line(req: &DeployRequest) -> String {
    let action = if req.rollback {
        "rolling back"
    } else {
        "deploying"
    };
    format!("{action} {}…", req.stack)
}

/// Deploy (or roll back, `req.rollback`) through the agent, starting it when needed;
/// `progress` gets a line for each step seen. Its first line, [`accepted_line`], comes only
/// once the store accepted the request (a rejected request gets none); then the agent
/// started, instances starting/healthy, the switch. Blocks until the agent answers.
///
/// Errors: an input [`AgentError`] ([`AgentError::is_input`]) for a request the store
/// already rejects (checked before the agent starts) or the agent rejects (400/404/409);
/// otherwise the failure with the agent's message (for 422 it holds the last health
/// check's status and body).
pub fn deploy(
    paths: &Paths,
    req: &DeployRequest,
    progress: &mut dyn FnMut(&str),
) -> Result<DeployReport, AgentError> {
    precheck(paths, req)?;
    progress(&accepted_line(req));
    if super::ensure_agent(paths).map_err(|e| failed(format!("{e:#}")))? {
        progress("started the drover agent");
    }
    let client = AgentClient::new(paths);
    // The answer arrives on a channel, so a quick deploy (a warm rollback takes a few ms in
    // the agent) returns at once instead of after a whole progress period.
    let (tx, rx) = std::sync::mpsc::channel();
    let (deployer, request) = (client.clone(), req.clone());
    std::thread::spawn(move || {
        let _ = tx.send(deployer.deploy(&request));
    });
    let mut last = String::new();
    loop {
        match rx.recv_timeout(PROGRESS_POLL) {
            Ok(answer) => return answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(failed("the deploy request thread panicked"))
            }
        }
        if let Some(line) = client
            .status(Some(Duration::from_secs(2)))
            .ok()
            .and_then(|s| describe(&s, &req.stack))
        {
            if line != last {
                progress(&line);
                last = line;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::api::StackStatus;

    fn inst(release: i64, state: &str) -> InstanceStatus {
        InstanceStatus {
            id: format!("hello-r{release}-1"),
            release,
            pid: Some(1),
            port: 4000,
            state: state.parse().unwrap(),
            healthy: state == "healthy" || state == "warm",
            last_check: String::new(),
            in_flight: 0,
            started_at: String::new(),
        }
    }

    fn status(live: Option<i64>, replicas: usize, instances: Vec<InstanceStatus>) -> AgentStatus {
        AgentStatus {
            pid: 1,
            started_at: String::new(),
            stacks: vec![StackStatus {
                stack: "hello".into(),
                route_port: 8080,
                live_release: live,
                build_id: None,
                image_digest: None,
                replicas,
                deploying: None,
                instances,
                watching: None,
                stopped: None,
            }],
        }
    }

    #[test]
    fn serving_needs_the_live_release_with_all_its_replicas_healthy() {
        assert!(serving(
            &status(Some(3), 1, vec![inst(3, "healthy")]),
            "hello",
            3
        ));
        // Restored but not checked yet, or the route not restored at all.
        assert!(!serving(
            &status(Some(3), 1, vec![inst(3, "starting")]),
            "hello",
            3
        ));
        assert!(!serving(&status(None, 1, vec![]), "hello", 3));
        assert!(!serving(
            &status(Some(3), 1, vec![inst(3, "healthy")]),
            "other",
            3
        ));
        // One of two replicas, or only a healthy warm instance of another release.
        let two = status(Some(3), 2, vec![inst(3, "healthy"), inst(3, "starting")]);
        assert!(!serving(&two, "hello", 3));
        assert!(!serving(
            &status(Some(3), 1, vec![inst(2, "warm")]),
            "hello",
            3
        ));
    }
}
