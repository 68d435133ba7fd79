//! One stack's lifecycle without a new release (`POST /v1/lifecycle`): stop, start,
//! scale, restart. Each holds the stack's deploy lock (so it never races a deploy), acts
//! on the live release as the agent holds it (the stack definition stored with that
//! release: the stack file may be broken or gone) and is audited with its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deploy::api::{AgentError, LifecycleAction, LifecycleReport, LifecycleRequest};

use super::model::*;
use super::server::internal;
use super::*;

/// How long started instances get to become healthy before the action reports failure
/// (the supervisor keeps trying after that, as after a restore).
const HEALTHY_DEADLINE: Duration = crate::deploy::api::DEFAULT_HEALTH_TIMEOUT;

/// Most instances `scale` allows (as `deploy --replicas`).
const MAX_REPLICAS: usize = 64;

impl Agent {
    /// Run `req` on its stack. Errors carry the HTTP status for the API: no route or no
    /// live release (404), bad replicas or a stopped stack for scale/restart (400), a
    /// deploy or another action running (409), instances that did not become healthy
    /// (422).
    pub(super) async fn lifecycle(
        self: Arc<Self>,
        req: LifecycleRequest,
    ) -> ApiResult<LifecycleReport> {
        let t0 = Instant::now();
        let name = req.stack.clone();
        let action = req.action.as_str();
        let srt = lock(&self.stacks).get(&name).cloned().ok_or_else(|| {
            AgentError::NotFound(format!(
                "{name} has no route: nothing of it is deployed (`drover deploy {name}`)"
            ))
        })?;
        let _guard = srt.deploy_lock.try_lock().map_err(|_| {
            let holder = lock(&srt.holder).clone().unwrap_or_default();
            AgentError::Conflict(format!(
                "another deploy or action on {name} is running ({holder}); wait for it to \
                 finish (see `drover status`)"
            ))
        })?;
        *lock(&srt.holder) = Some(format!("{action} by {} since {}", req.by, now_rfc3339()));
        let result = self.lifecycle_locked(&req, &srt).await;
        *lock(&srt.holder) = None;
        {
            let store = lock(&self.store);
            match &result {
                Ok(r) => {
                    let detail = format!(
                        "release {} by {}: {} instance(s) behind the route{}{}{} in {:.0} ms",
                        r.release,
                        req.by,
                        r.instances.len(),
                        if r.started.is_empty() {
                            String::new()
                        } else {
                            format!(", started {}", r.started.join(" "))
                        },
                        if r.stopped_instances.is_empty() {
                            String::new()
                        } else {
                            format!(", drained and stopped {}", r.stopped_instances.join(" "))
                        },
                        if r.stopped { ", stopped" } else { "" },
                        t0.elapsed().as_secs_f64() * 1e3
                    );
                    let _ = store.audit(action, Some(&name), &detail);
                }
                Err(e) => {
                    let _ = store.audit(&format!("{action}-failed"), Some(&name), &e.to_string());
                }
            }
        }
        result.map(|mut r| {
            r.total_ms = t0.elapsed().as_secs_f64() * 1e3;
            r
        })
    }

