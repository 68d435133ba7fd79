//! What one release was and did, for `drover releases STACK --release N` and the console's
//! `enter` on a release: who deployed it and when, the build and image digest, the
//! verification (the stack's test script output or the health check's outcome), the
//! error of a failed deploy with the health check's last answer, what it rolled back to,
//! and each instance's history (started, healthy, unhealthy, exited, stopped) with its
//! health checks per minute.

use anyhow::Result;
use serde::Serialize;

use crate::store::deploys::{InstanceEvent, ReleaseRecord};
use crate::store::health::HealthMinute;
use crate::store::Store;

/// A release with its verification and instance history.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDetail {
    /// The release row.
    pub release: ReleaseRecord,
    /// The build's verification: status (`verified` | `verify-failed`), time, detail.
    pub verification: Option<Verification>,
    /// The release's instance events, oldest first (the newest 200).
    pub events: Vec<InstanceEvent>,
    /// Its instances' health checks per minute, oldest first (the newest 60 rows: one per
    /// instance and minute).
    pub health: Vec<HealthMinute>,
}

/// A build's verification before its first release.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// `verified` or `verify-failed`.
    pub status: String,
    /// RFC 3339 UTC.
    pub at: String,
    /// The test script's output or the health check's outcome.
    pub detail: String,
}

/// Why a release detail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DetailError {
    /// No such release.
    #[error("{stack} has no release {release}; `drover releases {stack}` lists them")]
    NoRelease {
        /// The stack.
        stack: String,
        /// The release asked for.
        release: i64,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Read release `release` of `stack` with its verification and instance events.
///
/// Errors: see [`DetailError`].
pub fn read(store: &Store, stack: &str, release: i64) -> Result<ReleaseDetail, DetailError> {
    let r = store
        .release(stack, release)?
        .ok_or_else(|| DetailError::NoRelease {
            stack: stack.into(),
            release,
        })?;
    let verification = store
        .verification_detail(r.build_id)?
        .map(|(status, at, detail)| Verification { status, at, detail });
    let events = store.release_instance_events(stack, release, 200)?;
    let health = store.release_health(stack, release, 60)?;
    Ok(ReleaseDetail {
        release: r,
        verification,
        events,
        health,
    })
}

impl ReleaseDetail {
    /// The detail as text lines (the CLI prints them, the console's Detail box wraps
    /// them); control characters of stored output are made visible.
    pub fn lines(&self) -> Vec<String> {
        let r = &self.release;
        let clean = crate::text::sanitize_for_terminal;
        let mut out = vec![
            format!("release     #{} of {}: {}", r.release, r.stack, r.status),
            format!("by          {} at {}", r.by, r.created_at),
            format!(
                "finished    {}",
                r.finished_at.as_deref().unwrap_or("(not finished)")
            ),
            format!("build       #{}", r.build_id),
            format!("image       {}", r.image_digest),
            format!("replicas    {}", r.replicas),
        ];
        if let Some(n) = r.rollback_of {
            out.push(format!("rollback    to the build of release #{n}"));
        }
        if let Some(e) = &r.error {
            out.push(String::new());
            out.push("ERROR".into());
            out.extend(e.lines().map(|l| format!("  {}", clean(l))));
        }
        out.push(String::new());
        match &self.verification {
            Some(v) => {
                out.push(format!("verification {} at {}", v.status, v.at));
                out.extend(v.detail.lines().map(|l| format!("  {}", clean(l))));
            }
            None => out.push("verification: none recorded for this build".into()),
        }
        out.push(String::new());
        if self.events.is_empty() {
            out.push("instances: no events recorded".into());
        } else {
            out.push("instances (oldest first):".into());
            for e in &self.events {
                out.push(format!(
                    "  {}  {:<16} {:<10} {}",
                    e.at.get(..19).unwrap_or(&e.at).replace('T', " "),
                    e.instance,
                    e.event,
                    clean(&e.detail)
                ));
            }
        }
        if !self.health.is_empty() {
            out.push(String::new());
            out.push("health checks per minute (UTC):".into());
            for m in &self.health {
                let at = chrono::DateTime::from_timestamp(m.minute, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| m.minute.to_string());
                let mut line = format!(
                    "  {at}  {:<16} {:>3} checks, {} failed, slowest {:.0} ms",
                    m.instance, m.checks, m.failures, m.max_ms
                );
                if let Some(f) = &m.last_failure {
                    line.push_str(&format!("; last failure: {}", clean(f)));
                }
                out.push(line);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::builds::Success;

    #[test]
    fn a_failed_release_reads_with_its_error_verification_and_instance_history() {
        let mut s = Store::open_in_memory().unwrap();
        let id = s.create_build("hello", 1).unwrap();
        s.finish_build_success(
            id,
            &Success {
                image_digest: "sha256:ab",
                image_path: "/x",
                components: &[],
            },
        )
        .unwrap();
        assert!(matches!(
            read(&s, "hello", 1),
            Err(DetailError::NoRelease { release: 1, .. })
        ));
        let r = s
            .create_release("hello", id, "sha256:ab", 1, "alice", None)
            .unwrap();
        s.set_verification(id, false, "GET /health -> 500\nboom\x1b[31m")
            .unwrap();
        s.instance_event("hello", r, "hello-r1-1", "started", "pid 7")
            .unwrap();
        s.instance_event("hello", r, "hello-r1-1", "unhealthy", "500 boom")
            .unwrap();
        s.instance_event("hello", r + 1, "hello-r2-1", "started", "other release")
            .unwrap();
        s.mark_release_failed("hello", r, "instances never got healthy: 500 boom")
            .unwrap();
        let d = read(&s, "hello", r).unwrap();
        let text = d.lines().join("\n");
        assert!(text.contains("release     #1 of hello: failed"), "{text}");
        assert!(text.contains("by          alice"), "{text}");
        assert!(
            text.contains("ERROR\n  instances never got healthy: 500 boom"),
            "{text}"
        );
        assert!(text.contains("verification verify-failed"), "{text}");
        assert!(text.contains("  GET /health -> 500"), "{text}");
        assert!(!text.contains('\x1b'), "escapes are made visible: {text:?}");
        let started = text.find("started").unwrap();
        assert!(
            started < text.find("unhealthy").unwrap(),
            "oldest first: {text}"
        );
        assert!(!text.contains("other release"), "{text}");
        assert!(
            !text.contains("health checks per minute"),
            "none recorded: {text}"
        );
        s.record_health_minute(&HealthMinute {
            stack: "hello".into(),
            release: r,
            instance: "hello-r1-1".into(),
            minute: 1_780_000_020,
            checks: 12,
            failures: 3,
            max_ms: 41.6,
            last_failure: Some("HTTP 500, body \"boom\"".into()),
        })
        .unwrap();
        let text = read(&s, "hello", r).unwrap().lines().join("\n");
        assert!(
            text.contains(
                "health checks per minute (UTC):\n  2026-05-28 20:27  hello-r1-1        12 \
                 checks, 3 failed, slowest 42 ms; last failure: HTTP 500, body \"boom\""
            ),
            "{text}"
        );
    }
}
