//! Filling [`State`] from the store and the stack files, with the same library calls the
//! CLI uses (`stack::load_all`, `Store::latest_build`, `Store::builds`, `Store::manifest`,
//! `Store::logs`). Reads are small, indexed queries; the log is read by window only.

use anyhow::Result;

use super::state::{LogView, RowProblem, StackRow, State, UpdateEntry, UpdateRow, LOG_WINDOW};
use crate::paths::Paths;
use crate::store::Store;

/// Stacks with their newest build, and the stack-file problems as text.
pub fn load_stacks(paths: &Paths, store: &Store) -> Result<(Vec<StackRow>, Vec<String>)> {
    let (stacks, diags) = crate::stack::load_all(&paths.config);
    let mut rows = Vec::with_capacity(stacks.len());
    for s in stacks {
        let live = store
            .releases(&s.name)?
            .into_iter()
            .find(|r| r.status == crate::store::deploys::ReleaseStatus::Live);
        // What runs counts: the live release's build when one is live (`?` until that
        // build is checked), else the newest build's check. Debian source packages only:
        // what a rebuild applies and the CVEs are about.
        let checked = match &live {
            Some(r) => match store.latest_succeeded(&s.name)? {
                Some(newest) if newest.id != r.build_id => store
                    .update_check_of_build(&s.name, r.build_id)?
                    .map(|(_, pending)| rows_of(store, pending))
                    .transpose()?,
                _ => update_rows(store, &s.name)?,
            },
            None => update_rows(store, &s.name)?,
        };
        let updates = checked.map(|rows| {
            let debian: Vec<&UpdateRow> = rows.iter().filter(|r| r.ecosystem.is_none()).collect();
            let worst = debian
                .iter()
                .map(|r| r.urgency.as_str())
                .max_by_key(|u| urgency_rank(u))
                .unwrap_or("")
                .to_string();
            (debian.len(), worst)
        });
        let release = live.as_ref().map(|r| format!("#{}", r.release));
        let updates_stale = match (
            store.latest_checked_build(&s.name)?,
            store.latest_succeeded(&s.name)?,
        ) {
            (Some(checked), Some(newest)) => checked < newest.id,
            _ => false,
        };
        rows.push(StackRow {
            strategy: s.strategy(),
            last_unavailable_ms: store.last_unavailable_ms(&s.name)?,
            tcp: s.protocol == crate::stack::Protocol::Tcp,
            last_build: store.latest_build(&s.name)?,
            name: s.name,
            description: s.description,
            updates,
            updates_stale,
            release,
            problem: None,
        });
    }
    // A stack whose file no longer parses keeps its row (its history and live release stay
    // reachable), marked with its first diagnostic; a live release without a file shows
    // as orphaned (it can still be stopped).
    let mut broken: Vec<(String, String)> = Vec::new();
    for d in &diags {
        let Some(name) = d.file.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if d.file.extension().is_some_and(|e| e == "toml")
            && crate::stack::parse::is_valid_stack_name(name)
            && !broken.iter().any(|(n, _)| n == name)
            && !rows.iter().any(|r| r.name == name)
        {
            broken.push((name.to_string(), d.to_string()));
        }
    }
    let mut extra: Vec<StackRow> = Vec::new();
    for (name, first) in broken {
        extra.push(problem_row(store, &name, RowProblem::Broken(first))?);
    }
    for r in store.live_releases()? {
        if !rows.iter().chain(&extra).any(|x| x.name == r.stack) {
            let stack = r.stack.clone();
            extra.push(problem_row(store, &stack, RowProblem::Orphaned(r.release))?);
        }
    }
    let mut problems: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    for r in &extra {
        let file = paths.stacks_dir().join(format!("{}.toml", r.name));
        match (&r.problem, &r.release) {
            (Some(RowProblem::Orphaned(release)), _) => problems.push(format!(
                "{}: no stack file ({}), but release #{release} is live behind its route; \
                 it can be rolled back (R), scaled or stopped (X) with the definition it \
                 was deployed with, or its file restored",
                r.name,
                file.display()
            )),
            (Some(RowProblem::Broken(_)), Some(release)) => problems.push(format!(
                "{}: release {release} stays live; until the file is fixed it can be rolled \
                 back (R), scaled or stopped (X) with the definition it was deployed with",
                r.name
            )),
            _ => {}
        }
    }
    rows.extend(extra);
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((rows, problems))
}

