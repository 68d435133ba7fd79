//! Restore at start: every live release from the store (route, then instances), then the warm ones.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::model::*;
use super::*;

/// Restore every live release from the store: route first, then instances.
pub(super) async fn restore(agent: Arc<Agent>) {
    let live = match lock(&agent.store).live_releases() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("drover agent: cannot read the desired state: {e:#}");
            return;
        }
    };
    let warm = lock(&agent.store).warm_releases().unwrap_or_else(|e| {
        eprintln!("drover agent: cannot read the warm releases: {e:#}");
        Vec::new()
    });
    for r in live {
        let warm = warm.iter().find(|w| w.stack == r.stack).cloned();
        let agent2 = agent.clone();
        tokio::spawn(async move {
            let agent = agent2;
            let (stack, kept) = match agent.load_stack(&r.stack, true) {
                Ok(d) => {
                    let kept = d.warning();
                    if let Some(w) = &kept {
                        eprintln!("drover agent: restoring {}: {w}", r.stack);
                    }
                    (d.stack, kept)
                }
                Err(e) => {
                    eprintln!("drover agent: cannot restore {}: {e}", r.stack);
                    return;
                }
            };
            let srt = match agent.stack_rt(&stack).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "drover agent: cannot restore the route of {}: {e:#}",
                        r.stack
                    );
                    return;
                }
            };
            let build = match lock(&agent.store).build(r.build_id) {
                Ok(Some(b)) => b,
                _ => {
                    eprintln!("drover agent: build {} of {} is gone", r.build_id, r.stack);
                    return;
                }
            };
            let image = match agent.unpack_build(&stack, &build).await {
                Ok((i, _, _)) => i,
                Err(e) => {
                    eprintln!("drover agent: cannot restore {}: {e}", r.stack);
                    return;
                }
            };
            // A stopped stack gets its route back (answering 503 saying so), no instances.
            let stopped = lock(&agent.store).stack_stopped(&r.stack).unwrap_or(None);
            let is_stopped = stopped.is_some();
            *lock(&srt.stopped) = stopped;
            {
                let mut live = lock(&srt.live);
                live.template = Some(Template {
                    stack: stack.clone(),
                    image,
                    release: r.release,
                });
                live.build_id = r.build_id;
                live.replicas = r.replicas.max(1) as usize;
                srt.publish(&live);
            }
            let _ = lock(&agent.store).audit(
                "restore",
                Some(&r.stack),
                &format!(
                    "agent restored release {} on port {}{}{}",
                    r.release,
                    srt.port,
                    if is_stopped {
                        " (stopped: no instances)"
                    } else {
                        ""
                    },
                    kept.map(|w| format!("; {w}")).unwrap_or_default()
                ),
            );
            if is_stopped {
                return;
            }
            agent
                .clone()
                .refill(srt.clone(), r.release, Duration::ZERO)
                .await;
            if let Some(w) = warm.filter(|w| w.release != r.release) {
                agent.restore_warm(&srt, &stack, &w).await;
            }
        });
    }
}

impl Agent {
    /// Start the instances of the warm release `w` again (unrouted), as a restarted agent
    /// does after restoring the live release; forgets it when the stack no longer has
    /// `[deploy] keep_warm` or its build is gone.
    async fn restore_warm(
        self: &Arc<Self>,
        srt: &Arc<StackRt>,
        stack: &Stack,
        w: &crate::store::deploys::ReleaseRecord,
    ) {
        // Bound first: the store's lock must be released before the arms take it again.
        let found = lock(&self.store).build(w.build_id);
        let build = match found {
            Ok(Some(b)) if stack.deploy.keep_warm => b,
            _ => {
                let _ = lock(&self.store).set_warm_release(&srt.name, None);
                return;
            }
        };
        let image = match self.unpack_build(stack, &build).await {
            Ok((i, _, _)) => i,
            Err(e) => {
                eprintln!(
                    "drover agent: cannot restore the warm release of {}: {e}",
                    srt.name
                );
                let _ = lock(&self.store).set_warm_release(&srt.name, None);
                return;
            }
        };
        let template = Template {
            stack: stack.clone(),
            image,
            release: w.release,
        };
        let mut instances = Vec::new();
        for _ in 0..w.replicas.max(1) {
            match self.start_instance(srt, &template) {
                Ok(i) => {
                    i.warm.store(true, Ordering::SeqCst);
                    instances.push(i);
                }
                Err(e) => {
                    self.event(&srt.name, w.release, "-", "start-failed", &format!("{e:#}"));
                }
            }
        }
        let _ = lock(&self.store).audit(
            "restore",
            Some(&srt.name),
            &format!(
                "agent restored {} warm instance(s) of release {}",
                instances.len(),
                w.release
            ),
        );
        *lock(&srt.warm) = Some(WarmSet {
            template,
            build_id: w.build_id,
            instances,
        });
    }
}
