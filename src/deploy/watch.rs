//! The watch window after a deploy (`[deploy] watch`, `max_error_rate`, `max_p99`): the
//! agent compares the new release's route metrics since the switch with the previous
//! release's over the same length of time before it, and rolls back by itself when the
//! new one is past a limit *and* worse than the previous one — as Flagger and Argo
//! Rollouts judge a canary by a metrics provider, here by the router's own figures
//! ([`crate::deploy::metrics`]). A release no worse than the one it replaced is not rolled
//! back for a failure both share (a dependency that is down, say).

use std::time::{Duration, SystemTime};

use crate::stack::Watch;
use crate::store::metrics::Bucket;

/// Fewest requests of the new release before a verdict against it: fewer say nothing.
pub const MIN_REQUESTS: u64 = 20;

/// How often the agent judges a watched release.
pub const TICK: Duration = Duration::from_secs(2);

/// A watch in progress, as `drover status` shows it.
#[derive(Debug, Clone)]
pub struct Watching {
    /// The watched (new) release.
    pub release: i64,
    /// The release a failed watch rolls back to.
    pub previous: i64,
    /// When the route switched to `release`.
    pub since: SystemTime,
    /// The limits.
    pub policy: Watch,
}

impl Watching {
    /// When the window ends.
    pub fn until(&self) -> SystemTime {
        self.since + self.policy.window
    }

    /// `release 8 until 2026-12-02T15:50:12Z: rolls back to release 7 past 5xx 5.0% or
    /// p99 500 ms`.
    pub fn describe(&self) -> String {
        let until =
            chrono::DateTime::<chrono::Utc>::from(self.until()).format("%Y-%m-%dT%H:%M:%SZ");
        let p99 = self
            .policy
            .max_p99
            .map(|d| format!(" or p99 {:.0} ms", d.as_secs_f64() * 1e3))
            .unwrap_or_default();
        format!(
            "release {} until {until}: rolls back to release {} past 5xx {:.1}%{p99}",
            self.release,
            self.previous,
            self.policy.max_error_rate * 100.0
        )
    }
}

/// What one look at the figures decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Inside the window and inside the limits (or too little traffic yet): look again.
    Continue,
    /// Past a limit: roll back. The text names the figures and the limits.
    Failed(String),
    /// The window ended inside the limits. The text names the figures.
    Passed(String),
}

/// `5xx 12.5% (5 of 40), p99 3.2 ms` for a bucket.
pub fn figures(b: &Bucket) -> String {
    let p99 = b
        .latency_ms(0.99)
        .map(|ms| format!("{ms:.1} ms"))
        .unwrap_or_else(|| "-".into());
    format!(
        "5xx {:.1}% ({} of {}), p99 {p99}",
        b.error_rate() * 100.0,
        b.server_errors(),
        b.requests
    )
}

