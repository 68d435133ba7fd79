//! Pending updates: each components-manifest entry compared with the candidates of the
//! stack's tracked suites, by Debian version ordering (Debian Policy §5.6.12, via the
//! `debversion` crate), then the CVEs each update fixes layered on top ([`cves`]).
//!
//! A pending update is a strictly newer candidate from a tracked suite whose repository
//! belongs to the same family (Release `Origin`, e.g. `Debian`) as the repository the
//! package was installed from: Debian data is never applied to a package from another
//! repository (or to a `local` one). The repositories a build script added to the image
//! ([`crate::debian::sources`]) are tracked too, each as a family of its own, verified with
//! the key found in the image.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Context, Result};
use debversion::Version;
use sha2::Digest;

use crate::debian::packages::parse_version;
use crate::debian::{Candidate, PackageIndex, RepoClient, SyncedRepo, TrackedRepo};
use crate::manifest::Component;
use crate::paths::Paths;
use crate::stack::{RepoTrust, Stack};
use crate::store::Store;

pub mod cves;
pub mod feeds;
pub mod notify;
pub mod registries;
pub mod schedule;

pub use crate::manifest::pending::{attach_open, DebRef, FeedCve, PendingUpdate};
pub use schedule::{run_check, RunReport};

/// A pending update of binary `package` of `source` from version 1 to 2 on amd64 with
/// changelog `cves` (unit tests).
#[cfg(test)]
pub(crate) fn test_update(
    package: &str,
    source: &str,
    suite: &str,
    cves: &[&str],
) -> PendingUpdate {
    PendingUpdate {
        package: package.into(),
        arch: "amd64".into(),
        installed: "1".into(),
        candidate: "2".into(),
        suite: suite.into(),
        source: source.into(),
        source_installed: "1".into(),
        source_candidate: "2".into(),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        urgency: None,
        checked_at: "t".into(),
        advisories: vec![],
        dates: vec![],
        deb: None,
        feed_cves: vec![],
        open_cves: vec![],
    }
}

/// Whether `u` is a security update: it fixes a CVE (named by its changelog or by a feed),
/// or its changelog urgency is `high` or above, or it comes from a `*-security` suite.
/// Notifications and `auto_rebuild = "security"` use this definition.
pub fn is_security(u: &PendingUpdate) -> bool {
    !u.cves.is_empty()
        || !u.feed_cves.is_empty()
        || urgency_rank(u.urgency.as_deref()) >= urgency_rank(Some("high"))
        || u.suite.ends_with("-security")
}

/// Compare a manifest with an index. `families` maps a mirror URL (as recorded in the
/// manifest's `origin`) to its repository family; entries whose origin has no family, or
/// another family than a candidate's, get no update from it. Results are grouped by source
/// package (sorted by source, then package and arch); `cves`/`urgency` are left empty.
pub fn find_pending(
    manifest: &[Component],
    index: &PackageIndex,
    families: &HashMap<String, String>,
    checked_at: &str,
) -> Vec<PendingUpdate> {
    let mut out = Vec::new();
    // Manifests hold few origins: remember the last lookup.
    let mut last: Option<(&str, Option<&str>)> = None;
    for c in manifest {
        let family = match last {
            Some((o, f)) if o == c.origin => f,
            _ => {
                let f = families.get(&c.origin).map(String::as_str);
                last = Some((&c.origin, f));
                f
            }
        };
        let Some(family) = family else {
            continue;
        };
        let mut best: Option<(Version, &Candidate)> = None;
        let mut installed: Option<Version> = None;
        for cand in index.candidates(&c.name, &c.arch) {
            if cand.version == c.version || &*cand.family != family {
                continue;
            }
            // The installed version is parsed once, on the first candidate (lazy: most
            // packages have none); an unparsable one has no updates.
            if installed.is_none() {
                match parse_version(&c.version) {
                    Some(v) => installed = Some(v),
                    None => break,
                }
            }
            let (Some(cv), Some(inst)) = (cand.parsed(), installed.as_ref()) else {
                continue;
            };
            if cv > *inst && best.as_ref().is_none_or(|(bv, _)| cv > *bv) {
                best = Some((cv, cand));
            }
        }
        if let Some((_, b)) = best {
            out.push(PendingUpdate {
                package: c.name.clone(),
                arch: c.arch.clone(),
                installed: c.version.clone(),
                candidate: b.version.to_string(),
                suite: b.suite.to_string(),
                source: c.source.clone(),
                source_installed: c.source_version.clone(),
                source_candidate: b.source_version.clone(),
                cves: Vec::new(),
                urgency: None,
                checked_at: checked_at.to_string(),
                advisories: Vec::new(),
                dates: Vec::new(),
                deb: Some(DebRef {
                    mirror: b.mirror.to_string(),
                    filename: b.filename.clone(),
                    size: b.size,
                    sha256: b.sha256.clone(),
                }),
                feed_cves: Vec::new(),
                open_cves: Vec::new(),
            });
        }
    }
    out.sort_by(|a, b| (&a.source, &a.package, &a.arch).cmp(&(&b.source, &b.package, &b.arch)));
    out
}

