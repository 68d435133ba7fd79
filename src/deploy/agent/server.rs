//! The agent's socket API: HTTP handlers for [`crate::deploy::api`].

use std::sync::Arc;

use hyper::StatusCode;

use super::*;
use crate::deploy::api::AgentError;

fn json_response(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The answer for `e`: its status ([`AgentError::status`]) and `{"error": MESSAGE}`.
fn error(e: AgentError) -> Response<Full<Bytes>> {
    json_response(e.status(), serde_json::json!({ "error": e.to_string() }))
}

pub(super) async fn handle(
    agent: Arc<Agent>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(AgentError::BadInput(format!("unreadable request: {e}"))),
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/v1/status") => json_response(
            StatusCode::OK,
            serde_json::to_value(agent.status()).unwrap_or_default(),
        ),
        ("POST", "/v1/deploy") => {
            let req: DeployRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return error(AgentError::BadInput(format!("bad deploy request: {e}"))),
            };
            // Run in its own task: a client that goes away must not cancel a deploy halfway.
            let a = agent.clone();
            let stack = req.stack.clone();
            match tokio::spawn(async move { a.deploy(req).await }).await {
                Ok(Ok(report)) => json_response(
                    StatusCode::OK,
                    serde_json::to_value(report).unwrap_or_default(),
                ),
                Ok(Err(e)) => error(e),
                Err(e) => {
                    let why = format!("deploy task failed: {e}");
                    agent.abandon_deploy(&stack, &why);
                    error(AgentError::Internal(why))
                }
            }
        }
        ("POST", "/v1/lifecycle") => {
            let req: crate::deploy::api::LifecycleRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return error(AgentError::BadInput(format!("bad lifecycle request: {e}")))
                }
            };
            // Its own task, as a deploy: a client that goes away must not cancel it.
            let a = agent.clone();
            match tokio::spawn(async move { a.lifecycle(req).await }).await {
                Ok(Ok(report)) => json_response(
                    StatusCode::OK,
                    serde_json::to_value(report).unwrap_or_default(),
                ),
                Ok(Err(e)) => error(e),
                Err(e) => error(AgentError::Internal(format!("lifecycle task failed: {e}"))),
            }
        }
        ("POST", "/v1/stop") => {
            agent.shutdown.notify_one();
            json_response(StatusCode::OK, serde_json::json!({ "stopping": true }))
        }
        _ => error(AgentError::NotFound(format!("no endpoint {method} {path}"))),
    }
}

pub(super) type ApiResult<T> = std::result::Result<T, AgentError>;

/// An unexpected failure inside the agent (store, filesystem): 500 with the whole chain.
pub(super) fn internal(e: anyhow::Error) -> AgentError {
    AgentError::Internal(format!("{e:#}"))
}

impl Agent {
    /// After a deploy task panicked (issue #12 §5): the store must say what the route
    /// serves, and no instance may run untracked. If the route already switched to the
    /// deploying release, that release is recorded `live`; otherwise it is `failed` and
    /// the instances started for it are stopped.
    pub(super) fn abandon_deploy(&self, stack: &str, why: &str) {
        let srt = lock(&self.stacks).get(stack).cloned();
        let store = &mut lock(&self.store);
        let Ok(Some(release)) = store.deploying_release(stack) else {
            return;
        };
        let routed = srt.as_ref().map(|s| s.table.load().release) == Some(release);
        let recorded = if routed {
            store.mark_release_live(stack, release)
        } else {
            store.mark_release_failed(stack, release, why)
        };
        if let Err(e) = recorded {
            eprintln!("drover agent: cannot record the end of release {release} of {stack}: {e:#}");
        }
        if let (false, Some(srt)) = (routed, srt) {
            for i in std::mem::take(&mut *lock(&srt.pending)) {
                i.request_stop();
            }
        }
    }

    pub(super) fn status(&self) -> AgentStatus {
        let stacks = lock(&self.stacks).values().cloned().collect::<Vec<_>>();
        AgentStatus {
            pid: std::process::id(),
            started_at: self.started_at.clone(),
            stacks: stacks
                .iter()
                .map(|s| {
                    let live = lock(&s.live);
                    let mut instances: Vec<InstanceStatus> = live
                        .instances
                        .iter()
                        .chain(&live.joining)
                        .map(|i| i.status())
                        .collect();
                    instances.extend(lock(&s.pending).iter().map(|i| i.status()));
                    if let Some(w) = lock(&s.warm).as_ref() {
                        instances.extend(w.instances.iter().map(|i| i.status()));
                    }
                    StackStatus {
                        stack: s.name.clone(),
                        route_port: s.port,
                        live_release: live.template.as_ref().map(|t| t.release),
                        build_id: live.template.as_ref().map(|_| live.build_id),
                        image_digest: live.template.as_ref().map(|t| t.image.digest.clone()),
                        replicas: live.replicas,
                        deploying: lock(&s.holder).clone(),
                        instances,
                        watching: lock(&s.watch).as_ref().map(|w| w.describe()),
                        stopped: lock(&s.stopped).clone(),
                    }
                })
                .collect(),
        }
    }
}
