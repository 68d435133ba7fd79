//! Deploy and rollback: pick the build, unpack it, run the state machine, record the outcome.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deploy::api::AgentError;

use super::model::*;
use super::runtime::LocalRuntime;
use super::server::internal;
use super::supervise::or_dash;
use super::*;

impl Agent {
    /// Deploy (or roll back) as `req` says. Errors carry the HTTP status for the API.
    pub(super) async fn deploy(self: Arc<Self>, req: DeployRequest) -> ApiResult<DeployReport> {
        let t0 = Instant::now();
        let definition = self.load_stack(&req.stack, req.rollback)?;
        let stack = &definition.stack;
        let srt = self.stack_rt(stack).await.map_err(internal)?;
        let _guard = match srt.deploy_lock.try_lock() {
            Ok(g) => g,
            Err(_) => {
                let holder = lock(&srt.holder).clone().unwrap_or_default();
                return Err(AgentError::Conflict(format!(
                    "another deploy of {} is running ({holder}); wait for it to finish \
                         (see `drover status`)",
                    stack.name
                )));
            }
        };
        let action = if req.rollback { "rollback" } else { "deploy" };
        *lock(&srt.holder) = Some(format!("{action} by {} since {}", req.by, now_rfc3339()));
        let result = self.deploy_locked(&req, &definition, &srt, t0).await;
        *lock(&srt.holder) = None;
        lock(&srt.pending).clear();
        result
    }

