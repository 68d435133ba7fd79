//! The lock step of a build and of `drover lock`: read the stack's lock, decide whether it
//! stands, is re-resolved minimally (the stack's package inputs changed), moves to the
//! pending updates, or is refused (`--locked`); then make or reuse the base of the lock.
//!
//! Resolution is always apt's (inside mmdebstrap, [`base::resolve`]), never drover's: what
//! stays pinned is given to apt as version pins, what moves is left to apt's candidate.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::base::{self, Base};
use super::debcache::DebCache;
use super::sandbox::BuildLog;
use crate::debian::client::{RepoClient, TrackedRepo};
use crate::lock::{self, Lock, LockChange, LockedPackage, LockedRepo};
use crate::paths::Paths;
use crate::stack::{AptSource, Stack};

/// How a build (or `drover lock`) gets its lock.
#[derive(Debug, Clone, Default)]
pub enum LockMode {
    /// Build the stack's lock; create it on the first build; when the stack file's package
    /// inputs changed, re-lock minimally first (what is still wanted stays pinned).
    #[default]
    Follow,
    /// `--locked`: build the lock as it is; refuse when it is missing or out of date.
    Locked,
    /// `--apply-updates` / `drover lock --update`: move the lock first.
    Update(UpdateSelection),
    /// `--reproduce N`: exactly this lock (build N's); the lock file is not touched.
    Exact(Box<Lock>),
}

/// Which locked packages `--update` lets move.
#[derive(Debug, Clone, Default)]
pub struct UpdateSelection {
    /// Only source packages with a security update (from a `*-security` suite, fixing a
    /// CVE or urgency high and above, `updates::is_security`) in the stack's newest check.
    pub security_only: bool,
    /// Only these source (or binary) packages; empty = all.
    pub packages: Vec<String>,
    /// The source packages `security_only` selects, found by the caller in the newest
    /// update check (the lock step reads no store).
    pub security_sources: Vec<String>,
}

impl UpdateSelection {
    /// Every package may move (`drover lock --update`, `build --apply-updates`).
    pub fn all() -> UpdateSelection {
        UpdateSelection::default()
    }

    fn is_all(&self) -> bool {
        !self.security_only && self.packages.is_empty()
    }

    fn moves(&self, p: &LockedPackage) -> bool {
        if self.is_all() {
            return true;
        }
        let named = self.packages.is_empty()
            || self.packages.iter().any(|n| *n == p.source || *n == p.name);
        let security = !self.security_only || self.security_sources.contains(&p.source);
        named && security
    }
}

/// What the lock step did: the `lock` object of `drover build --json` and the whole of
/// `drover lock --json`.
#[derive(Debug, Clone, Serialize)]
pub struct LockOutcome {
    /// The lock file (empty for `--reproduce`, which writes none).
    pub path: String,
    /// Whether the lock was written (created or changed).
    pub changed: bool,
    /// Why it changed: `created`, `inputs changed: …`, `updates applied`; null otherwise.
    pub reason: Option<String>,
    /// Packages that moved (old → new), sorted by name.
    pub changes: Vec<LockChange>,
    /// Number of locked packages.
    pub packages: usize,
    /// The lock's base key.
    pub base_key: String,
    /// The lock itself.
    #[serde(skip)]
    pub lock: Lock,
}

/// The result of [`prepare`]: the base to build on and what happened to the lock.
pub struct Prepared {
    /// The base of the lock (cached or just made).
    pub base: Base,
    /// What the lock step did.
    pub outcome: LockOutcome,
}

fn merge_sources(lists: &[&[AptSource]]) -> Vec<AptSource> {
    let mut out: Vec<AptSource> = Vec::new();
    for list in lists {
        for s in *list {
            if !out
                .iter()
                .any(|e| e.mirror == s.mirror && e.suite == s.suite)
            {
                out.push(s.clone());
            }
        }
    }
    out
}

fn template(stack: &Stack, arch: &str, sources: Vec<AptSource>) -> Lock {
    Lock {
        version: lock::LOCK_VERSION,
        stack: stack.name.clone(),
        arch: arch.to_string(),
        variant: stack.base.variant.clone(),
        inputs: lock::inputs_hash(stack, arch),
        include: lock::sorted_include(stack),
        repositories: sources
            .into_iter()
            .map(|s| LockedRepo {
                mirror: s.mirror,
                suite: s.suite,
                components: s.components,
                date: String::new(),
            })
            .collect(),
        packages: Vec::new(),
    }
}