/// The row of a stack known only from the store (its file broken or gone).
fn problem_row(store: &Store, name: &str, problem: RowProblem) -> Result<StackRow> {
    let live = store
        .releases(name)?
        .into_iter()
        .find(|r| r.status == crate::store::deploys::ReleaseStatus::Live);
    Ok(StackRow {
        name: name.to_string(),
        description: String::new(),
        last_build: store.latest_build(name)?,
        updates: None,
        updates_stale: false,
        release: live.map(|r| format!("#{}", r.release)),
        strategy: crate::stack::Strategy::BlueGreen,
        last_unavailable_ms: None,
        tcp: false,
        problem: Some(problem),
    })
}

/// Rank of an urgency, higher is more urgent (one ordering for CLI and console:
/// [`crate::updates::urgency_rank`]).
fn urgency_rank(u: &str) -> u8 {
    crate::updates::urgency_rank(Some(u))
}

/// The newest update check of `stack` as Updates-pane rows, one per source package,
/// riskiest first (urgency, then CVE count). `None` when the stack was never checked.
pub fn update_rows(store: &Store, stack: &str) -> Result<Option<Vec<UpdateRow>>> {
    let Some((_checked_at, pending)) = store.latest_update_check(stack)? else {
        return Ok(None);
    };
    let mut rows = rows_of(store, pending)?;
    // Language packages with newer registry versions: no CVE data, so after the Debian
    // updates; the suite column names the ecosystem.
    for u in store.latest_language_updates(stack)? {
        rows.push(UpdateRow {
            source: format!("{} ({})", u.package, u.ecosystem),
            packages: vec![u.location],
            from: u.installed,
            to: u.latest,
            cves: Vec::new(),
            urgency: String::new(),
            suites: vec![u.registry],
            entries: Vec::new(),
            ecosystem: Some(u.ecosystem),
        });
    }
    Ok(Some(rows))
}

/// Pending Debian updates as rows, one per source package with its CVEs and changelog
/// entries, riskiest first (urgency, then CVE count).
fn rows_of(
    store: &Store,
    pending: Vec<crate::manifest::pending::PendingUpdate>,
) -> Result<Vec<UpdateRow>> {
    let mut rows = group_by_source(pending);
    // The changelog entries behind the CVEs, when the check cached them.
    for r in &mut rows {
        if let Some(entries) = store.cached_changelog(&r.source, &r.to)? {
            r.entries = crate::updates::cves::entries_between(&entries, &r.from, &r.to)
                .into_iter()
                .map(|e| UpdateEntry {
                    version: e.version.clone(),
                    urgency: e.urgency.clone(),
                    date: e.date.clone(),
                    cves: e.cves.clone(),
                    advisories: e.advisories.clone(),
                    text: e.text.clone(),
                })
                .collect();
        }
    }
    Ok(rows)
}

/// Pending Debian updates grouped by source package (its binaries, suites, the CVEs of
/// changelogs and feeds, the highest urgency), riskiest first (urgency, then CVE count):
/// the Updates pane's rows without changelog entries, and `drover updates` in a narrow
/// terminal.
pub fn group_by_source(pending: Vec<crate::manifest::pending::PendingUpdate>) -> Vec<UpdateRow> {
    let mut by_source: std::collections::BTreeMap<String, UpdateRow> = Default::default();
    for p in pending {
        let row = by_source
            .entry(p.source.clone())
            .or_insert_with(|| UpdateRow {
                source: p.source.clone(),
                packages: Vec::new(),
                from: p.source_installed.clone(),
                to: p.source_candidate.clone(),
                cves: Vec::new(),
                urgency: String::new(),
                suites: Vec::new(),
                entries: Vec::new(),
                ecosystem: None,
            });
        row.packages.push(p.package.clone());
        if !row.suites.contains(&p.suite) {
            row.suites.push(p.suite.clone());
        }
        for c in &p.cves {
            if !row.cves.contains(c) {
                row.cves.push(c.clone());
            }
        }
        // CVEs the feeds say the candidate fixes, which its changelog does not name; their
        // urgency counts like a changelog's.
        for f in &p.feed_cves {
            if !row.cves.contains(&f.id) {
                row.cves.push(f.id.clone());
            }
        }
        let feed_urgencies = p.feed_cves.iter().filter_map(|f| f.urgency.as_ref());
        for u in p.urgency.iter().chain(feed_urgencies) {
            if urgency_rank(u) > urgency_rank(&row.urgency) {
                row.urgency = u.clone();
            }
        }
    }
    let mut rows: Vec<UpdateRow> = by_source.into_values().collect();
    rows.sort_by(|a, b| {
        (urgency_rank(&b.urgency), b.cves.len(), &a.source).cmp(&(
            urgency_rank(&a.urgency),
            a.cves.len(),
            &b.source,
        ))
    });
    rows
}

