//! The agent's HTTP/JSON API on its Unix socket (`STATE/agent.sock`): the request and
//! answer types, [`AgentError`] with its status mapping, and the blocking transport under
//! [`super::client::AgentClient`].
//!
//! Endpoints: `GET /v1/status` → [`AgentStatus`]; `POST /v1/deploy` with a
//! [`DeployRequest`] → [`DeployReport`]; `POST /v1/stop` → `{"stopping": true}`. Errors
//! are `{"error": "…"}` with status 400 (bad input), 404 (unknown stack, build or
//! release), 409 (a deploy of that stack is running), 422 (the release failed its checks)
//! or 500.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// How long new instances get to pass their health check when a request does not say
/// (`timeout_secs`): in a deploy, in the agent's restore and replacements, and for
/// `drover status` waiting on a freshly started agent.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST /v1/deploy`: deploy a build, or roll back to an earlier release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// Stack name.
    pub stack: String,
    /// Build to deploy (default: the stack's newest succeeded build). Ignored for a rollback.
    pub build: Option<i64>,
    /// Instances wanted (default: the live release's count, else 1).
    pub replicas: Option<usize>,
    /// Roll back instead of deploying a build.
    #[serde(default)]
    pub rollback: bool,
    /// For a rollback: the release to go back to (default: the previous one).
    pub to: Option<i64>,
    /// Seconds the new instances get to become healthy (default 30).
    pub timeout_secs: Option<u64>,
    /// Seconds old instances get to finish in-flight requests (default 30).
    pub grace_secs: Option<u64>,
    /// The operator (recorded with the release and in the audit log).
    pub by: String,
}

/// What `POST /v1/lifecycle` does to one stack's live release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleAction {
    /// Drain and stop every instance; the route answers `503` saying the stack is
    /// stopped; the release history stays. Kept across agent restarts.
    Stop,
    /// Start the live release's instances again (its replica count), health-checked.
    Start,
    /// Change the live release's replica count: start instances (they join once
    /// healthy) or drain and stop the newest ones.
    Scale,
    /// Replace every instance, one at a time: the new one joins once healthy, then the
    /// old one drains and stops, so the healthy count never drops.
    Restart,
}

impl LifecycleAction {
    /// The lowercase word (also the audit action).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Stop => "stop",
            LifecycleAction::Start => "start",
            LifecycleAction::Scale => "scale",
            LifecycleAction::Restart => "restart",
        }
    }
}

/// `POST /v1/lifecycle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRequest {
    /// Stack name.
    pub stack: String,
    /// What to do.
    pub action: LifecycleAction,
    /// For [`LifecycleAction::Scale`]: the instances wanted (1-64).
    pub replicas: Option<usize>,
    /// Seconds an instance being removed gets to finish its requests (default 30).
    pub grace_secs: Option<u64>,
    /// The operator (recorded in the audit log).
    pub by: String,
}

/// The result of a lifecycle action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleReport {
    /// Stack name.
    pub stack: String,
    /// `stop`, `start`, `scale` or `restart`.
    pub action: LifecycleAction,
    /// The live release acted on.
    pub release: i64,
    /// Its replica count now.
    pub replicas: usize,
    /// Instance ids behind the route afterwards (empty when stopped).
    pub instances: Vec<String>,
    /// Instances started by the action.
    pub started: Vec<String>,
    /// Instances drained and stopped by the action.
    pub stopped_instances: Vec<String>,
    /// Whether the stack is stopped afterwards.
    pub stopped: bool,
    /// Wall time in the agent, milliseconds.
    pub total_ms: f64,
}

