//! The watch window run by the agent after a deploy: every [`watch::TICK`] it flushes the
//! route metrics, judges the new release ([`watch::judge`]) and, past a limit, rolls back
//! to the previous release through the same path as `drover rollback`. Both outcomes are
//! audited with the figures (`watch-rollback`, `watch-passed`); a watch whose release is
//! replaced meanwhile (another deploy or rollback) ends without a verdict.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::deploy::metrics::FLUSH_INTERVAL;
use crate::deploy::watch::{self, Verdict, Watching};
use crate::stack::Watch;
use crate::store::metrics::minute_of;

use super::model::StackRt;
use super::*;

/// Who a rollback by the watch is recorded as.
pub(super) const WATCH_USER: &str = "drover-watch";

impl Agent {
    /// Watch `release` of `srt` (live since `since`, replacing `previous`) under `policy`,
    /// in the background.
    pub(super) fn spawn_watch(
        self: &Arc<Self>,
        srt: &Arc<StackRt>,
        release: i64,
        previous: i64,
        policy: Watch,
    ) {
        let w = Watching {
            release,
            previous,
            since: SystemTime::now(),
            policy,
        };
        *lock(&srt.watch) = Some(w.clone());
        tokio::spawn(self.clone().watch(srt.clone(), w));
    }

    async fn watch(self: Arc<Self>, srt: Arc<StackRt>, w: Watching) {
        let stack = srt.name.clone();
        // The previous release over as long before the switch (whole minutes: the
        // store's buckets), at least the minute of the switch.
        let switch_minute = minute_of(w.since);
        let before = minute_of(w.since - w.policy.window);
        self.flush_metrics();
        let old = lock(&self.store)
            .route_metrics_total(&stack, w.previous, before, switch_minute)
            .unwrap_or_default();
        let verdict = loop {
            tokio::time::sleep(watch::TICK).await;
            let live = lock(&srt.live).template.as_ref().map(|t| t.release);
            if live != Some(w.release) {
                clear(&srt, w.release);
                return;
            }
            self.flush_metrics();
            let new = lock(&self.store)
                .route_metrics_total(&stack, w.release, switch_minute, i64::MAX)
                .unwrap_or_default();
            let elapsed = w.since.elapsed().unwrap_or(Duration::ZERO);
            match watch::judge(&w.policy, &new, &old, elapsed) {
                Verdict::Continue => continue,
                v => break v,
            }
        };
        clear(&srt, w.release);
        match verdict {
            Verdict::Failed(why) => self.watch_rollback(&stack, &w, &why).await,
            Verdict::Passed(how) => {
                let _ = lock(&self.store).audit(
                    "watch-passed",
                    Some(&stack),
                    &format!("release {}: {how}", w.release),
                );
            }
            Verdict::Continue => {}
        }
    }

    async fn watch_rollback(self: &Arc<Self>, stack: &str, w: &Watching, why: &str) {
        eprintln!(
            "drover agent: release {} of {stack} failed its watch ({why}); rolling back to \
             release {}",
            w.release, w.previous
        );
        let req = DeployRequest {
            stack: stack.to_string(),
            build: None,
            replicas: None,
            rollback: true,
            to: Some(w.previous),
            timeout_secs: None,
            grace_secs: Some(FLUSH_INTERVAL.as_secs().max(5)),
            by: WATCH_USER.to_string(),
        };
        let outcome = match self.clone().deploy(req).await {
            Ok(r) => format!(
                "rolled back to release {} as release {}",
                w.previous, r.release
            ),
            Err(e) => format!("the rollback to release {} failed: {e}", w.previous),
        };
        let detail = format!("release {}: {why}; {outcome}", w.release);
        let store = lock(&self.store);
        let _ = store.note_release_error(
            stack,
            w.release,
            &format!("rolled back by the watch window: {why}"),
        );
        let _ = store.audit("watch-rollback", Some(stack), &detail);
    }
}

/// End `srt`'s watch if it is still the one of `release`.
fn clear(srt: &StackRt, release: i64) {
    let mut g = lock(&srt.watch);
    if g.as_ref().is_some_and(|w| w.release == release) {
        *g = None;
    }
}