/// What a background reload reads for the selected stack: which stack, the manifest build
/// the state already holds (its rows are not read again when it is still the newest), and
/// the build whose log is shown.
#[derive(Debug, Clone, Default)]
pub struct StackQuery {
    /// The selected stack's name.
    pub name: String,
    /// `Some(build)` when the state holds this stack's manifest of `build` (`None` inside:
    /// no succeeded build); `None` when it must be read.
    pub have_manifest: Option<Option<i64>>,
    /// The build whose log the Log pane shows, for its line count.
    pub log_build: Option<i64>,
}

impl StackQuery {
    /// What `state` would need read for its selected stack; `None` when none is selected.
    pub fn of(state: &State) -> Option<StackQuery> {
        let name = state.selected_stack()?.to_string();
        let have_manifest =
            (state.loaded_stack.as_deref() == Some(name.as_str())).then_some(state.manifest_build);
        Some(StackQuery {
            name,
            have_manifest,
            log_build: state.log.build_id,
        })
    }
}

/// One stack's panes as read from the store ([`read_stack`]), to be put into the state by
/// [`apply_stack`].
#[derive(Debug, Clone)]
pub struct StackData {
    /// The stack.
    pub name: String,
    /// Its builds, newest first.
    pub builds: Vec<crate::store::builds::BuildRecord>,
    /// Its newest update check as rows.
    pub updates: Vec<UpdateRow>,
    /// The build that check looked at.
    pub updates_checked: Option<i64>,
    /// Its releases, newest first.
    pub releases: Vec<crate::store::deploys::ReleaseRecord>,
    /// The builds that applied updates, with how many packages each moved
    /// ([`Store::applied_updates`]).
    pub applied_updates: std::collections::BTreeMap<i64, usize>,
    /// Downgrades of its deploy candidates ([`crate::deploy::downgrade::downgrades`]).
    pub downgrades: std::collections::BTreeMap<i64, crate::deploy::downgrade::Downgrade>,
    /// What deploying each candidate changes against the live release
    /// ([`crate::diff::Diff::summary`]).
    pub change_summaries: std::collections::BTreeMap<i64, String>,
    /// Its route metrics of the last [`crate::tui::panes::releases::TRAFFIC_MINUTES`]
    /// minutes.
    pub traffic: Vec<crate::store::metrics::MinuteRow>,
    /// The newest succeeded build and its manifest; `None` when unchanged from
    /// [`StackQuery::have_manifest`].
    pub manifest: Option<(Option<i64>, Vec<crate::manifest::Component>)>,
    /// The stored line count of [`StackQuery::log_build`]'s log.
    pub log_len: Option<(i64, usize)>,
}

