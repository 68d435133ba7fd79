//! [`LocalRuntime`]: the deploy state machine's view of the agent.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::model::*;
use super::*;

/// The deploy state machine's view of the agent.
pub(super) struct LocalRuntime {
    pub(super) agent: Arc<Agent>,
    pub(super) srt: Arc<StackRt>,
    pub(super) template: Template,
    pub(super) build_id: i64,
    pub(super) replicas: usize,
    /// The live release's template and build, taken at the switch (parked warm after).
    pub(super) replaced: Mutex<Option<(Template, i64)>>,
}

impl LocalRuntime {
    pub(super) fn last_log_lines(&self) -> Vec<String> {
        let pending = lock(&self.srt.pending).clone();
        pending
            .iter()
            .take(1)
            .flat_map(|i| self.srt.log.tail(&i.id, 15))
            .collect()
    }
}

impl machine::Runtime for LocalRuntime {
    type Instance = Arc<Instance>;

    fn start(&self, _index: usize) -> Result<Arc<Instance>> {
        let i = self.agent.start_instance(&self.srt, &self.template)?;
        lock(&self.srt.pending).push(i.clone());
        Ok(i)
    }

    fn check(&self, i: &Arc<Instance>) -> Check {
        let st = lock(&i.state);
        if let Some(e) = &st.exited {
            Check::Exited(e.clone())
        } else if i.backend.healthy() {
            Check::Healthy
        } else {
            Check::Pending(st.last_check.clone())
        }
    }

    fn run_test(&self, i: &Arc<Instance>) -> Option<machine::TestFuture<'_>> {
        let script = self.template.stack.scripts.test.clone()?;
        let spec = InstanceSpec {
            id: i.id.clone(),
            image: self.template.image.clone(),
            data: None,
            env: self
                .template
                .stack
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secrets: Vec::new(),
            port: i.port,
            outbound: false,
            links: Vec::new(),
        };
        let log = self.srt.log.clone();
        let net = i.net.clone();
        Some(Box::pin(async move {
            instance::run_test(&spec, &net, &script, &log).await
        }))
    }

    fn verified(&self, ok: bool, detail: &str) {
        let log = lock(&self.srt.pending)
            .first()
            .map(|i| self.srt.log.tail(&i.id, 30).join("\n"))
            .unwrap_or_default();
        let _ = lock(&self.agent.store).set_verification(
            self.build_id,
            ok,
            &format!("{detail}\n{log}"),
        );
    }

    fn switch(&self, new: &[Arc<Instance>]) -> Vec<Arc<Instance>> {
        // Warm instances a rollback promotes now serve the new release number.
        for i in new {
            i.release.store(self.template.release, Ordering::SeqCst);
            i.warm.store(false, Ordering::SeqCst);
        }
        let mut live = lock(&self.srt.live);
        let mut old = std::mem::replace(&mut live.instances, new.to_vec());
        // Instances still waiting to join the old release's route go with it.
        old.append(&mut live.joining);
        let replaced = live.template.replace(self.template.clone());
        let replaced_build = std::mem::replace(&mut live.build_id, self.build_id);
        live.replicas = self.replicas;
        // A deploy (or rollback) of a stopped stack starts it with the new release.
        if lock(&self.srt.stopped).take().is_some() {
            if let Err(e) = lock(&self.agent.store).set_stack_stopped(&self.srt.name, None) {
                eprintln!(
                    "drover agent: cannot record the start of {}: {e:#}",
                    self.srt.name
                );
            }
        }
        self.srt.publish(&live);
        drop(live);
        *lock(&self.replaced) = replaced.map(|t| (t, replaced_build));
        if let Some(w) = lock(&self.srt.warm).as_mut() {
            w.instances
                .retain(|i| !new.iter().any(|n| Arc::ptr_eq(i, n)));
        }
        let mut pending = lock(&self.srt.pending);
        pending.clear();
        pending.extend(old.iter().cloned());
        old
    }

    fn in_flight(&self, i: &Arc<Instance>) -> usize {
        i.backend.in_flight()
    }

    fn stop(&self, i: &Arc<Instance>) {
        i.request_stop();
    }

    fn park(&self, keep: Vec<Arc<Instance>>) -> Vec<Arc<Instance>> {
        let replaced = lock(&self.replaced).take();
        let (set, mut stop) = match replaced {
            Some((template, build_id)) if !keep.is_empty() => {
                for i in &keep {
                    i.warm.store(true, Ordering::SeqCst);
                }
                lock(&self.srt.pending).retain(|p| !keep.iter().any(|k| Arc::ptr_eq(p, k)));
                let set = WarmSet {
                    template,
                    build_id,
                    instances: keep,
                };
                (Some(set), Vec::new())
            }
            _ => (None, keep),
        };
        let release = set.as_ref().map(|w| w.template.release);
        if let Err(e) = lock(&self.agent.store).set_warm_release(&self.srt.name, release) {
            eprintln!("drover agent: cannot record the warm release: {e:#}");
        }
        let previous = std::mem::replace(&mut *lock(&self.srt.warm), set);
        stop.extend(previous.into_iter().flat_map(|w| w.instances));
        stop
    }
}
