//! The blue-green deploy state machine, independent of how instances run:
//!
//! verify (start one instance, wait until healthy, run the stack's `test` script) → start the other N−1 → wait until all
//! are healthy (deploy timeout) → switch the route in one step → drain the old instances
//! (until their in-flight requests end, at most the grace) → stop them.
//!
//! If a new instance exits or never becomes healthy before the timeout, every new instance
//! is stopped, the route is never switched, and the error carries the last health check.
//!
//! With `keep_warm` (the stack's `[deploy] keep_warm`), the drained instances are not
//! stopped but parked as the stack's one warm release (unrouted, still health-checked);
//! the release parked before them is stopped. A [`rollback`] to the warm release switches
//! the route to its instances at once when they are all healthy (no start, no
//! verification), and falls back to the full [`deploy`] path when they are not.
//! The agent implements [`Runtime`] with real bubblewrap instances; unit tests use a
//! scripted one.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A running `test` script: resolves to `Err(what it printed)` on failure.
pub type TestFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// What a [`Runtime`] reports about one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Its health check passed.
    Healthy,
    /// Not healthy yet; the last check's outcome (status and body, or the error).
    Pending(String),
    /// The instance exited; its exit status.
    Exited(String),
}

/// The effects the state machine needs. All calls are quick and non-blocking.
pub trait Runtime {
    /// A handle on one started instance.
    type Instance: Clone;
    /// Start the `index`th instance (0-based) of the new release.
    fn start(&self, index: usize) -> anyhow::Result<Self::Instance>;
    /// Current health of an instance.
    fn check(&self, i: &Self::Instance) -> Check;
    /// The stack's `test` script run against a healthy instance: `None` when the stack has
    /// none, else a future giving `Err(output)` when it failed.
    fn run_test(&self, i: &Self::Instance) -> Option<TestFuture<'_>>;
    /// Verification finished (the first instance was healthy, or not), with detail.
    fn verified(&self, ok: bool, detail: &str);
    /// Switch the route to `new` in one step; returns the instances it replaced.
    fn switch(&self, new: &[Self::Instance]) -> Vec<Self::Instance>;
    /// Requests in flight on an instance.
    fn in_flight(&self, i: &Self::Instance) -> usize;
    /// Stop an instance (asynchronously; returns at once).
    fn stop(&self, i: &Self::Instance);
    /// Make `keep` the stack's warm instances (running, unrouted), in place of the
    /// current warm set, which is returned for the machine to stop. `keep` is empty when
    /// nothing is to be kept warm.
    fn park(&self, keep: Vec<Self::Instance>) -> Vec<Self::Instance>;
}

/// Timing of a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Instances of the new release (at least 1).
    pub replicas: usize,
    /// How long new instances get to become healthy (default 30 s).
    pub healthy_timeout: Duration,
    /// How long old instances get to finish in-flight requests (default 30 s).
    pub drain_grace: Duration,
    /// Polling period.
    pub poll: Duration,
    /// Park the drained instances as the warm release instead of stopping them.
    pub keep_warm: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            replicas: 1,
            healthy_timeout: Duration::from_secs(30),
            drain_grace: Duration::from_secs(30),
            poll: Duration::from_millis(25),
            keep_warm: false,
        }
    }
}

/// A successful deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<I> {
    /// The new instances (now behind the route).
    pub instances: Vec<I>,
    /// How many instances were stopped: the drained ones (unless kept warm) and the
    /// previous warm set.
    pub stopped: usize,
    /// How many drained instances were parked warm instead of stopped.
    pub kept_warm: usize,
    /// True when a rollback switched to the still-running warm instances (nothing started).
    pub warm: bool,
    /// For a rollback that could not use warm instances: why (then new ones were started).
    pub cold_reason: Option<String>,
    /// From "all new instances healthy" to "route switched".
    pub switch_time: Duration,
    /// From the switch until the old instances had no request in flight (or the grace).
    pub drain_time: Duration,
    /// False when the grace ran out with requests still in flight.
    pub drained_cleanly: bool,
}