/// Rank of an urgency (Debian Policy §5.6.17): unknown < low < medium < high < emergency
/// < critical.
pub fn urgency_rank(u: Option<&str>) -> u8 {
    match u.map(|s| s.to_ascii_lowercase()) {
        Some(s) if s == "critical" => 5,
        Some(s) if s == "emergency" => 4,
        Some(s) if s == "high" => 3,
        Some(s) if s == "medium" => 2,
        Some(s) if s == "low" => 1,
        _ => 0,
    }
}

/// Sort by risk: highest urgency first, then most CVEs (changelog and feed), then source
/// and package name (binaries of one source stay together since they share urgency and CVEs).
pub fn sort_by_risk(updates: &mut [PendingUpdate]) {
    let n = |u: &PendingUpdate| u.cves.len() + u.feed_cves.len();
    updates.sort_by(|a, b| {
        urgency_rank(b.urgency.as_deref())
            .cmp(&urgency_rank(a.urgency.as_deref()))
            .then(n(b).cmp(&n(a)))
            .then((&a.source, &a.package, &a.arch).cmp(&(&b.source, &b.package, &b.arch)))
    });
}

/// The result of checking one stack.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Stack name.
    pub stack: String,
    /// The build whose manifest was checked.
    pub build_id: i64,
    /// RFC 3339 UTC time of the check.
    pub checked_at: String,
    /// Pending updates, riskiest first.
    pub updates: Vec<PendingUpdate>,
    /// Problems that did not stop the check (a waived signature, an unreadable changelog);
    /// each names its repository or package.
    pub warnings: Vec<String>,
    /// Refreshes that failed, so the previous good cached index was used; each names the
    /// repository. The CLI reports them as errors (exit 1) after printing the result.
    pub refresh_errors: Vec<String>,
    /// Language packages of the build with a newer version in their registry (asked on
    /// `refresh` or when the build was never checked; otherwise the previous answer).
    pub lang_updates: Vec<registries::LangUpdate>,
    /// CVEs of installed source packages that no pending update fixes, from the feeds
    /// (sorted by source, then id).
    pub open_cves: Vec<FeedCve>,
    /// Feeds that could not be used (each names the feed, the file and position, and what);
    /// the changelog results stand. Reported like `refresh_errors`.
    pub feed_errors: Vec<String>,
    /// When the live release runs another build than the newest: that build's pending
    /// updates against the same indexes (what runs is what is exposed), stored as a check
    /// of that build just before the newest build's.
    pub live: Option<LiveCheck>,
    /// When the newest build made a VM image: the pending updates of its boot layer's
    /// packages (the kernel, systemd, …) against the same indexes. They are not in the
    /// lock: `drover build STACK --vm --refresh-base` makes the boot layer again with them.
    pub vm: Option<VmCheck>,
}

/// The pending updates of a VM image's boot packages ([`CheckReport::vm`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VmCheck {
    /// The build whose VM image it is.
    pub build_id: i64,
    /// `qcow2` or `raw`.
    pub format: String,
    /// The boot packages' pending updates, riskiest first (changelog CVEs layered).
    pub updates: Vec<PendingUpdate>,
}

/// The pending updates of what is live, when it is not the newest build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveCheck {
    /// The live release.
    pub release: i64,
    /// Its build.
    pub build_id: i64,
    /// Its pending updates, riskiest first (changelog and feed CVEs as for the newest).
    pub updates: Vec<PendingUpdate>,
}

