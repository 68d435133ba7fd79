//! Deploy and roll back from a front end (the CLI and the console call the same function):
//! check the request against the store first ([`super::plan::check`]: a bad request fails
//! at once and never starts the agent), start the agent when needed, send the request, and
//! report progress lines while the agent works (from its status, polled on the socket).

use std::time::Duration;

use super::api::{self, AgentStatus, DeployReport, DeployRequest, InstanceStatus};
use crate::paths::Paths;
use crate::store::Store;

/// How often the agent's status is polled for progress during a deploy.
pub const PROGRESS_POLL: Duration = Duration::from_millis(300);

/// Why a deploy did not happen or did not go live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployError {
    /// The request itself is wrong (unknown stack/build/release, bad replicas, nothing to
    /// roll back): the CLI exits 2. Otherwise the deploy ran and failed, or the agent was
    /// unreachable.
    pub input: bool,
    /// What happened; for a failed release, the agent's message with the health check's
    /// status and body and the last instance log lines.
    pub message: String,
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeployError {}

fn failed(e: impl std::fmt::Display) -> DeployError {
    DeployError {
        input: false,
        message: e.to_string(),
    }
}

/// The agent's status, without starting it: `None` when no agent answers on
/// `STATE/agent.sock` within `timeout`.
pub fn status(paths: &Paths, timeout: Duration) -> Option<AgentStatus> {
    match api::call(
        &paths.agent_socket(),
        "GET",
        "/v1/status",
        None,
        Some(timeout),
    ) {
        Ok(Ok(v)) => serde_json::from_value(v).ok(),
        _ => None,
    }
}

/// Whether `status` shows the stack's release `release` live with at least its replica
/// count (at least 1) of healthy instances of that release behind the route.
pub fn serving(status: &AgentStatus, stack: &str, release: i64) -> bool {
    status.stacks.iter().any(|st| {
        st.stack == stack
            && st.live_release == Some(release)
            && st
                .instances
                .iter()
                .filter(|i| i.healthy && i.release == release && i.state == "healthy")
                .count()
                >= st.replicas.max(1)
    })
}

/// Wait, at most `timeout`, until the agent serves every release the store has live (what
/// a freshly started agent restores): polled every [`PROGRESS_POLL`]. Returns the last
/// status seen and the stacks not serving yet (empty when all are). Errors: the store
/// cannot be read, or the agent does not answer.
pub fn wait_serving(
    paths: &Paths,
    timeout: Duration,
) -> Result<(AgentStatus, Vec<String>), DeployError> {
    let live = Store::open(&paths.database())
        .and_then(|s| s.live_releases())
        .map_err(|e| failed(format!("{e:#}")))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let s = status(paths, Duration::from_secs(5)).ok_or_else(|| {
            failed(format!(
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

/// Check `req` against the store; a rejection is an input error.
pub fn precheck(paths: &Paths, req: &DeployRequest) -> Result<super::plan::Target, DeployError> {
    paths.ensure_state().map_err(failed)?;
    let store = Store::open(&paths.database()).map_err(failed)?;
    match super::plan::check(&store, req).map_err(failed)? {
        Ok(t) => Ok(t),
        Err(r) => Err(DeployError {
            input: true,
            message: r.message().to_string(),
        }),
    }
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
/// Errors: [`DeployError`] with `input` for a request the store already rejects (checked
/// before the agent starts) or the agent rejects (400/404/409); otherwise the failure with
/// the agent's message (for 422 it holds the last health check's status and body).
pub fn deploy(
    paths: &Paths,
    req: &DeployRequest,
    progress: &mut dyn FnMut(&str),
) -> Result<DeployReport, DeployError> {
    precheck(paths, req)?;
    progress(&accepted_line(req));
    if super::ensure_agent(paths).map_err(|e| failed(format!("{e:#}")))? {
        progress("started the drover agent");
    }
    let sock = paths.agent_socket();
    let body = serde_json::to_value(req).map_err(failed)?;
    // The answer arrives on a channel, so a quick deploy (a warm rollback takes a few ms in
    // the agent) returns at once instead of after a whole progress period.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(api::call(&sock, "POST", "/v1/deploy", Some(&body), None));
    });
    let mut last = String::new();
    let answer = loop {
        match rx.recv_timeout(PROGRESS_POLL) {
            Ok(answer) => break answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(failed("the deploy request thread panicked"))
            }
        }
        if let Some(line) =
            status(paths, Duration::from_secs(2)).and_then(|s| describe(&s, &req.stack))
        {
            if line != last {
                progress(&line);
                last = line;
            }
        }
    }
    .map_err(|e| failed(format!("{e:#}")))?;
    match answer {
        Ok(v) => serde_json::from_value(v)
            .map_err(|e| failed(format!("the agent sent an unexpected report: {e}"))),
        Err(e) => Err(DeployError {
            input: matches!(e.status, 400 | 404 | 409),
            message: e.message,
        }),
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
            state: state.into(),
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
