//! Everything the console shows, as plain data. No I/O: the app loop fills it from the
//! store and from job events, [`super::update`] changes it on keys, [`super::render`]
//! draws it.

use chrono::{DateTime, Utc};
use tui_input::Input;

use super::keymap::Keymap;
pub use super::views::{ListState, LogView, RuntimeSource, LOG_TAIL, LOG_WINDOW};
use crate::deploy::api::{AgentStatus, DeployRequest};
use crate::jobs::{CancelToken, Step};
use crate::manifest::Component;
use crate::store::builds::BuildRecord;
use crate::store::deploys::ReleaseRecord;

/// The panes on the right, in tab order (`1`–`5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// Build history with the log of the selected build below it.
    Builds,
    /// The log of the selected (or running) build, full pane.
    Log,
    /// The components manifest of the newest succeeded build.
    Manifest,
    /// Pending updates by source package, with a CVE detail view.
    Updates,
    /// Releases with the live route and instances.
    Releases,
    /// The selected stack's runtime log (what its instances print), filtered.
    Logs,
}

impl Pane {
    /// All panes in order.
    pub const ALL: [Pane; 6] = [
        Pane::Builds,
        Pane::Log,
        Pane::Manifest,
        Pane::Updates,
        Pane::Releases,
        Pane::Logs,
    ];

    /// Title shown in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Builds => "Builds",
            Pane::Log => "Log",
            Pane::Manifest => "Manifest",
            Pane::Updates => "Updates",
            Pane::Releases => "Releases",
            Pane::Logs => "Logs",
        }
    }

    /// Title in a narrow tab bar (the selected pane keeps [`Pane::title`]).
    pub fn short_title(self) -> &'static str {
        match self {
            Pane::Manifest => "Manif",
            Pane::Updates => "Upd",
            Pane::Releases => "Rel",
            p => p.title(),
        }
    }

    /// Position in [`Pane::ALL`].
    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// Which side has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The stacks list on the left.
    Stacks,
    /// The selected pane on the right.
    Pane,
}

/// A row of the Stacks list.
#[derive(Debug, Clone, PartialEq)]
pub struct StackRow {
    /// Stack name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Newest build, any status.
    pub last_build: Option<BuildRecord>,
    /// Pending updates: count and highest urgency (`None` until update tracking exists).
    pub updates: Option<(usize, String)>,
    /// The newest check is of an older build than the newest succeeded one (after a
    /// rebuild): `updates` is not about the image in use (shown as `?`).
    pub updates_stale: bool,
    /// Deployed release (`None` until deploys exist).
    pub release: Option<String>,
    /// How its releases replace each other ([`crate::stack::Stack::strategy`]).
    pub strategy: crate::stack::Strategy,
    /// How long the newest recreate left the route without a release, milliseconds
    /// ([`crate::store::Store::last_unavailable_ms`]); `None` before the first.
    pub last_unavailable_ms: Option<f64>,
    /// `protocol = "tcp"`: its route pipes connections (no HTTP status to answer with).
    pub tcp: bool,
    /// Why the row has no valid stack file: `Broken` (the file does not parse) or
    /// `Orphaned` (no file, but a release is live); `None` for a loaded stack.
    pub problem: Option<RowProblem>,
}

/// What is wrong with a Stacks row ([`StackRow::problem`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    /// The stack file does not parse: its first diagnostic.
    Broken(String),
    /// No stack file, and this release is still live behind its route.
    Orphaned(i64),
}

/// A row of the Updates pane (filled by the updates feature, issue #4).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRow {
    /// Source package the binary packages come from.
    pub source: String,
    /// Binary packages affected.
    pub packages: Vec<String>,
    /// Installed version.
    pub from: String,
    /// Candidate version.
    pub to: String,
    /// CVE identifiers fixed by the candidate.
    pub cves: Vec<String>,
    /// Highest urgency (`low`, `medium`, `high`, `critical`, …).
    pub urgency: String,
    /// Suite(s) the candidates come from.
    pub suites: Vec<String>,
    /// The changelog entries between installed and candidate, newest first, when cached.
    pub entries: Vec<UpdateEntry>,
    /// `None` for a Debian source package; the ecosystem (`pypi`, `npm`, `cargo`) for a
    /// language package with a newer registry version (not applied by a rebuild).
    pub ecosystem: Option<String>,
}