/// How many pending updates a check found and from how many source packages: the counts
/// of every one-line check summary (CLI, console jobs, scheduled checks), worded once by
/// its `Display`: `U pending update(s) from S source package(s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSummary {
    /// Pending updates (binary packages).
    pub updates: usize,
    /// Distinct source packages they come from (one rebuild fixes all binaries of each).
    pub sources: usize,
}

impl PendingSummary {
    /// The counts of `updates`.
    pub fn of(updates: &[PendingUpdate]) -> PendingSummary {
        let sources: BTreeSet<&str> = updates.iter().map(|u| u.source.as_str()).collect();
        PendingSummary {
            updates: updates.len(),
            sources: sources.len(),
        }
    }
}

impl std::fmt::Display for PendingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pending update(s) from {} source package(s)",
            self.updates, self.sources
        )
    }
}

impl CheckReport {
    /// The counts of this check's pending updates.
    pub fn pending_summary(&self) -> PendingSummary {
        PendingSummary::of(&self.updates)
    }

    /// `STACK: build #N, U pending update(s) from S source package(s)`: the one summary of
    /// a check, which `drover updates`, the console's check job and the scheduled checks
    /// each start their line with.
    pub fn summary_line(&self) -> String {
        format!(
            "{}: build #{}, {}",
            self.stack,
            self.build_id,
            self.pending_summary()
        )
    }
}

/// Options of [`check_stack`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Fetch the repositories anew (conditional requests) instead of using the cache.
    pub refresh: bool,
    /// Read candidate changelogs for CVEs (downloads the candidate .debs).
    pub cves: bool,
}

/// Debian architecture of this machine (`amd64`, `arm64`, …).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The tracked repositories of a stack (`[track].apt` with their trust settings).
pub fn tracked_repos(stack: &Stack) -> Vec<TrackedRepo> {
    stack
        .track
        .apt
        .iter()
        .enumerate()
        .map(|(i, s)| TrackedRepo {
            source: s.clone(),
            trust: stack.track.trust.get(i).cloned().unwrap_or_default(),
            architectures: Vec::new(),
            family: None,
        })
        .collect()
}

/// The family of a repository a build script added: its URI, so that its data applies to
/// nothing but the packages installed from it.
pub fn image_repo_family(uri: &str) -> String {
    format!("image-repo {uri}")
}

/// The repositories build `build_id`'s build script configured in its image (as recorded
/// by the build), ready to sync: each is verified with the key found in the image, written
/// to `STATE/repos/keys/SHA256.gpg` (content-addressed, so a changed key is a new file).
///
/// Errors: the store cannot be read or the key file cannot be written.
pub fn image_tracked_repos(
    paths: &Paths,
    store: &Store,
    build_id: i64,
) -> Result<Vec<TrackedRepo>> {
    let keys = paths.state.join("repos").join("keys");
    let mut out = Vec::new();
    for r in store.image_repos(build_id)? {
        // A `trusted=yes` repository without any key: checked against the default keyring,
        // and the (expected) failure waived with a warning.
        let file = if r.key.data.is_empty() {
            None
        } else {
            let file = keys.join(format!(
                "{}.gpg",
                hex::encode(sha2::Sha256::digest(&r.key.data))
            ));
            if !file.exists() {
                crate::debian::client::write_atomic(&file, &r.key.data)?;
            }
            Some(file)
        };
        out.push(TrackedRepo {
            source: r.source(),
            trust: RepoTrust {
                trusted: r.trusted,
                signed_by: file,
            },
            architectures: r.architectures.clone(),
            family: Some(image_repo_family(&r.uri)),
        });
    }
    Ok(out)
}

/// For `build --apply-updates`: add the stack's tracked apt suites to its base's extra
/// suites (once each), so the build installs the candidates. The base key covers the
/// sources, so this base is cached apart from the plain one. Tracked repositories with
/// their own `signed_by` keyring are added too; the base is made with that keyring
/// ([`crate::build::keyrings::keyrings_of`]).
pub fn add_tracked_suites(stack: &mut Stack) {
    let existing = stack.base.sources();
    for s in &stack.track.apt {
        if !existing
            .iter()
            .any(|e| e.mirror == s.mirror && e.suite == s.suite)
        {
            stack.base.extra_suites.push(s.clone());
        }
    }
}