/// Read what the panes of `query.name` show (about eight indexed queries, and the manifest
/// only when its build changed). Errors: the store's.
pub fn read_stack(store: &Store, query: &StackQuery) -> Result<StackData> {
    let name = &query.name;
    let builds = store.builds(name)?;
    let releases = store.releases(name)?;
    // What a deploy of each candidate would undo, for the confirmation (`d`, `R`).
    let mut candidates: Vec<i64> = builds
        .iter()
        .filter(|b| b.status == crate::store::builds::BuildStatus::Succeeded)
        .take(20)
        .map(|b| b.id)
        .collect();
    candidates.extend(releases.iter().map(|r| r.build_id));
    let downgrades = crate::deploy::downgrade::downgrades(store, name, &candidates)?;
    let change_summaries = change_summaries(store, name, &releases, &candidates)?;
    let latest = store.latest_succeeded(name)?.map(|b| b.id);
    let manifest = match query.have_manifest {
        Some(have) if have == latest => None,
        _ => Some((
            latest,
            match latest {
                Some(id) => store.manifest(id)?,
                None => Vec::new(),
            },
        )),
    };
    let log_len = match query.log_build {
        Some(id) => Some((id, store.log_len(id)?.max(0) as usize)),
        None => None,
    };
    Ok(StackData {
        name: name.clone(),
        updates: update_rows(store, name)?.unwrap_or_default(),
        updates_checked: store.latest_checked_build(name)?,
        applied_updates: store.applied_updates(name)?,
        builds,
        releases,
        downgrades,
        change_summaries,
        traffic: {
            let now = crate::store::metrics::minute_of(std::time::SystemTime::now());
            let minutes = crate::tui::panes::releases::TRAFFIC_MINUTES as i64;
            store.route_metrics(name, None, now - (minutes - 1) * 60)?
        },
        manifest,
        log_len,
    })
}

/// [`crate::diff::Diff::summary`] of the live release against each of `candidates` (the
/// package side only: no image archive is read on a reload); empty when nothing is live.
fn change_summaries(
    store: &Store,
    stack: &str,
    releases: &[crate::store::deploys::ReleaseRecord],
    candidates: &[i64],
) -> Result<std::collections::BTreeMap<i64, String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(live) = crate::deploy::plan::Current::from_releases(releases) else {
        return Ok(out);
    };
    let side = |build| crate::diff::Side {
        build,
        release: None,
        image_digest: None,
    };
    // The live side once, not once per candidate (this runs at every 5 s reload).
    let live_read = crate::diff::read_side(store, stack, live.build_id)?;
    for &id in candidates {
        if id == live.build_id || out.contains_key(&id) {
            continue;
        }
        let cand = crate::diff::read_side(store, stack, id)?;
        let d = crate::diff::diff_read(
            store,
            stack,
            (side(live.build_id), &live_read),
            (side(id), &cand),
            false,
        )?;
        out.insert(id, d.summary());
    }
    Ok(out)
}

/// Put `data` into `state`. Data of a stack that is no longer selected is dropped (the
/// selection change read its own); a newly loaded stack starts with its lists at the top.
pub fn apply_stack(state: &mut State, data: StackData) {
    if state.selected_stack() != Some(data.name.as_str()) {
        return;
    }
    let fresh = state.loaded_stack.as_deref() != Some(data.name.as_str());
    if fresh {
        state.builds_list.selected = 0;
        state.builds_list.offset = 0;
        state.manifest_list.filter.clear();
        state.manifest_build = None;
    }
    state.set_builds(data.builds);
    state.set_updates(data.updates);
    state.updates_checked = data.updates_checked;
    state.set_releases(data.releases);
    state.downgrades = data.downgrades;
    state.applied_updates = data.applied_updates;
    state.change_summaries = data.change_summaries;
    state.traffic = data.traffic;
    if let Some(id) = state.select_build {
        let builds = &state.builds;
        if state.builds_list.select_where(|i| builds[i].id == id) {
            state.select_build = None;
        }
    }
    match data.manifest {
        Some((build, rows)) => state.set_manifest(build, rows),
        // Unchanged only relative to what this stack's state held when the read started.
        None if fresh => return,
        None => {}
    }
    state.loaded_stack = Some(data.name);
    if let (Some((id, len)), Some(shown)) = (data.log_len, state.log.build_id) {
        if id == shown {
            state.log.total = state.log.total.max(len);
        }
    }
}

/// Read the Stacks list ([`load_stacks`]: every stack file parsed, ~5 queries per stack)
/// and the selected stack's panes ([`read_stack`]) on a blocking thread, so the UI task
/// keeps drawing; `store` is this load's own connection and comes back with the result on
/// `tx` for the next load. A panic in the load comes back as an error.
pub fn spawn_load_stacks(
    paths: Paths,
    store: Store,
    selected: Option<StackQuery>,
    tx: tokio::sync::mpsc::UnboundedSender<(Store, super::msg::StacksLoad)>,
) {
    use super::msg::{LoadError, Loaded};
    tokio::task::spawn_blocking(move || {
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (rows, problems) = load_stacks(&paths, &store)?;
            let stack = selected
                .map(|q| read_stack(&store, &q).map(Box::new))
                .transpose()?;
            Ok::<_, anyhow::Error>(Loaded {
                rows,
                problems,
                stack,
            })
        }))
        .map_err(|_| LoadError::Panicked)
        .and_then(|r| r.map_err(|e| LoadError::Store(std::sync::Arc::new(e))));
        let _ = tx.send((store, loaded));
    });
}