/// The result of a successful deploy or rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployReport {
    /// Stack name.
    pub stack: String,
    /// The new live release.
    pub release: i64,
    /// Its build.
    pub build_id: i64,
    /// Its image digest.
    pub image_digest: String,
    /// The release it replaced (null for a first deploy).
    pub previous_release: Option<i64>,
    /// For a rollback: the release whose build was redeployed.
    pub rollback_of: Option<i64>,
    /// The route port.
    pub route_port: u16,
    /// Instance ids now behind the route.
    pub instances: Vec<String>,
    /// Time to switch the route once the new instances were healthy, in milliseconds.
    pub switch_ms: f64,
    /// Time the old instances took to drain, in milliseconds.
    pub drain_ms: f64,
    /// Whole deploy wall time, in milliseconds.
    pub total_ms: f64,
    /// Time to make the image ready (the unpack step: layers from the cache or unpacked,
    /// the instance root assembled), in milliseconds; ~0 when it was ready already.
    #[serde(default)]
    pub unpack_ms: f64,
    /// Layers of the image this deploy unpacked (0 when the image was ready already).
    #[serde(default)]
    pub layers_unpacked: usize,
    /// Layers of the image taken from the layer cache (`STATE/layers`), e.g. the base
    /// layer another release unpacked before (0 when the image was ready already).
    #[serde(default)]
    pub layers_cached: usize,
    /// True when a rollback switched the route to the target release's still-running warm
    /// instances (`[deploy] keep_warm`) instead of starting new ones.
    #[serde(default)]
    pub warm: bool,
    /// For a rollback that started new instances: why the warm path was not taken.
    #[serde(default)]
    pub cold_reason: Option<String>,
    /// Instances of the replaced release kept running warm (not routed).
    #[serde(default)]
    pub kept_warm: usize,
    /// Things the operator should fix that did not stop the deploy (missing secrets).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The watch window now running on this release (`[deploy] watch`), as
    /// [`StackStatus::watching`] says it; null without one.
    #[serde(default)]
    pub watching: Option<String>,
    /// `blue-green` or `recreate` (`[deploy] strategy`, or its default).
    #[serde(default)]
    pub strategy: String,
    /// For a recreate that replaced a release: from the stop of the old instances until
    /// the new ones took the route, milliseconds (the route answered 503 meanwhile).
    #[serde(default)]
    pub unavailable_ms: Option<f64>,
}

/// Where an instance is, as `GET /v1/status` reports it (the lowercase word of
/// [`InstanceState::as_str`] in JSON and on screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Started; no health check passed yet.
    Starting,
    /// Its health checks pass.
    Healthy,
    /// Was healthy; failed `[health] unhealthy_threshold` checks in a row.
    Unhealthy,
    /// Its sandbox exited.
    Exited,
    /// Asked to stop (drained or replaced), not gone yet.
    Stopping,
    /// The previous release kept running unrouted (`[deploy] keep_warm`).
    Warm,
}

impl InstanceState {
    /// The word in JSON and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Healthy => "healthy",
            InstanceState::Unhealthy => "unhealthy",
            InstanceState::Exited => "exited",
            InstanceState::Stopping => "stopping",
            InstanceState::Warm => "warm",
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not an [`InstanceState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown instance state `{0}`")]
pub struct UnknownInstanceState(
    /// The word read.
    pub String,
);

impl std::str::FromStr for InstanceState {
    type Err = UnknownInstanceState;
    /// The inverse of [`InstanceState::as_str`].
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "starting" => Ok(InstanceState::Starting),
            "healthy" => Ok(InstanceState::Healthy),
            "unhealthy" => Ok(InstanceState::Unhealthy),
            "exited" => Ok(InstanceState::Exited),
            "stopping" => Ok(InstanceState::Stopping),
            "warm" => Ok(InstanceState::Warm),
            _ => Err(UnknownInstanceState(s.to_string())),
        }
    }
}

/// One instance in [`StackStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Instance id (`STACK-rRELEASE-N`).
    pub id: String,
    /// Release it runs.
    pub release: i64,
    /// PID of its bubblewrap process on the host.
    pub pid: Option<u32>,
    /// Loopback port it listens on.
    pub port: u16,
    /// Where it is (for `warm`, `healthy` says whether its checks pass).
    pub state: InstanceState,
    /// Whether the router sends it requests.
    pub healthy: bool,
    /// The last health check (status and body, or the error).
    pub last_check: String,
    /// Requests in flight.
    pub in_flight: usize,
    /// RFC 3339 UTC.
    pub started_at: String,
}

/// One stack in [`AgentStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackStatus {
    /// Stack name.
    pub stack: String,
    /// The stable route port.
    pub route_port: u16,
    /// The live release (null before the first deploy finished).
    pub live_release: Option<i64>,
    /// Its build.
    pub build_id: Option<i64>,
    /// Its image digest.
    pub image_digest: Option<String>,
    /// Instances wanted.
    pub replicas: usize,
    /// The running deploy, if any: `"deploy by USER since TIME"`.
    pub deploying: Option<String>,
    /// Instances of the live release, of a deploy in progress and of the warm release.
    pub instances: Vec<InstanceStatus>,
    /// The watch window in progress (`[deploy] watch`), if any: `"release 8 until
    /// 2026-12-02T15:50:12Z: rolls back past 5xx 5.0% or p99 500 ms"`.
    #[serde(default)]
    pub watching: Option<String>,
    /// `Some("by alice at TIME")` while the stack is stopped (`drover stop`).
    #[serde(default)]
    pub stopped: Option<String>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's PID.
    pub pid: u32,
    /// When it started, RFC 3339 UTC.
    pub started_at: String,
    /// Every stack with a route, by name.
    pub stacks: Vec<StackStatus>,
}