/// One changelog entry of an update (for the detail view).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateEntry {
    /// Source version of the entry.
    pub version: String,
    /// Its urgency.
    pub urgency: String,
    /// Its date as written in the changelog.
    pub date: String,
    /// CVE ids it names.
    pub cves: Vec<String>,
    /// DSA/DLA advisories it names.
    pub advisories: Vec<String>,
    /// Its text, kept for a high-urgency entry that names no CVE (else empty).
    pub text: String,
}

/// What the console knows of the agent (polled on its socket, never started to look).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AgentView {
    /// Not polled yet.
    #[default]
    Unknown,
    /// No agent answers on `STATE/agent.sock`.
    NotRunning,
    /// The socket refuses this user (EACCES: the agent runs as another user); the message
    /// names the socket and the fix ([`crate::deploy::api::AgentError::PermissionDenied`]).
    Denied(String),
    /// The agent's latest status.
    Running(AgentStatus),
}

/// Manifest columns, for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestColumn {
    /// Package name.
    Package,
    /// Version.
    Version,
    /// Source package.
    Source,
    /// Suite.
    Suite,
}

impl ManifestColumn {
    /// The next column (the `s` key).
    pub fn next(self) -> ManifestColumn {
        match self {
            ManifestColumn::Package => ManifestColumn::Version,
            ManifestColumn::Version => ManifestColumn::Source,
            ManifestColumn::Source => ManifestColumn::Suite,
            ManifestColumn::Suite => ManifestColumn::Package,
        }
    }
}

/// State of a background job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Still working.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished unsuccessfully (message).
    Failed(String),
    /// Stopped on request.
    Cancelled,
}

/// A background job: a build, an update check, a deploy or a rollback.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job number in this session.
    pub id: u64,
    /// `build`, `rebuild`, `check`, `deploy`, `rollback`.
    pub kind: String,
    /// The stack it works on.
    pub stack: String,
    /// The build id once known.
    pub build_id: Option<i64>,
    /// Current step.
    pub step: Option<Step>,
    /// Log lines seen.
    pub lines: u64,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: Option<DateTime<Utc>>,
    /// Outcome.
    pub state: JobState,
    /// Cancels it.
    pub cancel: CancelToken,
    /// The newest log lines of its build (only the tail is used), so switching the view
    /// back to a running build shows every line at once; for other jobs their progress
    /// lines and outcome.
    pub live: LogView,
}

/// What a confirmation dialog will do on yes.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// Start a build of this stack.
    Build(String),
    /// Start a build of this stack applying its pending updates.
    Rebuild(String),
    /// Deploy or roll back (`rollback`).
    Deploy(DeployRequest),
    /// Stop, start, scale or restart a stack's live release.
    Lifecycle(crate::deploy::api::LifecycleRequest),
    /// Cancel this job.
    CancelJob(u64),
    /// Quit although jobs are running (they are cancelled).
    Quit,
}

/// A question with what will happen.
#[derive(Debug, Clone)]
pub struct Confirm {
    /// Title (`Build hello?`).
    pub title: String,
    /// What happens, line by line.
    pub body: Vec<String>,
    /// The action on yes.
    pub pending: Pending,
}

/// Which text field is open in the footer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTarget {
    /// Filter the stacks list.
    Stacks,
    /// Filter the builds list.
    Builds,
    /// Filter the manifest.
    Manifest,
    /// Search the log.
    LogSearch,
}

/// An overlay on top of the panes; keys go to it first.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// `?`: every binding, filterable.
    Help {
        /// Filter text.
        input: Input,
        /// First row shown.
        scroll: usize,
    },
    /// `:`: commands with completion.
    Palette {
        /// The command line.
        input: Input,
        /// Selected completion.
        selected: usize,
    },
    /// A yes/no question.
    Confirm(Confirm),
    /// `J`: background jobs.
    Jobs {
        /// Selected job row.
        selected: usize,
    },
    /// `enter` on a manifest row (and other details): a titled text, wrapped to the
    /// screen and scrolled with the list keys.
    Detail {
        /// Title.
        title: String,
        /// Lines (unwrapped; the renderer wraps them to the box width).
        lines: Vec<String>,
        /// First wrapped row shown.
        scroll: usize,
        /// Rows of the last drawn box (for PgUp/PgDn), set by the renderer.
        page: usize,
        /// Largest useful `scroll` at the last drawn size, set by the renderer (before the
        /// first draw: the number of lines).
        max: usize,
    },
}