/// Reload stacks (with the stack-file problems), and the builds and manifest of the
/// selected stack, on the calling thread (the console's first frame).
pub fn reload(state: &mut State, paths: &Paths, store: &Store) -> Result<()> {
    let (rows, problems) = load_stacks(paths, store)?;
    state.problems = problems;
    state.set_stacks(rows);
    reload_stack(state, store)
}

/// Load the builds, updates, releases and manifest of the selected stack on the calling
/// thread (a selection change: the panes must show the new stack in the next frame).
pub fn reload_stack(state: &mut State, store: &Store) -> Result<()> {
    let Some(query) = StackQuery::of(state) else {
        state.loaded_stack = None;
        state.set_builds(Vec::new());
        state.set_manifest(None, Vec::new());
        return Ok(());
    };
    let data = read_stack(store, &query)?;
    apply_stack(state, data);
    Ok(())
}

/// Make the state consistent with the selection: the selected stack's data is loaded, the
/// log view shows the selected build, and the visible log lines are in memory.
pub fn sync(state: &mut State, store: &Store) -> Result<()> {
    if state.selected_stack() != state.loaded_stack.as_deref() {
        reload_stack(state, store)?;
    }
    if state.pane == super::state::Pane::Logs {
        return super::runlog::sync(state, store);
    }
    let target = state.log_target();
    if target != state.log.build_id || state.log.runtime.is_some() {
        let wrap = state.log.wrap;
        let height = state.log.height;
        state.log = LogView {
            build_id: target,
            total: match target {
                Some(id) => store.log_len(id)?.max(0) as usize,
                None => 0,
            },
            follow: true,
            wrap,
            height,
            ..LogView::default()
        };
        // A running build of this session: its newest lines are in memory already.
        if let Some(j) = state
            .jobs
            .iter()
            .find(|j| target.is_some() && j.build_id == target)
        {
            state.log.tail = j.live.tail.clone();
            state.log.tail_start = j.live.tail_start;
            state.log.total = state.log.total.max(j.live.total);
        }
        state.log.top = state.log.max_top();
    }
    ensure_window(&mut state.log, store)
}

/// Load the stored lines around the visible ones when they are not in memory.
pub fn ensure_window(log: &mut LogView, store: &Store) -> Result<()> {
    if log.runtime.is_some() {
        return super::runlog::ensure_window(log, store);
    }
    let Some(id) = log.build_id else {
        return Ok(());
    };
    let Some(from) = log.window_needed() else {
        return Ok(());
    };
    let rows = store.logs(id, from as i64, LOG_WINDOW as i64)?;
    log.window_start = from;
    log.window = rows
        .into_iter()
        .map(|l| (l.stream, crate::text::sanitize_for_terminal(&l.line)))
        .collect();
    log.total = log.total.max(from + log.window.len());
    Ok(())
}

/// Find `needle` in the viewed log and scroll to it.
pub fn search(
    state: &mut State,
    store: &Store,
    needle: &str,
    from: usize,
    forward: bool,
) -> Result<()> {
    let found = match state.log.build_id {
        _ if state.log.runtime.is_some() => {
            super::runlog::find(&state.log, store, needle, from, forward)?.map(|s| s as i64)
        }
        Some(id) => store.find_log(id, from as i64, needle, forward)?,
        None => return Ok(()),
    };
    match found {
        Some(seq) => {
            let seq = seq.max(0) as usize;
            let l = &mut state.log;
            l.matched = Some(seq);
            l.not_found = false;
            l.follow = false;
            l.top = seq.saturating_sub(l.height / 3).min(l.max_top());
            state.status = Some(format!("`{needle}` at line {}", seq + 1));
        }
        None => {
            state.log.not_found = true;
            state.status = Some(format!(
                "`{needle}` not found {}",
                if forward { "below" } else { "above" }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