/// Why a deploy failed. The old release keeps serving in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// An instance could not be started at all.
    #[error("cannot start instance {index}: {message}")]
    Start {
        /// Which instance.
        index: usize,
        /// The error.
        message: String,
    },
    /// The first instance did not pass verification.
    #[error("verification failed: the first instance never became healthy within {timeout:?}; last health check: {last}")]
    VerifyFailed {
        /// The timeout.
        timeout: Duration,
        /// The last check (status and body).
        last: String,
    },
    /// A new instance did not become healthy in time.
    #[error("the new release never became healthy within {timeout:?}; last health check: {last}")]
    NeverHealthy {
        /// The timeout.
        timeout: Duration,
        /// The last check (status and body).
        last: String,
    },
    /// The stack's `test` script failed against the first instance.
    #[error("verification failed: the test script failed: {output}")]
    TestFailed {
        /// Its exit status and last output lines.
        output: String,
    },
    /// A new instance exited before the switch.
    #[error("instance {index} of the new release exited before becoming healthy ({status})")]
    Crashed {
        /// Which instance.
        index: usize,
        /// Exit status.
        status: String,
    },
}

async fn wait_healthy<R: Runtime + Sync>(
    rt: &R,
    instances: &[R::Instance],
    first_index: usize,
    deadline: Instant,
    poll: Duration,
) -> Result<(), (bool, DeployError)> {
    loop {
        let mut all = true;
        let mut last = String::from("no check yet");
        for (k, i) in instances.iter().enumerate() {
            match rt.check(i) {
                Check::Healthy => {}
                Check::Pending(l) => {
                    all = false;
                    last = l;
                }
                Check::Exited(status) => {
                    return Err((
                        false,
                        DeployError::Crashed {
                            index: first_index + k,
                            status,
                        },
                    ))
                }
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err((
                true,
                DeployError::NeverHealthy {
                    timeout: Duration::ZERO,
                    last,
                },
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Run one deploy with `plan` against `rt`. On error every new instance has been stopped
/// and the route was not touched.
pub async fn deploy<R: Runtime + Sync>(
    rt: &R,
    plan: Plan,
) -> Result<Outcome<R::Instance>, DeployError> {
    let started = Instant::now();
    let deadline = started + plan.healthy_timeout;
    let mut new: Vec<R::Instance> = Vec::new();
    let fail = |new: &[R::Instance], e: DeployError| {
        for i in new {
            rt.stop(i);
        }
        Err(e)
    };
    // 1. verify: one instance must become healthy.
    match rt.start(0) {
        Ok(i) => new.push(i),
        Err(e) => {
            let e = DeployError::Start {
                index: 0,
                message: format!("{e:#}"),
            };
            rt.verified(false, &e.to_string());
            return Err(e);
        }
    }
    if let Err((timed_out, e)) = wait_healthy(rt, &new, 0, deadline, plan.poll).await {
        let e = match (timed_out, e) {
            (true, DeployError::NeverHealthy { last, .. }) => DeployError::VerifyFailed {
                timeout: plan.healthy_timeout,
                last,
            },
            (_, e) => e,
        };
        rt.verified(false, &e.to_string());
        return fail(&new, e);
    }
    let (passed, test) = match rt.run_test(&new[0]) {
        Some(t) => ("its health check and the test script", Some(t.await)),
        None => ("its health check (the stack has no test script)", None),
    };
    if let Some(Err(output)) = test {
        let e = DeployError::TestFailed { output };
        rt.verified(false, &e.to_string());
        return fail(&new, e);
    }
    rt.verified(true, &format!("the first instance passed {passed}"));
    // 2. the other instances.
    for index in 1..plan.replicas.max(1) {
        match rt.start(index) {
            Ok(i) => new.push(i),
            Err(e) => {
                return fail(
                    &new,
                    DeployError::Start {
                        index,
                        message: format!("{e:#}"),
                    },
                )
            }
        }
    }
    if let Err((_, e)) = wait_healthy(rt, &new, 0, deadline, plan.poll).await {
        let e = match e {
            DeployError::NeverHealthy { last, .. } => DeployError::NeverHealthy {
                timeout: plan.healthy_timeout,
                last,
            },
            e => e,
        };
        return fail(&new, e);
    }
    Ok(switch_drain_retire(rt, plan, new, false).await)
}

/// Switch the route to `new` in one step, drain the instances it replaced (at most the
/// grace), then park them warm or stop them, as `plan.keep_warm` says.
async fn switch_drain_retire<R: Runtime + Sync>(
    rt: &R,
    plan: Plan,
    new: Vec<R::Instance>,
    warm: bool,
) -> Outcome<R::Instance> {
    let t = Instant::now();
    let old = rt.switch(&new);
    let switch_time = t.elapsed();
    let t = Instant::now();
    let drain_deadline = t + plan.drain_grace;
    let drained_cleanly = loop {
        if old.iter().all(|i| rt.in_flight(i) == 0) {
            break true;
        }
        if Instant::now() >= drain_deadline {
            break false;
        }
        tokio::time::sleep(plan.poll).await;
    };
    let drain_time = t.elapsed();
    let (keep, mut stop) = if plan.keep_warm {
        (old, Vec::new())
    } else {
        (Vec::new(), old)
    };
    let kept_warm = keep.len();
    stop.extend(rt.park(keep));
    for i in &stop {
        rt.stop(i);
    }
    Outcome {
        instances: new,
        stopped: stop.len(),
        kept_warm,
        warm,
        cold_reason: None,
        switch_time,
        drain_time,
        drained_cleanly,
    }
}

/// Why `warm` cannot take the route at once, or `None` when it can: exactly `replicas`
/// instances, every one healthy now.
fn warm_unusable<R: Runtime>(rt: &R, warm: &[R::Instance], replicas: usize) -> Option<String> {
    if warm.len() != replicas.max(1) {
        return Some(format!(
            "{} warm instance(s) running, {} wanted",
            warm.len(),
            replicas.max(1)
        ));
    }
    warm.iter()
        .enumerate()
        .find_map(|(k, i)| match rt.check(i) {
            Check::Healthy => None,
            Check::Pending(last) => Some(format!("warm instance {k} is not healthy: {last}")),
            Check::Exited(status) => Some(format!("warm instance {k} exited ({status})")),
        })
}

/// Roll back to a release whose instances may still be running warm. `warm` is those
/// instances, or why there are none. When they are exactly `plan.replicas` instances and
/// all healthy, the route switches to them at once (nothing is started or verified) and
/// the current release is drained, then parked or stopped as `plan.keep_warm` says;
/// `Outcome::warm` is true. Otherwise the rollback takes the full [`deploy`] path (new
/// instances of the target build) and `Outcome::cold_reason` says why.
pub async fn rollback<R: Runtime + Sync>(
    rt: &R,
    plan: Plan,
    warm: Result<Vec<R::Instance>, String>,
) -> Result<Outcome<R::Instance>, DeployError> {
    let unusable = match &warm {
        Ok(w) => warm_unusable(rt, w, plan.replicas),
        Err(why) => Some(why.clone()),
    };
    match (unusable, warm) {
        (None, Ok(w)) => Ok(switch_drain_retire(rt, plan, w, true).await),
        (why, _) => {
            let mut out = deploy(rt, plan).await?;
            out.cold_reason = why;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A scripted runtime: instance `i` becomes healthy after `healthy_after[i]` checks
    /// (None: never), or exits after `crash_after[i]` checks.
    #[derive(Default)]
    struct Script {
        healthy_after: Vec<Option<usize>>,
        crash_after: Vec<Option<usize>>,
        checks: Mutex<Vec<usize>>,
        stopped: Mutex<Vec<String>>,
        switched: Mutex<Vec<Vec<String>>>,
        verified: Mutex<Option<bool>>,
        old: Vec<String>,
        old_in_flight: Mutex<usize>,
        test_fails: Option<bool>,
        /// The warm set (`park` replaces it; `switch` takes out what it routes).
        warm: Mutex<Vec<String>>,
        /// What `check` says of `warm{k}`.
        warm_checks: Vec<Check>,
    }

    impl Runtime for Script {
        type Instance = String;
        fn start(&self, index: usize) -> anyhow::Result<String> {
            self.checks.lock().unwrap().push(0);
            Ok(format!("new{index}"))
        }
        fn check(&self, i: &String) -> Check {
            if let Some(k) = i.strip_prefix("warm") {
                return self.warm_checks[k.parse::<usize>().unwrap()].clone();
            }
            let k: usize = i[3..].parse().unwrap();
            let mut checks = self.checks.lock().unwrap();
            checks[k] += 1;
            if let Some(Some(c)) = self.crash_after.get(k) {
                if checks[k] > *c {
                    return Check::Exited("killed by signal 9".into());
                }
            }
            match self.healthy_after[k] {
                Some(h) if checks[k] > h => Check::Healthy,
                _ => Check::Pending("HTTP 503, body \"booting\"".into()),
            }
        }
        fn run_test(&self, _: &String) -> Option<TestFuture<'_>> {
            self.test_fails.map(|fails| {
                Box::pin(async move {
                    if fails {
                        Err("exit status: 1: expected hello".to_string())
                    } else {
                        Ok(())
                    }
                }) as TestFuture<'_>
            })
        }
        fn verified(&self, ok: bool, _: &str) {
            *self.verified.lock().unwrap() = Some(ok);
        }
        fn switch(&self, new: &[String]) -> Vec<String> {
            self.switched.lock().unwrap().push(new.to_vec());
            self.warm.lock().unwrap().retain(|w| !new.contains(w));
            self.old.clone()
        }
        fn in_flight(&self, i: &String) -> usize {
            if i.starts_with("old") {
                let mut n = self.old_in_flight.lock().unwrap();
                let v = *n;
                *n = n.saturating_sub(1);
                v
            } else {
                0
            }
        }
        fn stop(&self, i: &String) {
            self.stopped.lock().unwrap().push(i.clone());
        }
        fn park(&self, keep: Vec<String>) -> Vec<String> {
            std::mem::replace(&mut *self.warm.lock().unwrap(), keep)
        }
    }

    fn plan(replicas: usize) -> Plan {
        Plan {
            replicas,
            healthy_timeout: Duration::from_millis(300),
            drain_grace: Duration::from_millis(200),
            poll: Duration::from_millis(5),
            keep_warm: false,
        }
    }

    fn warm_plan(replicas: usize) -> Plan {
        Plan {
            keep_warm: true,
            ..plan(replicas)
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn healthy_release_switches_once_then_drains_and_stops_the_old() {
        let s = Script {
            healthy_after: vec![Some(2), Some(0), Some(3)],
            old: vec!["old0".into(), "old1".into()],
            old_in_flight: Mutex::new(3),
            ..Default::default()
        };
        let out = deploy(&s, plan(3)).await.unwrap();
        assert_eq!(out.instances, vec!["new0", "new1", "new2"]);
        assert_eq!(*s.switched.lock().unwrap(), vec![out.instances.clone()]);
        assert_eq!(*s.verified.lock().unwrap(), Some(true));
        assert_eq!(*s.stopped.lock().unwrap(), vec!["old0", "old1"]);
        assert_eq!(out.stopped, 2);
        assert!(out.drained_cleanly);
        assert!(out.switch_time < Duration::from_millis(10));
    }

    #[tokio::test]
    async fn never_healthy_fails_with_the_last_check_and_keeps_the_old_release() {
        let s = Script {
            healthy_after: vec![None],
            old: vec!["old0".into()],
            ..Default::default()
        };
        let err = deploy(&s, plan(2)).await.unwrap_err();
        assert!(matches!(err, DeployError::VerifyFailed { .. }), "{err}");
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        assert!(
            s.switched.lock().unwrap().is_empty(),
            "route never switched"
        );
        assert_eq!(*s.stopped.lock().unwrap(), vec!["new0"], "old not stopped");
        assert_eq!(*s.verified.lock().unwrap(), Some(false));

        // Verified, but the second instance never becomes healthy.
        let s = Script {
            healthy_after: vec![Some(0), None],
            ..Default::default()
        };
        let err = deploy(&s, plan(2)).await.unwrap_err();
        assert!(matches!(err, DeployError::NeverHealthy { .. }), "{err}");
        assert!(s.switched.lock().unwrap().is_empty());
        assert_eq!(*s.stopped.lock().unwrap(), vec!["new0", "new1"]);
    }

    #[tokio::test]
    async fn a_crash_mid_deploy_fails_fast_without_switching() {
        let s = Script {
            healthy_after: vec![Some(0), None],
            crash_after: vec![None, Some(1)],
            old: vec!["old0".into()],
            ..Default::default()
        };
        let t = Instant::now();
        let err = deploy(&s, plan(2)).await.unwrap_err();
        assert_eq!(
            err,
            DeployError::Crashed {
                index: 1,
                status: "killed by signal 9".into()
            }
        );
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "did not wait for the timeout"
        );
        assert!(s.switched.lock().unwrap().is_empty());
        assert_eq!(*s.stopped.lock().unwrap(), vec!["new0", "new1"]);
    }

    #[tokio::test]
    async fn a_failing_test_script_fails_verification() {
        let s = Script {
            healthy_after: vec![Some(0), Some(0)],
            old: vec!["old0".into()],
            test_fails: Some(true),
            ..Default::default()
        };
        let err = deploy(&s, plan(2)).await.unwrap_err();
        assert!(matches!(err, DeployError::TestFailed { .. }), "{err}");
        assert!(err.to_string().contains("expected hello"));
        assert!(s.switched.lock().unwrap().is_empty());
        assert_eq!(
            *s.stopped.lock().unwrap(),
            vec!["new0"],
            "never started the rest"
        );
        assert_eq!(*s.verified.lock().unwrap(), Some(false));
        let s = Script {
            healthy_after: vec![Some(0)],
            test_fails: Some(false),
            ..Default::default()
        };
        deploy(&s, plan(1)).await.unwrap();
        assert_eq!(*s.verified.lock().unwrap(), Some(true));
    }

    #[tokio::test]
    async fn drain_timeout_stops_the_old_instances_anyway() {
        let s = Script {
            healthy_after: vec![Some(0)],
            old: vec!["old0".into()],
            old_in_flight: Mutex::new(usize::MAX),
            ..Default::default()
        };
        let out = deploy(&s, plan(1)).await.unwrap();
        assert!(!out.drained_cleanly);
        assert!(out.drain_time >= Duration::from_millis(200));
        assert_eq!(*s.stopped.lock().unwrap(), vec!["old0"]);
    }

    /// One healthy new instance, one old routed and one warm unrouted.
    fn one_old_one_warm() -> Script {
        Script {
            healthy_after: vec![Some(0)],
            old: strings(&["old0"]),
            warm: Mutex::new(strings(&["warm0"])),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn keep_warm_parks_the_drained_release_and_stops_the_older_warm_one() {
        let s = one_old_one_warm();
        let out = deploy(&s, warm_plan(1)).await.unwrap();
        assert_eq!(*s.warm.lock().unwrap(), vec!["old0"], "old release parked");
        assert_eq!(
            *s.stopped.lock().unwrap(),
            vec!["warm0"],
            "older warm stopped"
        );
        assert_eq!((out.kept_warm, out.stopped, out.warm), (1, 1, false));
        // Without keep_warm, both the drained and the warm instances stop.
        let s = one_old_one_warm();
        let out = deploy(&s, plan(1)).await.unwrap();
        assert!(s.warm.lock().unwrap().is_empty());
        assert_eq!(*s.stopped.lock().unwrap(), vec!["old0", "warm0"]);
        assert_eq!((out.kept_warm, out.stopped), (0, 2));
    }

    #[tokio::test]
    async fn rollback_to_healthy_warm_instances_switches_at_once() {
        let s = Script {
            old: strings(&["old0", "old1"]),
            old_in_flight: Mutex::new(2),
            warm: Mutex::new(strings(&["warm0", "warm1"])),
            warm_checks: vec![Check::Healthy, Check::Healthy],
            ..Default::default()
        };
        let warm = Ok(strings(&["warm0", "warm1"]));
        let out = rollback(&s, warm_plan(2), warm).await.unwrap();
        assert!(out.warm && out.cold_reason.is_none(), "{out:?}");
        assert_eq!(out.instances, vec!["warm0", "warm1"]);
        assert_eq!(*s.switched.lock().unwrap(), vec![out.instances.clone()]);
        assert!(s.checks.lock().unwrap().is_empty(), "nothing was started");
        assert_eq!(*s.verified.lock().unwrap(), None, "nothing re-verified");
        assert!(out.drained_cleanly);
        // The release it replaced is now the warm one; nothing stopped.
        assert_eq!(*s.warm.lock().unwrap(), vec!["old0", "old1"]);
        assert!(s.stopped.lock().unwrap().is_empty());
        assert_eq!((out.kept_warm, out.stopped), (2, 0));
    }

    #[tokio::test]
    async fn rollback_falls_back_to_new_instances_when_warm_ones_cannot_serve() {
        type Case = (Vec<Check>, Result<Vec<String>, String>, &'static str);
        let cases: Vec<Case> = vec![
            (
                vec![
                    Check::Healthy,
                    Check::Pending("HTTP 503, body \"db\"".into()),
                ],
                Ok(strings(&["warm0", "warm1"])),
                "warm instance 1 is not healthy: HTTP 503",
            ),
            (
                vec![Check::Exited("killed by signal 9".into()), Check::Healthy],
                Ok(strings(&["warm0", "warm1"])),
                "warm instance 0 exited (killed by signal 9)",
            ),
            (
                vec![Check::Healthy],
                Ok(strings(&["warm0"])),
                "1 warm instance(s) running, 2 wanted",
            ),
            (
                vec![],
                Err("no release is kept warm".into()),
                "no release is kept warm",
            ),
        ];
        for (warm_checks, warm, why) in cases {
            let parked = warm.clone().unwrap_or_default();
            let s = Script {
                healthy_after: vec![Some(1), Some(0)],
                old: strings(&["old0"]),
                warm: Mutex::new(parked.clone()),
                warm_checks,
                ..Default::default()
            };
            let out = rollback(&s, warm_plan(2), warm).await.unwrap();
            assert!(!out.warm);
            assert!(
                out.cold_reason.as_deref().is_some_and(|r| r.contains(why)),
                "{:?} lacks {why}",
                out.cold_reason
            );
            assert_eq!(out.instances, vec!["new0", "new1"], "new instances started");
            assert_eq!(*s.switched.lock().unwrap(), vec![out.instances.clone()]);
            assert_eq!(*s.verified.lock().unwrap(), Some(true), "verified as usual");
            // The unusable warm instances are stopped; the replaced release is parked.
            assert_eq!(*s.stopped.lock().unwrap(), parked);
            assert_eq!(*s.warm.lock().unwrap(), vec!["old0"]);
        }
        // A failed cold fallback leaves the route and the warm set alone.
        let s = Script {
            healthy_after: vec![None],
            old: strings(&["old0"]),
            warm: Mutex::new(strings(&["warm0"])),
            warm_checks: vec![Check::Pending("timeout".into())],
            ..Default::default()
        };
        let err = rollback(&s, warm_plan(1), Ok(strings(&["warm0"])))
            .await
            .unwrap_err();
        assert!(matches!(err, DeployError::VerifyFailed { .. }), "{err}");
        assert!(s.switched.lock().unwrap().is_empty());
        assert_eq!(*s.warm.lock().unwrap(), vec!["warm0"]);
        assert_eq!(*s.stopped.lock().unwrap(), vec!["new0"]);
    }
}