impl Overlay {
    /// A Detail overlay at its first row.
    pub fn detail(title: String, lines: Vec<String>) -> Overlay {
        let max = lines.len().saturating_sub(1);
        Overlay::Detail {
            title,
            lines,
            scroll: 0,
            page: 10,
            max,
        }
    }
}

/// The whole console state.
#[derive(Debug, Clone)]
pub struct State {
    /// State directory shown in the header.
    pub state_dir: String,
    /// The clock (set by the loop every second; fixed in tests).
    pub now: DateTime<Utc>,
    /// Key bindings.
    pub keymap: Keymap,
    /// Stacks.
    pub stacks: Vec<StackRow>,
    /// Stacks list selection/filter.
    pub stacks_list: ListState,
    /// Problems loading stack files or the store (shown under the stacks).
    pub problems: Vec<String>,
    /// Problems with `keymap.toml` / `theme.toml` (shown in a Detail overlay at start and
    /// with `:problems`; counted in the header).
    pub config_problems: Vec<String>,
    /// Builds of the selected stack, newest first.
    pub builds: Vec<BuildRecord>,
    /// Builds list selection/filter.
    pub builds_list: ListState,
    /// The stack whose builds/manifest are loaded.
    pub loaded_stack: Option<String>,
    /// Build the manifest comes from.
    pub manifest_build: Option<i64>,
    /// Manifest of the selected stack's newest succeeded build.
    pub manifest: Vec<Component>,
    /// Manifest selection/filter.
    pub manifest_list: ListState,
    /// Manifest sort column.
    pub manifest_sort: ManifestColumn,
    /// Manifest sort descending.
    pub manifest_desc: bool,
    /// Pending updates of the selected stack (its newest check), riskiest first.
    pub updates: Vec<UpdateRow>,
    /// Updates selection.
    pub updates_list: ListState,
    /// The build the newest update check looked at (`None`: never checked).
    pub updates_checked: Option<i64>,
    /// Releases of the selected stack, newest first.
    pub releases: Vec<ReleaseRecord>,
    /// Per build id of the selected stack (its newest succeeded builds and the builds of
    /// its releases): how deploying it would go back from the live release, if it would.
    pub downgrades: std::collections::BTreeMap<i64, crate::deploy::downgrade::Downgrade>,
    /// Per build id of the same candidates: what deploying it changes against the live
    /// release, as [`crate::diff::Diff::summary`] says it (empty when nothing is live).
    pub change_summaries: std::collections::BTreeMap<i64, String>,
    /// The selected stack's route metrics of the last [`crate::tui::panes::releases::TRAFFIC_MINUTES`]
    /// minutes, every release, oldest first (the Releases pane's sparkline).
    pub traffic: Vec<crate::store::metrics::MinuteRow>,
    /// The agent's routes and instances.
    pub agent: AgentView,
    /// Releases selection.
    pub releases_list: ListState,
    /// The log on screen.
    pub log: LogView,
    /// Which runtime log lines the Logs pane shows (release, instance, health lines).
    pub runtime_filter: crate::store::runtime_logs::RuntimeFilter,
    /// The right-hand pane.
    pub pane: Pane,
    /// Left or right.
    pub focus: Focus,
    /// Log fills the screen.
    pub fullscreen: bool,
    /// Open overlay.
    pub overlay: Option<Overlay>,
    /// Open footer text field.
    pub input: Option<(InputTarget, Input)>,
    /// Background jobs, oldest first.
    pub jobs: Vec<Job>,
    /// Next job number.
    pub next_job: u64,
    /// Message in the footer (`not available yet`, errors), wrapped over as many lines
    /// as it needs (up to a third of the screen); cleared by the next key.
    pub status: Option<String>,
    /// A stack to select once the Stacks list holds it (one `:new` just wrote).
    pub select_when_loaded: Option<String>,
    /// The message shown last, kept when the next key clears [`State::status`] (the
    /// palette's `:message` shows it whole).
    pub last_status: Option<String>,
    /// Set when the app should exit.
    pub quit: bool,
    /// Select this build once the builds list is reloaded (a build just started).
    pub select_build: Option<i64>,
    /// Rows of the last drawn list (for paging).
    pub list_height: usize,
    /// The loaded stack's builds that applied updates, with how many packages each
    /// moved (the Builds pane marks them).
    pub applied_updates: std::collections::BTreeMap<i64, usize>,
}