/// Why the agent did not do what a request asked, as both ends of the socket see it.
///
/// The agent answers one as `{"error": MESSAGE}` with the status of
/// [`AgentError::status`]; the client turns an error answer back into one with
/// [`AgentError::from_status`]. [`AgentError::is_input`] says whether the request itself
/// was wrong (the CLI exits 2) or the operation failed (exit 1). The message is what the
/// operator reads: what happened and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// 400: the request contradicts the state (bad replicas, nothing to roll back), the
    /// stack file is invalid, or the request is unreadable.
    #[error("{0}")]
    BadInput(String),
    /// 404: an unknown stack, build, release or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// 409: a deploy of that stack is running.
    #[error("{0}")]
    Conflict(String),
    /// 422: the release did not go live (its image could not be unpacked, or its instances
    /// failed their checks); the message holds the last health check and log lines.
    #[error("{0}")]
    ReleaseFailed(String),
    /// 500 (and any other error status): the agent or the front end itself failed.
    #[error("{0}")]
    Internal(String),
    /// Client side only: a success answer whose body is not what the endpoint returns.
    #[error("{0}")]
    Unexpected(String),
    /// Client side only: no answer (no agent on the socket, or it went away mid-request).
    #[error("{0}")]
    Unreachable(String),
    /// Client side only: the socket is there but this user may not connect to it (EACCES:
    /// the agent runs as another user). The message names the socket and the fix.
    #[error("{0}")]
    PermissionDenied(String),
}