    async fn lifecycle_locked(
        self: &Arc<Self>,
        req: &LifecycleRequest,
        srt: &Arc<StackRt>,
    ) -> ApiResult<LifecycleReport> {
        let name = &srt.name;
        let template = lock(&srt.live).template.clone().ok_or_else(|| {
            AgentError::NotFound(format!(
                "{name} has no live release (`drover deploy {name}` first)"
            ))
        })?;
        let release = template.release;
        let grace = Duration::from_secs(req.grace_secs.unwrap_or(30));
        let stopped = lock(&srt.stopped).is_some();
        let mut report = LifecycleReport {
            stack: name.clone(),
            action: req.action,
            release,
            replicas: lock(&srt.live).replicas,
            instances: Vec::new(),
            started: Vec::new(),
            stopped_instances: Vec::new(),
            stopped,
            total_ms: 0.0,
        };
        let refuse_stopped = |what: &str| {
            AgentError::BadInput(format!(
                "{name} is stopped: `drover start {name}` first, then {what}"
            ))
        };
        match req.action {
            LifecycleAction::Stop if stopped => {}
            LifecycleAction::Stop => {
                let note = {
                    let store = lock(&self.store);
                    store
                        .set_stack_stopped(name, Some(&req.by))
                        .map_err(internal)?;
                    store
                        .stack_stopped(name)
                        .map_err(internal)?
                        .unwrap_or_else(|| format!("by {}", req.by))
                };
                *lock(&srt.stopped) = Some(note);
                let mut out = srt.take_live_instances();
                let warm = lock(&srt.warm).take();
                if let Some(w) = warm {
                    out.extend(w.instances);
                    let _ = lock(&self.store).set_warm_release(name, None);
                }
                report.stopped_instances = drain_and_stop(out, grace).await.0;
                report.stopped = true;
            }
            LifecycleAction::Start => {
                if stopped {
                    lock(&self.store)
                        .set_stack_stopped(name, None)
                        .map_err(internal)?;
                    *lock(&srt.stopped) = None;
                    srt.publish(&lock(&srt.live));
                }
                report.stopped = false;
                let want = lock(&srt.live).replicas.max(1);
                report.started = self.grow(srt, release, want).await?;
            }
            LifecycleAction::Scale => {
                if stopped {
                    return Err(refuse_stopped("scale it"));
                }
                let want = req.replicas.unwrap_or(0);
                let recreate = template.stack.strategy() == crate::stack::Strategy::Recreate;
                if recreate && want > 1 {
                    return Err(AgentError::BadInput(format!(
                        "{name} deploys by \"recreate\" (its [data] volume is not `shared`): \
                         {want} instances would write one data directory; set `shared = \
                         true` in [data] if the app allows it"
                    )));
                }
                if !(1..=MAX_REPLICAS).contains(&want) {
                    return Err(AgentError::BadInput(format!(
                        "replicas must be 1 to {MAX_REPLICAS}, got {want} (`drover stop \
                         {name}` stops every instance)"
                    )));
                }
                lock(&srt.live).replicas = want;
                lock(&self.store)
                    .set_release_replicas(name, release, want as i64)
                    .map_err(internal)?;
                report.replicas = want;
                let extra = {
                    let mut live = lock(&srt.live);
                    let mut extra = Vec::new();
                    // Instances still joining go first, then the newest routed ones.
                    while live.instances.len() + live.joining.len() > want {
                        match live.joining.pop() {
                            Some(i) => extra.push(i),
                            None => extra.extend(live.instances.pop()),
                        }
                    }
                    srt.publish(&live);
                    extra
                };
                report.stopped_instances = drain_and_stop(extra, grace).await.0;
                report.started = self.grow(srt, release, want).await?;
            }
            LifecycleAction::Restart => {
                if stopped {
                    return Err(refuse_stopped("restart it"));
                }
                let old = lock(&srt.live).instances.clone();
                for o in old {
                    let new = self
                        .start_instance(srt, &template)
                        .map_err(|e| AgentError::ReleaseFailed(format!("{e:#}")))?;
                    lock(&srt.live).joining.push(new.clone());
                    report.started.push(new.id.clone());
                    if !self
                        .join_when_healthy(srt, release, vec![new.clone()])
                        .await
                    {
                        let check = lock(&new.state).last_check.clone();
                        return Err(AgentError::ReleaseFailed(format!(
                            "restart of {name} stopped: the new instance {} did not become \
                             healthy ({check}); {} keeps serving",
                            new.id, o.id
                        )));
                    }
                    {
                        let mut live = lock(&srt.live);
                        live.instances.retain(|i| !Arc::ptr_eq(i, &o));
                        srt.publish(&live);
                    }
                    report
                        .stopped_instances
                        .extend(drain_and_stop(vec![o], grace).await.0);
                }
            }
        }
        report.instances = lock(&srt.live)
            .instances
            .iter()
            .map(|i| i.id.clone())
            .collect();
        Ok(report)
    }

    /// Start instances of `release` until it has `want` (the supervisor's refill, in the
    /// background) and wait until that many are healthy behind the route; the ids
    /// started. Errors: not healthy within [`HEALTHY_DEADLINE`] (the refill goes on).
    pub(super) async fn grow(
        self: &Arc<Self>,
        srt: &Arc<StackRt>,
        release: i64,
        want: usize,
    ) -> ApiResult<Vec<String>> {
        let before: Vec<String> = {
            let live = lock(&srt.live);
            live.instances
                .iter()
                .chain(&live.joining)
                .map(|i| i.id.clone())
                .collect()
        };
        tokio::spawn(self.clone().refill(srt.clone(), release, Duration::ZERO));
        let deadline = Instant::now() + HEALTHY_DEADLINE;
        loop {
            let (healthy, ids, last) = {
                let live = lock(&srt.live);
                let healthy = live
                    .instances
                    .iter()
                    .filter(|i| i.backend.healthy())
                    .count();
                let ids: Vec<String> = live
                    .instances
                    .iter()
                    .chain(&live.joining)
                    .map(|i| i.id.clone())
                    .filter(|id| !before.contains(id))
                    .collect();
                let last = live
                    .joining
                    .last()
                    .map(|i| lock(&i.state).last_check.clone());
                (healthy, ids, last)
            };
            if healthy >= want {
                return Ok(ids);
            }
            if Instant::now() >= deadline {
                return Err(AgentError::ReleaseFailed(format!(
                    "{} of {want} instance(s) of {} release {release} healthy after {:?}; last \
                     check: {}; the supervisor keeps trying (see `drover status`)",
                    healthy,
                    srt.name,
                    HEALTHY_DEADLINE,
                    last.unwrap_or_else(|| "-".into())
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Wait until none of `out` (already out of the route) has a request in flight, at most
/// `grace`, then stop them and wait (at most their `stop_timeout` and 5 s more) for them
/// to exit; their ids, and whether every one exited.
pub(super) async fn drain_and_stop(
    out: Vec<Arc<Instance>>,
    grace: Duration,
) -> (Vec<String>, bool) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && out.iter().any(|i| i.backend.in_flight() > 0) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in &out {
        i.request_stop();
    }
    let stop_timeout = out.iter().map(|i| i.stop_with.1).max().unwrap_or_default();
    let deadline = Instant::now() + stop_timeout + Duration::from_secs(5);
    while Instant::now() < deadline && out.iter().any(|i| lock(&i.state).exited.is_none()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = out.iter().all(|i| lock(&i.state).exited.is_some());
    (out.iter().map(|i| i.id.clone()).collect(), gone)
}
