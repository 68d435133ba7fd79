//! What a deploy or rollback will do, decided before anything runs: which build goes live,
//! as which rollback, with how many replicas, replacing which release. One function,
//! [`resolve`], used by the agent (with its in-memory live release), by the CLI and by the
//! console (with the store's live release) so bad requests fail fast, with the same
//! message, and never start the agent.

use anyhow::Result;

use super::api::DeployRequest;
use crate::store::builds::{BuildRecord, BuildStatus};
use crate::store::deploys::{ReleaseRecord, ReleaseStatus};
use crate::store::Store;

/// Most instances one release may ask for.
pub const MAX_REPLICAS: usize = 64;

/// The longest health timeout or drain grace a deploy accepts, in seconds (one hour): a
/// bound checked before any `Instant + Duration` is computed, so none can overflow.
pub const MAX_WAIT_SECS: u64 = 3600;

/// Why a request cannot run. The agent answers `BadInput` with 400 and `NotFound` with 404;
/// the CLI exits 2 for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The request contradicts the state (replicas out of range, nothing to roll back).
    BadInput(String),
    /// A named build or release does not exist.
    NotFound(String),
}

impl Rejection {
    /// The message for the operator (what, and how to fix it).
    pub fn message(&self) -> &str {
        match self {
            Rejection::BadInput(m) | Rejection::NotFound(m) => m,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Rejection {}

/// The live release a deploy replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Release number.
    pub release: i64,
    /// Its build.
    pub build_id: i64,
    /// Its instance count.
    pub replicas: usize,
}

impl Current {
    /// The `live` release among `releases` (the store's view of what runs).
    pub fn from_releases(releases: &[ReleaseRecord]) -> Option<Current> {
        releases
            .iter()
            .find(|r| r.status == ReleaseStatus::Live)
            .map(|r| Current {
                release: r.release,
                build_id: r.build_id,
                replicas: r.replicas.max(0) as usize,
            })
    }
}

/// What will go live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The build that goes live.
    pub build_id: i64,
    /// For a rollback: the release whose build is redeployed.
    pub rollback_of: Option<i64>,
    /// Instances wanted, `1..=MAX_REPLICAS`.
    pub replicas: usize,
}

/// Decide what `req` deploys, from the stack's `releases` (newest first or any order), the
/// live release `current`, and `build`: the record of `req.build` when it is set, else
/// the stack's newest succeeded build (`None` when there is none / no such build). Pure.
pub fn resolve(
    req: &DeployRequest,
    releases: &[ReleaseRecord],
    current: Option<Current>,
    build: Option<&BuildRecord>,
) -> std::result::Result<Target, Rejection> {
    let stack = &req.stack;
    let replicas = req.replicas.unwrap_or(match current {
        Some(c) if c.replicas > 0 => c.replicas,
        _ => 1,
    });
    if replicas == 0 || replicas > MAX_REPLICAS {
        return Err(Rejection::BadInput(format!(
            "--replicas must be 1..={MAX_REPLICAS}, not {replicas}"
        )));
    }
    for (flag, value) in [("--timeout", req.timeout_secs), ("--grace", req.grace_secs)] {
        if let Some(v) = value.filter(|v| *v > MAX_WAIT_SECS) {
            return Err(Rejection::BadInput(format!(
                "{flag} must be at most {MAX_WAIT_SECS} seconds, not {v}"
            )));
        }
    }
    if req.timeout_secs == Some(0) {
        return Err(Rejection::BadInput(
            "--timeout 0 leaves the new instances no time to pass a health check; give the \
             seconds to wait for health, at least 1 (default 30)"
                .into(),
        ));
    }
    if req.rollback {
        let Some(cur) = current else {
            return Err(Rejection::BadInput(format!(
                "{stack} has no live release to roll back from"
            )));
        };
        let target = match req.to {
            Some(n) => {
                let r = releases.iter().find(|r| r.release == n).ok_or_else(|| {
                    Rejection::NotFound(format!(
                        "{stack} has no release {n}; see `drover releases {stack}`"
                    ))
                })?;
                if n == cur.release {
                    return Err(Rejection::BadInput(format!("release {n} is already live")));
                }
                if matches!(r.status, ReleaseStatus::Failed | ReleaseStatus::Deploying) {
                    return Err(Rejection::BadInput(format!(
                        "release {n} never went live ({}); pick another",
                        r.status
                    )));
                }
                r
            }
            None => releases
                .iter()
                .filter(|r| {
                    r.release < cur.release
                        && r.status == ReleaseStatus::Superseded
                        && r.build_id != cur.build_id
                })
                .max_by_key(|r| r.release)
                .ok_or_else(|| {
                    Rejection::BadInput(format!("{stack} has no earlier release to roll back to"))
                })?,
        };
        return Ok(Target {
            build_id: target.build_id,
            rollback_of: Some(target.release),
            replicas,
        });
    }
    let Some(b) = build else {
        return Err(Rejection::NotFound(match req.build {
            Some(id) => format!("there is no build {id}; see `drover builds {stack}`"),
            None => format!("{stack} has no succeeded build: run `drover build {stack}` first"),
        }));
    };
    if &b.stack != stack {
        return Err(Rejection::BadInput(format!(
            "build {} belongs to stack {}, not {stack}",
            b.id, b.stack
        )));
    }
    if b.status != BuildStatus::Succeeded {
        return Err(Rejection::BadInput(format!(
            "build {} {}; only succeeded builds deploy",
            b.id,
            b.status.as_str()
        )));
    }
    Ok(Target {
        build_id: b.id,
        rollback_of: None,
        replicas,
    })
}

/// The build record [`resolve`] needs for `req`: `req.build`'s, else the newest succeeded
/// build of the stack (ignored for a rollback).
pub fn request_build(store: &Store, req: &DeployRequest) -> Result<Option<BuildRecord>> {
    if req.rollback {
        return Ok(None);
    }
    match req.build {
        Some(id) => store.build(id),
        None => store.latest_succeeded(&req.stack),
    }
}

/// [`resolve`] against the store (its `live` release stands for what runs): what the CLI
/// and the console check before they start the agent. `Ok(Err(..))` is a rejection.
pub fn check(store: &Store, req: &DeployRequest) -> Result<std::result::Result<Target, Rejection>> {
    let releases = store.releases(&req.stack)?;
    let build = request_build(store, req)?;
    Ok(resolve(
        req,
        &releases,
        Current::from_releases(&releases),
        build.as_ref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(n: i64, build: i64, status: &str) -> ReleaseRecord {
        ReleaseRecord::sample(n, build, status)
    }

    fn build(id: i64, status: BuildStatus) -> BuildRecord {
        BuildRecord::sample(id, status)
    }

    fn req(f: impl FnOnce(&mut DeployRequest)) -> DeployRequest {
        let mut r = DeployRequest {
            stack: "hello".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    }

    #[test]
    fn replicas_out_of_range_are_rejected_before_anything_else() {
        let b = build(3, BuildStatus::Succeeded);
        for n in [0, MAX_REPLICAS + 1] {
            let e = resolve(&req(|r| r.replicas = Some(n)), &[], None, Some(&b)).unwrap_err();
            assert_eq!(
                e,
                Rejection::BadInput(format!("--replicas must be 1..=64, not {n}"))
            );
        }
        let t = resolve(&req(|_| {}), &[], None, Some(&b)).unwrap();
        assert_eq!((t.build_id, t.replicas, t.rollback_of), (3, 1, None));
    }

    #[test]
    fn a_zero_health_timeout_is_rejected_with_a_hint() {
        let b = build(3, BuildStatus::Succeeded);
        let e = resolve(&req(|r| r.timeout_secs = Some(0)), &[], None, Some(&b)).unwrap_err();
        assert!(
            matches!(e, Rejection::BadInput(ref m) if m.contains("--timeout 0")),
            "{e}"
        );
        assert!(e.message().contains("at least 1"), "{e}");
        let t = resolve(&req(|r| r.timeout_secs = Some(1)), &[], None, Some(&b)).unwrap();
        assert_eq!(t.build_id, 3);
    }

    /// Issue #12 §5: the agent gets requests from any socket client, not only the CLI
    /// (which bounds them at parse time): 2^64-1 seconds panicked the deploy task.
    #[test]
    fn durations_that_could_overflow_are_rejected() {
        let b = build(3, BuildStatus::Succeeded);
        let e = resolve(
            &req(|r| r.timeout_secs = Some(u64::MAX)),
            &[],
            None,
            Some(&b),
        )
        .unwrap_err();
        assert!(
            e.message().contains("--timeout must be at most 3600"),
            "{e}"
        );
        let e = resolve(&req(|r| r.grace_secs = Some(u64::MAX)), &[], None, Some(&b)).unwrap_err();
        assert!(e.message().contains("--grace must be at most 3600"), "{e}");
        let t = resolve(
            &req(|r| r.grace_secs = Some(MAX_WAIT_SECS)),
            &[],
            None,
            Some(&b),
        );
        assert!(t.is_ok());
    }

    #[test]
    fn deploy_needs_a_succeeded_build_of_the_stack() {
        let e = resolve(&req(|_| {}), &[], None, None).unwrap_err();
        assert!(e.message().contains("no succeeded build"), "{e}");
        let e = resolve(&req(|r| r.build = Some(9)), &[], None, None).unwrap_err();
        assert!(matches!(e, Rejection::NotFound(ref m) if m.contains("no build 9")));
        let failed = build(4, BuildStatus::Failed);
        let e = resolve(&req(|_| {}), &[], None, Some(&failed)).unwrap_err();
        assert!(e.message().contains("only succeeded builds deploy"), "{e}");
        let mut other = build(5, BuildStatus::Succeeded);
        other.stack = "other".into();
        let e = resolve(&req(|_| {}), &[], None, Some(&other)).unwrap_err();
        assert!(e.message().contains("belongs to stack other"), "{e}");
    }

    #[test]
    fn rollback_picks_the_previous_live_build_or_the_named_release() {
        let releases = vec![
            rel(4, 12, "live"),
            rel(3, 11, "failed"),
            rel(2, 12, "superseded"),
            rel(1, 10, "superseded"),
        ];
        let cur = Current::from_releases(&releases);
        assert_eq!(
            cur,
            Some(Current {
                release: 4,
                build_id: 12,
                replicas: 2
            })
        );
        // Release 2 runs the same build as the live one: skipped; 3 failed: skipped.
        let t = resolve(&req(|r| r.rollback = true), &releases, cur, None).unwrap();
        assert_eq!((t.build_id, t.rollback_of, t.replicas), (10, Some(1), 2));
        let to = |n| {
            resolve(
                &req(|r| {
                    r.rollback = true;
                    r.to = Some(n)
                }),
                &releases,
                cur,
                None,
            )
            .unwrap_err()
        };
        assert!(to(3).message().contains("never went live"));
        assert!(to(4).message().contains("already live"));
        assert!(matches!(to(7), Rejection::NotFound(_)));
        let e = resolve(&req(|r| r.rollback = true), &releases[..1], cur, None).unwrap_err();
        assert!(e.message().contains("no earlier release"), "{e}");
        let e = resolve(&req(|r| r.rollback = true), &[], None, None).unwrap_err();
        assert!(
            e.message().contains("no live release to roll back from"),
            "{e}"
        );
    }
}