    async fn deploy_locked(
        self: &Arc<Self>,
        req: &DeployRequest,
        definition: &crate::deploy::definition::Definition,
        srt: &Arc<StackRt>,
        t0: Instant,
    ) -> ApiResult<DeployReport> {
        let stack = &definition.stack;
        let action = if req.rollback { "rollback" } else { "deploy" };
        let (current, current_build, current_replicas) = {
            let live = lock(&srt.live);
            (
                live.template.as_ref().map(|t| t.release),
                live.build_id,
                live.replicas,
            )
        };
        // Which build, as which rollback, with how many replicas: the same decision the
        // CLI and the console make before they call.
        let (build_id, rollback_of, replicas) = {
            let store = lock(&self.store);
            let releases = store.releases(&stack.name).map_err(internal)?;
            let wanted = crate::deploy::plan::request_build(&store, req).map_err(internal)?;
            let cur = current.map(|release| crate::deploy::plan::Current {
                release,
                build_id: current_build,
                replicas: current_replicas,
            });
            let t = crate::deploy::plan::resolve(req, &releases, cur, wanted.as_ref())?;
            (t.build_id, t.rollback_of, t.replicas)
        };
        // Every linked stack must be live before anything of this deploy happens.
        for (alias, name) in &stack.links {
            let live = lock(&self.stacks)
                .get(name)
                .is_some_and(|l| lock(&l.live).template.is_some());
            if !live {
                return Err(AgentError::BadInput(crate::deploy::links::not_live(
                    &stack.name,
                    alias,
                    name,
                )));
            }
        }
        let recreate = stack.strategy() == crate::stack::Strategy::Recreate;
        if recreate && replicas > 1 {
            return Err(AgentError::BadInput(format!(
                "{} deploys by \"recreate\" (its [data] volume is not `shared`): {replicas} \
                 replicas would be {replicas} writers of one data directory; deploy 1, or set \
                 `shared = true` in [data] if the app allows it",
                stack.name
            )));
        }
        let build = lock(&self.store)
            .build(build_id)
            .map_err(internal)?
            .ok_or_else(|| AgentError::NotFound(format!("build {build_id} is gone")))?;
        let digest = build.image_digest.clone().unwrap_or_default();
        let (image, unpacked, unpack_time) = self.unpack_build(stack, &build).await?;
        let warnings: Vec<String> = definition
            .warning()
            .into_iter()
            .chain(
                crate::deploy::secrets::resolve(&self.paths.config, &stack.name, &stack.secrets)
                    .map_err(|e| AgentError::BadInput(format!("{e:#}")))?
                    .warning(&self.paths.config, &stack.name),
            )
            .collect();
        let release = {
            let mut store = lock(&self.store);
            let release = store
                .create_release(
                    &stack.name,
                    build_id,
                    &digest,
                    replicas as i64,
                    &req.by,
                    rollback_of,
                )
                .map_err(internal)?;
            // Kept so this release stays operable if the file breaks later.
            if let Err(e) = store.set_release_stack_toml(&stack.name, release, &definition.text) {
                let why = format!("cannot keep the stack definition with the release: {e:#}");
                let _ = store.mark_release_failed(&stack.name, release, &why);
                return Err(AgentError::Internal(why));
            }
            release
        };
        let template = Template {
            stack: stack.clone(),
            image,
            release,
        };
        let rt = LocalRuntime {
            agent: self.clone(),
            srt: srt.clone(),
            template: template.clone(),
            build_id,
            replicas,
            replaced: Mutex::new(None),
        };
        let plan = Plan {
            replicas,
            healthy_timeout: req
                .timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(crate::deploy::api::DEFAULT_HEALTH_TIMEOUT),
            drain_grace: Duration::from_secs(req.grace_secs.unwrap_or(30)),
            poll: Duration::from_millis(10),
            keep_warm: stack.deploy.keep_warm,
        };
        // Recreate: the old release is drained and gone before the new one starts on the
        // same data (the route answers 503 meanwhile).
        let stop_started = Instant::now();
        let recreated = if recreate && current.is_some() {
            let old = srt.take_live_instances();
            let (_, gone) = super::lifecycle::drain_and_stop(old, plan.drain_grace).await;
            if !gone {
                let why = "the previous release's instances did not exit: the new release was \
                           not started (two writers on one data directory)";
                let _ = lock(&self.store).mark_release_failed(&stack.name, release, why);
                return Err(AgentError::ReleaseFailed(why.into()));
            }
            true
        } else {
            false
        };
        let result = if req.rollback {
            let warm = warm_instances(srt, stack, build_id);
            machine::rollback(&rt, plan, warm).await
        } else {
            machine::deploy(&rt, plan).await
        };
        match result {
            Ok(out) => {
                let unavailable_ms = recreated
                    .then(|| (stop_started.elapsed() - out.drain_time).as_secs_f64() * 1e3);
                srt.failures.store(0, Ordering::SeqCst);
                self.collect_unpacked();
                let store = &mut lock(&self.store);
                store
                    .mark_release_live(&stack.name, release)
                    .map_err(internal)?;
                if let Some(ms) = unavailable_ms {
                    // Only a hint for the next confirmation: a failure here is not the deploy's.
                    let _ = store.set_release_unavailable_ms(&stack.name, release, ms);
                }
                let how = match (&out.cold_reason, out.warm) {
                    (_, true) => " to its warm instances".to_string(),
                    (Some(why), false) => format!(" with new instances ({why})"),
                    (None, false) => String::new(),
                };
                let detail = format!(
                    "release {release} (build {build_id}, {digest}) live with {replicas} instance(s){how}; \
                     route switched in {:?}, previous release {} drained in {:?}{}{}",
                    out.switch_time,
                    or_dash(current),
                    out.drain_time,
                    if out.drained_cleanly { "" } else { " (grace ran out)" },
                    if out.kept_warm > 0 { " and kept warm" } else { "" }
                );
                let _ = store.audit(action, Some(&stack.name), &detail);
                // A rollback is the way back, not watched; a first deploy has nothing to
                // go back to.
                let watching = match (&stack.deploy.watch, current, req.rollback) {
                    (Some(policy), Some(previous), false) => {
                        self.spawn_watch(srt, release, previous, policy.clone());
                        lock(&srt.watch).as_ref().map(|w| w.describe())
                    }
                    _ => {
                        *lock(&srt.watch) = None;
                        None
                    }
                };
                Ok(DeployReport {
                    stack: stack.name.clone(),
                    release,
                    build_id,
                    image_digest: digest,
                    previous_release: current,
                    rollback_of,
                    route_port: srt.port,
                    instances: out.instances.iter().map(|i| i.id.clone()).collect(),
                    switch_ms: out.switch_time.as_secs_f64() * 1e3,
                    drain_ms: out.drain_time.as_secs_f64() * 1e3,
                    total_ms: t0.elapsed().as_secs_f64() * 1e3,
                    unpack_ms: unpack_time.as_secs_f64() * 1e3,
                    layers_unpacked: unpacked.layers.iter().filter(|l| l.unpacked).count(),
                    layers_cached: unpacked.layers.iter().filter(|l| !l.unpacked).count(),
                    warm: out.warm,
                    cold_reason: out.cold_reason,
                    kept_warm: out.kept_warm,
                    warnings,
                    watching,
                    strategy: stack.strategy().as_str().to_string(),
                    unavailable_ms,
                })
            }
            Err(e) => {
                let tail = rt.last_log_lines();
                let mut msg = format!(
                    "{action} of {} release {release} (build {build_id}) failed: {e}",
                    stack.name
                );
                if let (true, Some(c)) = (recreated, current) {
                    msg.push_str(
                        &match self.restart_previous(srt, current, current_replicas).await {
                            Ok(()) => {
                                format!("\nrelease {c} started again on the same data (recreate)")
                            }
                            Err(e) => format!("\nrelease {c} could not be started again: {e}"),
                        },
                    );
                } else if let Some(c) = current {
                    msg.push_str(&format!("\nrelease {c} keeps serving"));
                }
                if !tail.is_empty() {
                    msg.push_str("\nlast instance log lines:\n");
                    msg.push_str(&tail.join("\n"));
                }
                let store = lock(&self.store);
                let _ = store.mark_release_failed(&stack.name, release, &e.to_string());
                let _ = store.audit(
                    &format!("{action}-failed"),
                    Some(&stack.name),
                    &e.to_string(),
                );
                Err(AgentError::ReleaseFailed(msg))
            }
        }
    }