/// Check a stack's newest succeeded build: sync the tracked repositories (and the base's
/// Release files, for the family of each installed package), find the pending updates,
/// layer the CVEs from changelogs then from `config.feeds`, ask `config.registries` about
/// the language packages, store the result with its time and
/// return it. Most callers want [`run_check`], which also notifies and auto-rebuilds.
///
/// Errors: no succeeded build, or a tracked repository that cannot be used at all (no good
/// cached copy and the fetch failed); the message names the repository. A broken feed is
/// not an error: it is reported in `feed_errors`.
pub fn check_stack(
    paths: &Paths,
    store: &Store,
    stack: &Stack,
    config: &crate::config::Config,
    opts: CheckOptions,
) -> Result<CheckReport> {
    let feeds = &config.feeds;
    let build = store.latest_succeeded(&stack.name)?.with_context(|| {
        format!(
            "stack {} has no succeeded build to check; run `drover build {}` first",
            stack.name, stack.name
        )
    })?;
    let manifest = store.manifest(build.id)?;
    let client = RepoClient::new(&paths.state.join("repos"))?;
    let mut archs: Vec<String> = manifest
        .iter()
        .map(|c| c.arch.clone())
        .filter(|a| a != "all")
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if archs.is_empty() {
        archs.push(host_arch().to_string());
    }
    let mut warnings = Vec::new();
    let mut refresh_errors = Vec::new();
    let mut synced: Vec<SyncedRepo> = Vec::new();
    for repo in tracked_repos(stack) {
        let s = client.sync(&repo, &archs, opts.refresh)?;
        note_problems(&s, &mut warnings, &mut refresh_errors);
        synced.push(s);
    }
    // The repositories the build script added, each its own family: their data applies
    // only to packages installed from them, and Debian data never to those packages.
    for repo in image_tracked_repos(paths, store, build.id)? {
        let repo_archs = repo.archs_of(&archs);
        if repo_archs.is_empty() {
            continue;
        }
        let s = client.sync(&repo, &archs, opts.refresh)?;
        note_problems(&s, &mut warnings, &mut refresh_errors);
        synced.push(s);
    }
    let mut families: HashMap<String, String> = HashMap::new();
    for s in &synced {
        families
            .entry(s.repo.source.mirror.clone())
            .or_insert_with(|| s.family().to_string());
    }
    // The base's own suites: only their Release files, for the family of what came from them.
    for src in stack.base.sources() {
        if families.contains_key(&src.mirror) {
            continue;
        }
        let repo = TrackedRepo::new(src);
        match client.sync(&repo, &[], opts.refresh) {
            Ok(s) => {
                note_problems(&s, &mut warnings, &mut refresh_errors);
                families.insert(s.repo.source.mirror.clone(), s.release.family().to_string());
            }
            Err(e) => warnings.push(format!(
                "{e:#}; packages from {} get no updates in this check",
                repo.name()
            )),
        }
    }
    let index = client.load_index(&synced, &archs)?;
    let checked_at = crate::store::now_rfc3339();
    let mut updates = find_pending(&manifest, &index, &families, &checked_at);
    if opts.cves {
        cves::layer(&client, store, &index, &mut updates, &mut warnings);
    }
    // What runs: the live release's build, when it is another one (its manifest is
    // checked against the same indexes; feeds and open CVEs are the newest build's).
    let live_release = store
        .releases(&stack.name)?
        .into_iter()
        .find(|r| r.status == crate::store::deploys::ReleaseStatus::Live);
    let live = match live_release {
        Some(c) if c.build_id != build.id => {
            let live_manifest = store.manifest(c.build_id)?;
            let mut live_updates = find_pending(&live_manifest, &index, &families, &checked_at);
            if opts.cves {
                cves::layer(&client, store, &index, &mut live_updates, &mut warnings);
            }
            sort_by_risk(&mut live_updates);
            Some(LiveCheck {
                release: c.release,
                build_id: c.build_id,
                updates: live_updates,
            })
        }
        _ => None,
    };
    // The VM image's boot packages: a kernel update needs a new VM image.
    let vm = match crate::build::vm::VmImage::of_build(store, build.id) {
        Ok(Some(image)) if !image.boot_components.is_empty() => {
            let mut vm_updates =
                find_pending(&image.boot_components, &index, &families, &checked_at);
            if opts.cves {
                cves::layer(&client, store, &index, &mut vm_updates, &mut warnings);
            }
            sort_by_risk(&mut vm_updates);
            Some(VmCheck {
                build_id: build.id,
                format: image.format,
                updates: vm_updates,
            })
        }
        Ok(_) => None,
        Err(e) => {
            warnings.push(format!("{e:#}; its boot packages are not checked"));
            None
        }
    };
    let mut feed_errors = Vec::new();
    let mut open_cves = Vec::new();
    if feeds.security_tracker.is_some() || feeds.osv.is_some() {
        // Debian's feeds speak of Debian's packages only: not of a vendor's or local ones.
        let debian: Vec<Component> = manifest
            .iter()
            .filter(|c| {
                families
                    .get(&c.origin)
                    .is_some_and(|f| f == feeds::DEBIAN_FAMILY)
            })
            .cloned()
            .collect();
        let sources: HashSet<&str> = debian.iter().map(|c| c.source.as_str()).collect();
        let codename = feeds::feed_codename(&stack.base.suite);
        let entries = feeds::load(feeds, codename, &sources, &mut feed_errors);
        open_cves = feeds::apply(&entries, &debian, &mut updates);
        attach_open(&mut updates, &open_cves);
    }
    sort_by_risk(&mut updates);
    let lang_updates = check_languages(
        store,
        &config.registries,
        stack,
        build.id,
        opts,
        &checked_at,
        &mut warnings,
    )?;
    let mut problems = refresh_errors.clone();
    problems.extend(feed_errors.iter().cloned());
    problems.extend(warnings.iter().cloned());
    // The live build's check first, so the newest check of the stack stays the newest
    // build's (what `--apply-updates` and the Updates pane work from).
    if let Some(l) = &live {
        store.record_update_check(
            &stack.name,
            l.build_id,
            &checked_at,
            &l.updates,
            &[],
            &problems,
        )?;
    }
    let check_id = store.record_update_check(
        &stack.name,
        build.id,
        &checked_at,
        &updates,
        &open_cves,
        &problems,
    )?;
    store.put_language_updates(check_id, &lang_updates)?;
    Ok(CheckReport {
        stack: stack.name.clone(),
        build_id: build.id,
        checked_at,
        updates,
        warnings,
        refresh_errors,
        lang_updates,
        open_cves,
        feed_errors,
        live,
        vm,
    })
}