/// The verdict on the new release (`new`: its figures since the switch, `elapsed` ago)
/// against `policy` and the previous release's figures `old` (over the same length of
/// time before the switch; empty when it had no traffic).
pub fn judge(policy: &Watch, new: &Bucket, old: &Bucket, elapsed: Duration) -> Verdict {
    let mut past = Vec::new();
    if new.requests >= MIN_REQUESTS {
        let (rate, old_rate) = (new.error_rate(), old.error_rate());
        if rate > policy.max_error_rate && (old.requests == 0 || rate > old_rate) {
            past.push(format!(
                "5xx {:.1}% > max_error_rate {:.1}% (previous release {:.1}%)",
                rate * 100.0,
                policy.max_error_rate * 100.0,
                old_rate * 100.0
            ));
        }
        if let (Some(limit), Some(p99)) = (policy.max_p99, new.latency_ms(0.99)) {
            let limit_ms = limit.as_secs_f64() * 1e3;
            let old_p99 = old.latency_ms(0.99);
            if p99 > limit_ms && old_p99.is_none_or(|o| p99 > o) {
                past.push(format!(
                    "p99 {p99:.1} ms > max_p99 {limit_ms:.0} ms (previous release {})",
                    old_p99
                        .map(|o| format!("{o:.1} ms"))
                        .unwrap_or_else(|| "-".into())
                ));
            }
        }
    }
    if !past.is_empty() {
        return Verdict::Failed(format!(
            "{} after {}: {}",
            figures(new),
            humantime::format_duration(Duration::from_secs(elapsed.as_secs())),
            past.join("; ")
        ));
    }
    if elapsed < policy.window {
        return Verdict::Continue;
    }
    let traffic = if new.requests < MIN_REQUESTS {
        format!(" (too little traffic to judge: fewer than {MIN_REQUESTS} requests)")
    } else {
        String::new()
    };
    Verdict::Passed(format!(
        "{} over {}{traffic}; previous release {}",
        figures(new),
        humantime::format_duration(policy.window),
        figures(old)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(ok: u64, errors: u64, ms: u64) -> Bucket {
        let mut b = Bucket::default();
        for _ in 0..ok {
            b.record(200, false, Duration::from_millis(ms));
        }
        for _ in 0..errors {
            b.record(500, false, Duration::from_millis(ms));
        }
        b
    }

    fn policy(p99_ms: Option<u64>) -> Watch {
        Watch {
            window: Duration::from_secs(60),
            max_error_rate: 0.05,
            max_p99: p99_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn a_release_past_a_limit_and_worse_than_the_previous_one_fails() {
        let early = Duration::from_secs(10);
        let v = judge(&policy(None), &bucket(10, 30, 2), &bucket(100, 0, 2), early);
        match v {
            Verdict::Failed(why) => {
                assert!(
                    why.starts_with("5xx 75.0% (30 of 40), p99 2.0 ms after 10s"),
                    "{why}"
                );
                assert!(
                    why.contains("> max_error_rate 5.0% (previous release 0.0%)"),
                    "{why}"
                );
            }
            v => panic!("{v:?}"),
        }
        // Latency: only with a limit, only when worse than before.
        let slow = bucket(50, 0, 900);
        assert_eq!(
            judge(&policy(None), &slow, &bucket(50, 0, 5), early),
            Verdict::Continue
        );
        assert!(matches!(
            judge(&policy(Some(500)), &slow, &bucket(50, 0, 5), early),
            Verdict::Failed(w) if w.contains("p99 900.") && w.contains("> max_p99 500 ms")
        ));
        assert_eq!(
            judge(&policy(Some(500)), &slow, &bucket(50, 0, 950), early),
            Verdict::Continue,
            "the previous release was as slow"
        );
    }

    #[test]
    fn shared_failures_little_traffic_and_the_end_of_the_window() {
        let early = Duration::from_secs(10);
        // Both releases fail alike: not the new release's fault.
        assert_eq!(
            judge(&policy(None), &bucket(10, 30, 2), &bucket(10, 40, 2), early),
            Verdict::Continue
        );
        // Too few requests: no verdict yet, and a pass that says so at the end.
        assert_eq!(
            judge(&policy(None), &bucket(0, 19, 2), &Bucket::default(), early),
            Verdict::Continue
        );
        match judge(
            &policy(None),
            &bucket(0, 19, 2),
            &Bucket::default(),
            Duration::from_secs(60),
        ) {
            Verdict::Passed(w) => assert!(w.contains("too little traffic"), "{w}"),
            v => panic!("{v:?}"),
        }
        // Inside the limits to the end.
        match judge(
            &policy(Some(500)),
            &bucket(100, 1, 3),
            &bucket(100, 0, 3),
            Duration::from_secs(61),
        ) {
            Verdict::Passed(w) => {
                assert!(
                    w.starts_with("5xx 1.0% (1 of 101), p99 3.0 ms over 1m"),
                    "{w}"
                );
                assert!(
                    w.ends_with("previous release 5xx 0.0% (0 of 100), p99 3.0 ms"),
                    "{w}"
                );
            }
            v => panic!("{v:?}"),
        }
    }
}