impl AgentError {
    /// The HTTP status the agent answers this error with (the client-side variants, never
    /// sent, are 500).
    pub fn status(&self) -> hyper::StatusCode {
        use hyper::StatusCode as S;
        match self {
            AgentError::BadInput(_) => S::BAD_REQUEST,
            AgentError::NotFound(_) => S::NOT_FOUND,
            AgentError::Conflict(_) => S::CONFLICT,
            AgentError::ReleaseFailed(_) => S::UNPROCESSABLE_ENTITY,
            AgentError::Internal(_)
            | AgentError::Unexpected(_)
            | AgentError::Unreachable(_)
            | AgentError::PermissionDenied(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error an error answer with HTTP `status` and `message` stands for: the inverse
    /// of [`AgentError::status`]; an unknown status is [`AgentError::Internal`].
    pub fn from_status(status: u16, message: String) -> AgentError {
        match status {
            400 => AgentError::BadInput(message),
            404 => AgentError::NotFound(message),
            409 => AgentError::Conflict(message),
            422 => AgentError::ReleaseFailed(message),
            _ => AgentError::Internal(message),
        }
    }

    /// Whether the request itself was wrong (400, 404, 409): retrying it unchanged cannot
    /// work. Otherwise the deploy ran and failed, or the agent was unreachable.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            AgentError::BadInput(_) | AgentError::NotFound(_) | AgentError::Conflict(_)
        )
    }
}

impl From<super::plan::Rejection> for AgentError {
    fn from(r: super::plan::Rejection) -> Self {
        match r {
            super::plan::Rejection::BadInput(m) => AgentError::BadInput(m),
            super::plan::Rejection::NotFound(m) => AgentError::NotFound(m),
        }
    }
}

/// The error of a request whose answer never came: the agent died or dropped the
/// connection.
pub const LOST: &str = "lost the connection to the agent before it answered (did the agent \
                        die?); see `drover status`, which restarts it and shows what runs";

/// One request to the agent on `socket` (use [`super::client::AgentClient`]): the JSON
/// body of a success answer, [`AgentError::from_status`] of an error answer, or
/// [`AgentError::Unreachable`] when no (readable) answer came, or
/// [`AgentError::PermissionDenied`] when connecting to the socket failed with EACCES.
pub(super) fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Option<Duration>,
) -> std::result::Result<serde_json::Value, AgentError> {
    match exchange(socket, method, path, body, timeout) {
        Err(e) if is_permission_denied(&e) => Err(AgentError::PermissionDenied(denied(socket))),
        Err(e) => Err(AgentError::Unreachable(format!("{e:#}"))),
        Ok((status, json)) if (200..300).contains(&status) => Ok(json),
        Ok((status, json)) => {
            let message = json["error"]
                .as_str()
                .unwrap_or("the agent failed without a message")
                .to_string();
            Err(AgentError::from_status(status, message))
        }
    }
}

/// Whether `e` (from [`exchange`]) is a connect refused with EACCES.
fn is_permission_denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

/// The message of [`AgentError::PermissionDenied`] for `socket`: who owns it and the fix.
fn denied(socket: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    // The directory's owner is the agent's user (the socket itself may be hidden by it).
    let owner = socket
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .map(|m| format!(" (owned by uid {})", m.uid()))
        .unwrap_or_default();
    format!(
        "permission denied on the agent socket {}{owner}: the agent runs as another user; \
         run drover as the agent's user (the owner of its state directory), e.g. with sudo",
        socket.display()
    )
}

/// Send one request and read the answer: its status and JSON body.
fn exchange(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Option<Duration>,
) -> Result<(u16, serde_json::Value)> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to the agent at {}", socket.display()))?;
    s.set_read_timeout(timeout)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: drover-agent\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).context(LOST)?;
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        // Nothing, or half a header: the agent went away (killed, crashed) mid-request.
        return Err(match read {
            Err(e) => anyhow::Error::new(e),
            Ok(_) => anyhow::anyhow!("the connection closed after {} byte(s)", buf.len()),
        })
        .context(LOST);
    };
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the agent sent a malformed status line")?;
    let json: serde_json::Value = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        serde_json::from_str(&dechunk(rest)).context("the agent sent malformed JSON")?
    } else {
        serde_json::from_str(rest).context("the agent sent malformed JSON")?
    };
    Ok((status, json))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent that reads the request, then answers `answer` and hangs up.
    fn one_shot_agent(answer: &'static [u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
            }
            let _ = s.write_all(answer);
        });
        (dir, sock)
    }

    #[test]
    fn an_agent_that_dies_mid_request_is_reported_as_a_lost_connection() {
        for answer in [&b""[..], b"HTTP/1.1 200 OK\r\nContent-Le"] {
            let (_dir, sock) = one_shot_agent(answer);
            let e = call(&sock, "POST", "/v1/deploy", None, None).unwrap_err();
            let text = format!("{e:#}");
            assert!(text.contains("lost the connection to the agent"), "{text}");
            assert!(text.contains("drover status"), "{text}");
            assert!(!text.contains("malformed"), "{text}");
        }
        let (_dir, sock) = one_shot_agent(b"HTTP/1.1 200 OK\r\n\r\n{\"ok\": 1}");
        let v = call(&sock, "GET", "/v1/status", None, None).unwrap();
        assert_eq!(v["ok"], 1);
    }
}