/// The language packages of build `build_id` with newer registry versions: asked of the
/// registries on `opts.refresh` or when no earlier check of this build exists, else the
/// earlier check's answer (no network).
fn check_languages(
    store: &Store,
    registries: &registries::Registries,
    stack: &Stack,
    build_id: i64,
    opts: CheckOptions,
    checked_at: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<registries::LangUpdate>> {
    let mut pkgs = store.language_packages(build_id)?;
    registries::keep_tracked(&mut pkgs, &stack.track.registries);
    if pkgs.is_empty() {
        return Ok(Vec::new());
    }
    if !opts.refresh {
        if let Some(prev) = store.latest_check_of_build(&stack.name, build_id)? {
            return store.language_updates(prev);
        }
    }
    let found = registries::check(registries, &pkgs, checked_at);
    warnings.extend(found.warnings);
    Ok(found.updates)
}

fn note_problems(s: &SyncedRepo, warnings: &mut Vec<String>, errors: &mut Vec<String>) {
    if let Some(e) = &s.refresh_error {
        errors.push(format!(
            "refreshing {} failed: {e}; using the previous good index (checked {})",
            s.repo.name(),
            if s.checked_at.is_empty() {
                "earlier"
            } else {
                &s.checked_at
            }
        ));
    }
    if let Some(why) = &s.cache_rejected {
        warnings.push(format!(
            "the cached index of {} was rejected and fetched again: {why}",
            s.repo.name()
        ));
    }
    if let Some(why) = &s.waived {
        warnings.push(format!(
            "SIGNATURE CHECK WAIVED for {} (trusted = true): {why}",
            s.repo.name()
        ));
    }
}