impl State {
    /// An empty console for `state_dir` at `now`.
    pub fn new(state_dir: String, now: DateTime<Utc>, keymap: Keymap) -> State {
        State {
            state_dir,
            now,
            keymap,
            stacks: Vec::new(),
            stacks_list: ListState::default(),
            problems: Vec::new(),
            config_problems: Vec::new(),
            builds: Vec::new(),
            builds_list: ListState::default(),
            loaded_stack: None,
            manifest_build: None,
            manifest: Vec::new(),
            manifest_list: ListState::default(),
            manifest_sort: ManifestColumn::Package,
            manifest_desc: false,
            updates: Vec::new(),
            updates_list: ListState::default(),
            updates_checked: None,
            releases: Vec::new(),
            downgrades: Default::default(),
            change_summaries: Default::default(),
            traffic: Vec::new(),
            agent: AgentView::Unknown,
            releases_list: ListState::default(),
            log: LogView {
                follow: true,
                ..LogView::default()
            },
            runtime_filter: Default::default(),
            pane: Pane::Builds,
            focus: Focus::Stacks,
            fullscreen: false,
            overlay: None,
            input: None,
            jobs: Vec::new(),
            next_job: 1,
            status: None,
            select_when_loaded: None,
            last_status: None,
            quit: false,
            select_build: None,
            list_height: 10,
            applied_updates: Default::default(),
        }
    }

    /// The selected stack's name.
    pub fn selected_stack(&self) -> Option<&str> {
        self.stacks_list.pick(&self.stacks).map(|s| s.name.as_str())
    }

    /// The selected build.
    pub fn selected_build(&self) -> Option<&BuildRecord> {
        self.builds_list.pick(&self.builds)
    }

    /// Add a running job of `kind` on `stack`; returns its number and cancel token.
    pub fn new_job(&mut self, kind: &str, stack: &str) -> (u64, CancelToken) {
        let id = self.next_job;
        self.next_job += 1;
        let cancel = CancelToken::new();
        self.jobs.push(Job {
            id,
            kind: kind.into(),
            stack: stack.into(),
            build_id: None,
            step: None,
            lines: 0,
            started: self.now,
            finished: None,
            state: JobState::Running,
            cancel: cancel.clone(),
            live: Default::default(),
        });
        (id, cancel)
    }

    /// The selected stack with no job of its own running, or why not (set as the status).
    pub fn idle_stack(&mut self, what: &str) -> Option<String> {
        let Some(name) = self.selected_stack().map(str::to_string) else {
            self.status = Some("no stack selected".into());
            return None;
        };
        if let Some(j) = self
            .jobs
            .iter()
            .find(|j| j.stack == name && j.state == JobState::Running)
        {
            self.status = Some(format!(
                "cannot {what} {name}: job {} ({}) is running; J lists jobs",
                j.id, j.kind
            ));
            return None;
        }
        Some(name)
    }

    /// Jobs still running.
    pub fn running_jobs(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .count()
    }

    /// Replace the stacks (keeps the selection by name and reapplies the filter).
    pub fn set_stacks(&mut self, rows: Vec<StackRow>) {
        let cur = self.selected_stack().map(str::to_string);
        self.stacks = rows;
        let f = self.stacks_list.filter.to_lowercase();
        let stacks = &self.stacks;
        self.stacks_list.visible = Vec::new();
        self.stacks_list.refilter(0..stacks.len(), |i| {
            stacks[i].name.to_lowercase().contains(&f)
        });
        if let Some(c) = cur {
            self.select_stack(&c);
        }
    }

    /// Select the stack `name` in the Stacks list (when it is listed under the filter).
    pub fn select_stack(&mut self, name: &str) {
        let stacks = &self.stacks;
        self.stacks_list.select_where(|i| stacks[i].name == name);
    }