/// Why a lock no longer matches its stack file, in words (`packages +curl -wget`, `base
/// suites`, …).
fn why_stale(l: &Lock, stack: &Stack, arch: &str) -> String {
    let want: BTreeSet<String> = lock::sorted_include(stack).into_iter().collect();
    let had: BTreeSet<String> = l.include.iter().cloned().collect();
    let mut parts = Vec::new();
    let added: Vec<String> = want.difference(&had).map(|p| format!("+{p}")).collect();
    let removed: Vec<String> = had.difference(&want).map(|p| format!("-{p}")).collect();
    if !added.is_empty() || !removed.is_empty() {
        parts.push(format!(
            "packages {}",
            added
                .into_iter()
                .chain(removed)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if l.arch != arch {
        parts.push(format!("architecture {} -> {arch}", l.arch));
    }
    if l.variant != stack.base.variant {
        parts.push(format!("variant {} -> {}", l.variant, stack.base.variant));
    }
    if parts.is_empty() {
        parts.push("the base or tracked suites changed".to_string());
    }
    parts.join(", ")
}

/// Check, before any image work, that apt can install every package of `lock` exactly: each
/// .deb is in the local cache, or the repository's signed Packages index still offers that
/// version with the same SHA-256.
///
/// Errors: the packages that cannot be had (named, with their repository), a hash that
/// differs from the index (a hand-edited lock), or a repository that cannot be read.
pub fn check_available(paths: &Paths, stack: &Stack, lock: &Lock) -> Result<()> {
    let cache = DebCache::new(&paths.debs());
    let needed: Vec<&LockedPackage> = lock
        .packages
        .iter()
        .filter(|p| !cache.has(&p.sha256))
        .collect();
    if needed.is_empty() {
        return Ok(());
    }
    let client = RepoClient::new(&paths.state.join("repos"))?;
    let mut archs: Vec<String> = lock
        .packages
        .iter()
        .map(|p| p.arch.clone())
        .filter(|a| a != "all")
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if archs.is_empty() {
        archs.push(lock.arch.clone());
    }
    let tracked = crate::updates::tracked_repos(stack);
    let mut synced = Vec::new();
    for r in &lock.repositories {
        if !needed
            .iter()
            .any(|p| p.mirror == r.mirror && p.suite == r.suite)
        {
            continue;
        }
        let repo = tracked
            .iter()
            .find(|t| t.source.mirror == r.mirror && t.source.suite == r.suite)
            .cloned()
            .unwrap_or_else(|| TrackedRepo::new(r.source()));
        let s = client.sync(&repo, &archs, true).with_context(|| {
            format!(
                "checking the lock of {} against {}",
                lock.stack,
                repo.name()
            )
        })?;
        synced.push(s);
    }
    let index = client.load_index(&synced, &archs)?;
    let mut gone = Vec::new();
    for p in needed {
        let same = index.candidates(&p.name, &p.arch).find(|c| {
            *c.mirror == *p.mirror && *c.suite == *p.suite && c.version.as_str() == p.version
        });
        match same {
            Some(c) if c.sha256 == p.sha256 => {}
            Some(c) => bail!(
                "package {} {} ({}) in the lock has SHA-256 {}, but the signed Packages index of \
                 {} {} says {}: the lock was edited by hand or the repository changed; run \
                 `drover lock {} --update`",
                p.name,
                p.version,
                p.arch,
                p.sha256,
                p.mirror,
                p.suite,
                c.sha256,
                lock.stack
            ),
            None => gone.push(format!(
                "{} {} ({}) from {}",
                p.name, p.version, p.arch, p.suite
            )),
        }
    }
    if !gone.is_empty() {
        let n = gone.len();
        bail!(
            "{n} locked package version(s) are no longer in their repository and not in the \
             local .deb cache ({}): {}{}; run `drover lock {} --update` to move the lock to what \
             the repositories hold",
            paths.debs().display(),
            gone[..n.min(5)].join(", "),
            if n > 5 { ", …" } else { "" },
            lock.stack
        );
    }
    Ok(())
}

/// Check, without any work, that `mode` can proceed with the stack's lock as it is on
/// disk: the lock parses, `--locked` has a lock that matches the stack file, and a lock
/// that may be written can be. Front ends call it first so bad input is reported as such
/// (and no build is recorded); [`prepare`] checks the same again.
///
/// Errors: the lock's diagnostics (`FILE:LINE:COL`), a missing or stale lock under
/// `--locked`, an unwritable lock directory.
pub fn check_mode(stack: &Stack, mode: &LockMode) -> Result<()> {
    if matches!(mode, LockMode::Exact(_)) {
        return Ok(());
    }
    let path = lock::path_of(stack);
    let current = Lock::read(&path).map_err(|d| anyhow::anyhow!("{d}"))?;
    let arch = base::host_arch()?;
    let fresh = current
        .as_ref()
        .is_some_and(|l| l.inputs == lock::inputs_hash(stack, &arch) && l.arch == arch);
    match (mode, &current) {
        (LockMode::Locked, None) => bail!(
            "{} does not exist, and --locked builds only from a lock: run `drover lock {}` \
             and commit the lock",
            path.display(),
            stack.name
        ),
        (LockMode::Locked, Some(l)) if !fresh => bail!(
            "the lock {} is out of date ({}), and --locked refuses to change it: run `drover \
             lock {}` and commit the lock",
            path.display(),
            why_stale(l, stack, &arch),
            stack.name
        ),
        (LockMode::Locked, _) => Ok(()),
        (LockMode::Follow, _) if fresh => Ok(()),
        (LockMode::Update(sel), Some(l)) => {
            unknown_names(sel, l, &path, stack)?;
            lock::check_writable(&path)
        }
        _ => lock::check_writable(&path),
    }
}

/// Refuse `--update NAME` for a NAME that is neither a source nor a binary package of the
/// lock (a typo would otherwise update nothing and say so only in the end).
fn unknown_names(
    sel: &UpdateSelection,
    l: &Lock,
    path: &std::path::Path,
    stack: &Stack,
) -> Result<()> {
    for n in &sel.packages {
        if !l.packages.iter().any(|p| p.source == *n || p.name == *n) {
            bail!(
                "`{n}` is not a source or binary package in the lock {}; see `drover manifest \
                 {}` for what the image holds",
                path.display(),
                stack.name
            );
        }
    }
    Ok(())
}

/// The lock step: settle the lock of `stack` as `mode` says (writing the lock file when it
/// changes, atomically) and return the base of that lock, cached or just made.
///
/// Errors: a lock that does not parse (`FILE:LINE:COL`), `--locked` with a missing or stale
/// lock, a lock file that cannot be written (before any work, naming the path), a locked
/// version that cannot be had ([`check_available`]), and those of mmdebstrap.
pub fn prepare(
    paths: &Paths,
    stack: &Stack,
    arch: &str,
    mode: &LockMode,
    refresh: bool,
    log: &mut BuildLog<'_>,
) -> Result<Prepared> {
    let path = lock::path_of(stack);
    let path_text = path.display().to_string();
    let current = Lock::read(&path).map_err(|d| anyhow::anyhow!("{d}"))?;
    let inputs = lock::inputs_hash(stack, arch);
    let fresh = |l: &Lock| l.inputs == inputs && l.arch == arch;
    let exact = |lock: Lock, path: String, log: &mut BuildLog<'_>| -> Result<Prepared> {
        // A reproduction whose .debs are all cached is made from them alone: exact and
        // without the network. Other builds use the repositories (the image then has their
        // current apt lists, which a build script may use).
        let offline = path.is_empty() && DebCache::new(&paths.debs()).has_all(&lock.packages);
        let keyrings = super::keyrings::keyrings_of(stack);
        let key = super::keyrings::cache_key(&lock, &keyrings)?;
        if !offline && (refresh || !base::is_cached(paths, &key)) {
            check_available(paths, stack, &lock)?;
        }
        let base = base::ensure_locked(paths, &lock, &keyrings, refresh, offline, log)?;
        log.say(&format!(
            "lock {}: {} package(s), unchanged",
            if path.is_empty() {
                "of the build reproduced"
            } else {
                &path
            },
            lock.packages.len()
        ));
        Ok(Prepared {
            base,
            outcome: LockOutcome {
                path,
                changed: false,
                reason: None,
                changes: Vec::new(),
                packages: lock.packages.len(),
                base_key: key,
                lock,
            },
        })
    };
    let base_sources = stack.base.sources();
    let (sources, pins, reason, old) = match (mode, current) {
        (LockMode::Exact(l), _) => return exact((**l).clone(), String::new(), log),
        (LockMode::Locked, None) => bail!(
            "{path_text} does not exist, and --locked builds only from a lock: run `drover lock \
             {}` and commit the lock",
            stack.name
        ),
        (LockMode::Locked, Some(l)) if !fresh(&l) => bail!(
            "the lock {path_text} is out of date ({}), and --locked refuses to change it: run \
             `drover lock {}` and commit the lock",
            why_stale(&l, stack, arch),
            stack.name
        ),
        (LockMode::Locked | LockMode::Follow, Some(l)) if fresh(&l) => {
            return exact(l, path_text, log)
        }
        (LockMode::Follow, None) => (base_sources, Vec::new(), "created".to_string(), None),
        (LockMode::Follow | LockMode::Locked, Some(l)) => {
            let why = why_stale(&l, stack, arch);
            // Keep the suites the lock already uses (e.g. the security suite after an
            // update), so the packages that stay keep their versions.
            let sources = merge_sources(&[&base_sources, &l.sources()]);
            let pins = l.packages.clone();
            (sources, pins, format!("inputs changed: {why}"), Some(l))
        }
        (LockMode::Update(sel), l) => {
            let tracked: Vec<AptSource> = stack.track.apt.clone();
            let lock_sources = l.as_ref().map(Lock::sources).unwrap_or_default();
            let sources = merge_sources(&[&base_sources, &lock_sources, &tracked]);
            let pins: Vec<LockedPackage> = l
                .as_ref()
                .map(|l| {
                    l.packages
                        .iter()
                        .filter(|p| !sel.moves(p))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if let Some(l) = &l {
                unknown_names(sel, l, &path, stack)?;
            }
            (sources, pins, "updates applied".to_string(), l)
        }
    };
    lock::check_writable(&path)?;
    log.say(&format!(
        "lock {path_text}: resolving with apt ({reason}); {} package(s) stay pinned",
        pins.len()
    ));
    let tpl = template(stack, arch, sources);
    let known = old
        .as_ref()
        .map(|o| o.packages.as_slice())
        .unwrap_or_default();
    let keyrings = super::keyrings::keyrings_of(stack);
    let (base, new) = base::resolve(paths, &tpl, &keyrings, &pins, known, refresh, log)?;
    let changes = match &old {
        Some(o) => lock::diff(o, &new),
        None => Vec::new(),
    };
    let changed = old.as_ref() != Some(&new);
    if changed {
        new.write(&path)?;
        // Who moved the lock and how, beside the builds and deploys (a detached log of
        // `drover lock` has no store: the caller records it).
        if let Ok(store) = log.store() {
            let _ = store.audit(
                "lock",
                Some(&stack.name),
                &format!(
                    "{path_text}: {reason}; {} package(s) changed",
                    changes.len()
                ),
            );
        }
    }
    for c in &changes {
        log.say(&format!("lock: {} ({})", c.line(), c.kind.as_str()));
    }
    log.say(&format!(
        "lock {path_text}: {} package(s), {}",
        new.packages.len(),
        if changed {
            format!("{} changed", changes.len())
        } else {
            "unchanged".to_string()
        }
    ));
    let base_key = base.key.clone();
    Ok(Prepared {
        base,
        outcome: LockOutcome {
            path: path_text,
            changed,
            reason: changed.then_some(reason),
            changes,
            packages: new.packages.len(),
            base_key,
            lock: new,
        },
    })
}

/// The source packages that have a security update ([`crate::updates::is_security`]) in
/// the newest update check of `stack`, for `--security-only`.
///
/// Errors: the stack was never checked (run `drover updates STACK` first), or the store
/// cannot be read.
pub fn security_sources(store: &crate::store::Store, stack: &str) -> Result<Vec<String>> {
    let Some((_, updates)) = store.latest_update_check(stack)? else {
        bail!(
            "--security-only needs to know which updates are security updates, and stack \
             {stack} was never checked: run `drover updates {stack}` first"
        );
    };
    let set: BTreeSet<String> = updates
        .iter()
        .filter(|u| crate::updates::is_security(u))
        .map(|u| u.source.clone())
        .collect();
    Ok(set.into_iter().collect())
}

/// Fill in [`LockChange::cves`]: the CVEs the newest update check of `stack` says each new
/// version fixes (changelog CVEs and feed CVEs). A store error leaves them empty.
pub fn attach_cves(store: &crate::store::Store, stack: &str, changes: &mut [LockChange]) {
    let Ok(Some((_, updates))) = store.latest_update_check(stack) else {
        return;
    };
    for c in changes.iter_mut() {
        let Some(new) = &c.new else { continue };
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for u in updates
            .iter()
            .filter(|u| u.package == c.name && u.arch == c.arch && &u.candidate == new)
        {
            ids.extend(u.cves.iter().cloned());
            ids.extend(u.feed_cves.iter().map(|f| f.id.clone()));
        }
        c.cves = ids.into_iter().collect();
    }
}

/// `drover lock STACK [--update …]` and the console's lock action: settle the lock as
/// `mode` says (making its base, which the next build then reuses) and return what
/// changed, with the CVEs each update fixes. Progress goes to `observer` only; no build is
/// recorded.
///
/// Errors: those of [`prepare`].
pub fn lock_stack(
    paths: &Paths,
    stack: &Stack,
    mode: &LockMode,
    observer: &mut dyn FnMut(&crate::jobs::BuildEvent),
) -> Result<LockOutcome> {
    let store = super::select::open_store(paths)?;
    let arch = base::host_arch()?;
    let mut log = BuildLog::detached(observer);
    let mut outcome = prepare(paths, stack, &arch, mode, false, &mut log)?.outcome;
    if outcome.changed {
        let _ = store.audit(
            "lock",
            Some(&stack.name),
            &format!(
                "{}: {}; {} package(s) changed",
                outcome.path,
                outcome.reason.as_deref().unwrap_or("refreshed"),
                outcome.changes.len()
            ),
        );
    }
    attach_cves(&store, &stack.name, &mut outcome.changes);
    Ok(outcome)
}