    /// After a failed recreate: start the previous live release (still the agent's live
    /// template: the route never switched) again with `replicas` instances.
    async fn restart_previous(
        self: &Arc<Self>,
        srt: &Arc<StackRt>,
        current: Option<i64>,
        replicas: usize,
    ) -> ApiResult<()> {
        let Some(release) = current else {
            return Ok(());
        };
        self.grow(srt, release, replicas.max(1)).await.map(|_| ())
    }

    pub(super) async fn unpack_build(
        &self,
        stack: &Stack,
        build: &crate::store::builds::BuildRecord,
    ) -> ApiResult<(UnpackedImage, UnpackReport, Duration)> {
        let digest = build.image_digest.clone().unwrap_or_default();
        let archive = build
            .image_path
            .clone()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                self.paths
                    .images()
                    .join(&stack.name)
                    .join(format!("{}.oci.tar", build.id))
            });
        let state = self.paths.state.clone();
        let mounts: Vec<String> = stack.data.iter().map(|d| d.path.clone()).collect();
        let name = stack.name.clone();
        tokio::task::spawn_blocking(move || {
            let m: Vec<&str> = mounts.iter().map(String::as_str).collect();
            let t = Instant::now();
            let r = unpack::unpack(&state, &archive, &digest, &m);
            if let Ok((_, report)) = &r {
                if report.assembled {
                    let layers: Vec<String> = report
                        .layers
                        .iter()
                        .map(|l| {
                            let how = if l.unpacked { "unpacked" } else { "cached" };
                            format!("{} {how} in {:?}", l.digest, l.elapsed)
                        })
                        .collect();
                    eprintln!(
                        "drover agent: unpacked {name} image {digest} in {:?} (layers: {})",
                        t.elapsed(),
                        layers.join(", ")
                    );
                }
            }
            r.map(|(image, report)| (image, report, t.elapsed()))
        })
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(|e| {
            AgentError::ReleaseFailed(format!(
                "{e:#}\n(was the image pruned? rebuild with `drover build {}`)",
                stack.name
            ))
        })
    }
}

/// The instances a rollback to `build_id` can switch to at once: the stack's warm set when
/// it runs that build with the stack file as it is now (the `[deploy]` table aside), else
/// why not.
fn warm_instances(
    srt: &StackRt,
    stack: &Stack,
    build_id: i64,
) -> std::result::Result<Vec<Arc<Instance>>, String> {
    let warm = lock(&srt.warm);
    let Some(w) = warm.as_ref() else {
        return Err(if stack.deploy.keep_warm {
            format!("no release of {} is kept warm", stack.name)
        } else {
            format!(
                "no release of {} is kept warm ([deploy] keep_warm is off)",
                stack.name
            )
        });
    };
    if w.build_id != build_id {
        return Err(format!(
            "the warm release {} runs build {}, not build {build_id}",
            w.template.release, w.build_id
        ));
    }
    let same_config = Stack {
        deploy: stack.deploy.clone(),
        ..w.template.stack.clone()
    } == *stack;
    if !same_config {
        return Err(format!(
            "{} changed since the warm release {} started",
            stack.file.display(),
            w.template.release
        ));
    }
    Ok(w.instances.clone())
}