    /// Replace the builds (keeps the selected build id).
    pub fn set_builds(&mut self, builds: Vec<BuildRecord>) {
        let cur = self.selected_build().map(|b| b.id);
        self.builds = builds;
        self.refilter_builds();
        if let Some(c) = cur {
            let builds = &self.builds;
            self.builds_list.select_where(|i| builds[i].id == c);
        }
    }

    /// Replace the pending updates (keeps the selection index, clamped).
    pub fn set_updates(&mut self, rows: Vec<UpdateRow>) {
        self.updates = rows;
        let n = self.updates.len();
        self.updates_list.refilter(0..n, |_| true);
    }

    /// `(checked, newest)` when the newest update check looked at an older build than the
    /// newest succeeded one (after a rebuild): its rows are not about the image in use.
    pub fn updates_stale(&self) -> Option<(i64, i64)> {
        match (self.updates_checked, self.manifest_build) {
            (Some(c), Some(n)) if c < n => Some((c, n)),
            _ => None,
        }
    }

    /// Replace the releases (keeps the selected release).
    pub fn set_releases(&mut self, rows: Vec<ReleaseRecord>) {
        let cur = self.releases_list.pick(&self.releases).map(|r| r.release);
        self.releases = rows;
        let n = self.releases.len();
        self.releases_list.refilter(0..n, |_| true);
        if let Some(p) = cur.and_then(|c| self.releases.iter().position(|r| r.release == c)) {
            self.releases_list.selected = p;
        }
    }

    /// Replace the manifest.
    pub fn set_manifest(&mut self, build: Option<i64>, rows: Vec<Component>) {
        self.manifest_build = build;
        self.manifest = rows;
        self.manifest_list.selected = 0;
        self.refilter_manifest();
    }

    /// Reapply the builds filter (matches id, status, digest, step, error).
    pub fn refilter_builds(&mut self) {
        let f = self.builds_list.filter.to_lowercase();
        let b = &self.builds;
        self.builds_list.refilter(0..b.len(), |i| {
            f.is_empty()
                || format!(
                    "#{} {} {} {} {}",
                    b[i].id,
                    b[i].status.as_str(),
                    b[i].image_digest.as_deref().unwrap_or(""),
                    b[i].failed_step.as_deref().unwrap_or(""),
                    b[i].error.as_deref().unwrap_or("")
                )
                .to_lowercase()
                .contains(&f)
        });
    }

    /// Reapply the manifest sort and filter (matches package, version, source, suite).
    pub fn refilter_manifest(&mut self) {
        let f = self.manifest_list.filter.to_lowercase();
        let m = &self.manifest;
        let mut order: Vec<usize> = (0..m.len()).collect();
        let key = |c: &Component| -> (String, String) {
            match self.manifest_sort {
                ManifestColumn::Package => (c.name.clone(), c.arch.clone()),
                ManifestColumn::Version => (c.version.clone(), c.name.clone()),
                ManifestColumn::Source => (c.source.clone(), c.name.clone()),
                ManifestColumn::Suite => (c.suite.clone(), c.name.clone()),
            }
        };
        if self.manifest_sort == ManifestColumn::Version {
            // Debian version order (Policy §5.6.12: 1.10 after 1.9, epochs first); a
            // version that does not parse sorts as text after every valid one.
            let parsed: Vec<_> = m
                .iter()
                .map(|c| crate::debian::packages::parse_version(&c.version))
                .collect();
            order.sort_by(|&a, &b| {
                let va = (parsed[a].is_none(), &parsed[a], &m[a].version, &m[a].name);
                let vb = (parsed[b].is_none(), &parsed[b], &m[b].version, &m[b].name);
                va.cmp(&vb)
            });
        } else {
            order.sort_by_cached_key(|i| key(&m[*i]));
        }
        if self.manifest_desc {
            order.reverse();
        }
        self.manifest_list.refilter(order.into_iter(), |i| {
            let c = &m[i];
            f.is_empty()
                || c.name.to_lowercase().contains(&f)
                || c.version.to_lowercase().contains(&f)
                || c.source.to_lowercase().contains(&f)
                || c.suite.to_lowercase().contains(&f)
        });
    }

    /// The build whose log the Builds/Log panes show: the selected one.
    pub fn log_target(&self) -> Option<i64> {
        self.selected_build().map(|b| b.id)
    }
}
