//! Key and event handling: `update(state, msg) -> effects`. Pure apart from cancelling a
//! job's [`crate::jobs::CancelToken`]; everything that needs I/O comes back as an
//! [`Effect`] for the app loop.

use chrono::{DateTime, Utc};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use super::keymap::Action;
use super::state::{Confirm, Focus, InputTarget, Job, JobState, Overlay, Pane, Pending, State};
use crate::jobs::{BuildEvent, CancelToken};
use crate::store::builds::BuildStatus;

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// Progress of a background job.
    Job(JobMsg),
    /// The clock moved.
    Tick(DateTime<Utc>),
}

/// A message from a background job.
#[derive(Debug, Clone)]
pub enum JobMsg {
    /// A build event.
    Event {
        /// Job number.
        job: u64,
        /// The event.
        event: BuildEvent,
    },
    /// The job ended: its status, or an error (`Err`, also for a panicked task).
    Done {
        /// Job number.
        job: u64,
        /// Build status and error text, or why the job could not run.
        outcome: Result<(BuildStatus, Option<String>), String>,
    },
}

/// Work for the app loop.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Run a build of `stack` as job `job`.
    StartBuild {
        /// Job number.
        job: u64,
        /// Stack name.
        stack: String,
        /// Cancels it.
        cancel: CancelToken,
    },
    /// Reload stacks, builds and the manifest from the store.
    Reload,
    /// Find `needle` in the viewed log from line `from`.
    SearchLog {
        /// Text to find.
        needle: String,
        /// First line to look at.
        from: usize,
        /// Direction.
        forward: bool,
    },
}

/// A command of the `:` palette: name, description, whether it works yet.
pub const COMMANDS: &[(&str, &str, bool)] = &[
    ("build", "build the selected stack (or: build NAME)", true),
    ("builds", "show the Builds pane", true),
    ("logs", "show the Log pane", true),
    ("manifest", "show the Manifest pane", true),
    ("updates", "show the Updates pane", true),
    ("releases", "show the Releases pane", true),
    ("jobs", "list background jobs", true),
    ("help", "show the keys", true),
    ("check", "check for updates (not available yet)", false),
    (
        "rebuild",
        "rebuild applying updates (not available yet)",
        false,
    ),
    ("deploy", "deploy (not available yet)", false),
    ("rollback", "roll back (not available yet)", false),
    ("quit", "quit drover", true),
];

/// Palette completions for the typed text.
pub fn completions(text: &str) -> Vec<&'static (&'static str, &'static str, bool)> {
    let word = text.split_whitespace().next().unwrap_or("");
    COMMANDS.iter().filter(|c| c.0.starts_with(word)).collect()
}

/// What `u`, `r`, `d`, `R` say until the console runs them: the CLI command to use meanwhile.
pub fn not_available(action: &str, issue: u32) -> String {
    let cli = if action.contains("rebuild") {
        "drover build STACK --apply-updates"
    } else if action.contains("check") || issue == 4 {
        "drover updates STACK --refresh"
    } else if action.contains("roll") {
        "drover rollback STACK"
    } else {
        "drover deploy STACK"
    };
    format!("{action}: not in the console yet (#{issue}); run `{cli}`")
}

/// Handle one message.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick(now) => {
            state.now = now;
            Vec::new()
        }
        Msg::Job(j) => job(state, j),
        Msg::Key(k) => {
            if k.kind != crossterm::event::KeyEventKind::Press {
                return Vec::new();
            }
            state.status = None;
            if state.overlay.is_some() {
                return overlay_key(state, k);
            }
            if state.input.is_some() {
                return input_key(state, k);
            }
            match state.keymap.action(&k) {
                Some(a) => action(state, a),
                None => Vec::new(),
            }
        }
    }
}

fn job(state: &mut State, msg: JobMsg) -> Vec<Effect> {
    match msg {
        JobMsg::Event { job, event } => {
            let Some(j) = state.jobs.iter_mut().find(|j| j.id == job) else {
                return Vec::new();
            };
            match event {
                BuildEvent::Started { build_id, .. } => {
                    j.build_id = Some(build_id);
                    if state.loaded_stack.as_deref() == Some(j.stack.as_str()) {
                        state.select_build = Some(build_id);
                        // Show its log from the first line: live lines arrive before the
                        // reload selects the build.
                        let (wrap, height) = (state.log.wrap, state.log.height);
                        state.log = super::state::LogView {
                            build_id: Some(build_id),
                            follow: true,
                            wrap,
                            height,
                            ..Default::default()
                        };
                    }
                    vec![Effect::Reload]
                }
                BuildEvent::StepStarted { step, .. } => {
                    j.step = Some(step);
                    Vec::new()
                }
                BuildEvent::Log {
                    build_id,
                    seq,
                    stream,
                    line,
                } => {
                    j.lines += 1;
                    if seq >= 0 {
                        let text = crate::text::sanitize_for_terminal(&line);
                        if state.log.build_id == Some(build_id) {
                            state
                                .log
                                .push_live(seq as usize, stream.as_str(), text.clone());
                        }
                        j.live.push_live(seq as usize, stream.as_str(), text);
                    }
                    Vec::new()
                }
                BuildEvent::Base { .. } => Vec::new(),
                BuildEvent::Finished { .. } => vec![Effect::Reload],
            }
        }
        JobMsg::Done { job, outcome } => {
            let now = state.now;
            let Some(j) = state.jobs.iter_mut().find(|j| j.id == job) else {
                return Vec::new();
            };
            j.finished = Some(now);
            let build = j
                .build_id
                .map(|b| format!("build #{b}"))
                .unwrap_or_else(|| "build".into());
            let (st, msg) = match outcome {
                Ok((BuildStatus::Succeeded, _)) => (
                    JobState::Succeeded,
                    format!("{build} of {} succeeded", j.stack),
                ),
                Ok((BuildStatus::Cancelled, _)) => (
                    JobState::Cancelled,
                    format!("{build} of {} cancelled; no image kept", j.stack),
                ),
                Ok((s, e)) => {
                    let e = e.unwrap_or_else(|| s.as_str().to_string());
                    (
                        JobState::Failed(e.clone()),
                        format!("{build} of {} {}: {e}", j.stack, s.as_str()),
                    )
                }
                Err(e) => (
                    JobState::Failed(e.clone()),
                    format!("job {job} ({} {}) failed: {e}", j.kind, j.stack),
                ),
            };
            j.state = st;
            state.status = Some(crate::text::sanitize_for_terminal(&msg));
            vec![Effect::Reload]
        }
    }
}

fn overlay_key(state: &mut State, k: KeyEvent) -> Vec<Effect> {
    let Some(overlay) = state.overlay.take() else {
        return Vec::new();
    };
    let act = state.keymap.action(&k);
    match overlay {
        Overlay::Help {
            mut input,
            mut scroll,
        } => {
            match k.code {
                KeyCode::Esc => return Vec::new(),
                KeyCode::Char('q') | KeyCode::Char('?') if input.value().is_empty() => {
                    return Vec::new()
                }
                KeyCode::Down => scroll += 1,
                KeyCode::Up => scroll = scroll.saturating_sub(1),
                KeyCode::PageDown => scroll += 10,
                KeyCode::PageUp => scroll = scroll.saturating_sub(10),
                KeyCode::Enter => return Vec::new(),
                _ => {
                    input.handle_event(&Event::Key(k));
                    scroll = 0;
                }
            }
            state.overlay = Some(Overlay::Help { input, scroll });
            Vec::new()
        }
        Overlay::Palette {
            mut input,
            mut selected,
        } => {
            let n = completions(input.value()).len();
            match k.code {
                KeyCode::Esc => return Vec::new(),
                KeyCode::Enter => return run_command(state, input.value(), selected),
                KeyCode::Down => selected = (selected + 1).min(n.saturating_sub(1)),
                KeyCode::Up => selected = selected.saturating_sub(1),
                KeyCode::Tab => {
                    if let Some(c) = completions(input.value()).get(selected) {
                        let rest: Vec<&str> = input.value().split_whitespace().skip(1).collect();
                        let mut v = c.0.to_string();
                        if !rest.is_empty() {
                            v = format!("{v} {}", rest.join(" "));
                        }
                        input = Input::new(v);
                        selected = 0;
                    }
                }
                _ => {
                    input.handle_event(&Event::Key(k));
                    selected = 0;
                }
            }
            state.overlay = Some(Overlay::Palette { input, selected });
            Vec::new()
        }
        Overlay::Confirm(c) => {
            let yes = matches!(
                k.code,
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter
            );
            let no = matches!(
                k.code,
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc
            ) || act == Some(Action::Back);
            if yes {
                return confirmed(state, c.pending);
            }
            if !no {
                state.overlay = Some(Overlay::Confirm(c));
            } else {
                state.status = Some("cancelled: nothing was changed".into());
            }
            Vec::new()
        }
        Overlay::Jobs { mut selected } => {
            let n = state.jobs.len();
            match act {
                Some(Action::Back) | Some(Action::Jobs) => return Vec::new(),
                Some(Action::Quit) => return action(state, Action::Quit),
                Some(Action::Down) => selected = (selected + 1).min(n.saturating_sub(1)),
                Some(Action::Up) => selected = selected.saturating_sub(1),
                Some(Action::Top) => selected = 0,
                Some(Action::Bottom) => selected = n.saturating_sub(1),
                Some(Action::CancelJob) => {
                    // Newest first on screen.
                    if let Some(j) = state.jobs.iter().rev().nth(selected) {
                        if j.state == JobState::Running {
                            let c = Confirm {
                                title: format!("Cancel job {}?", j.id),
                                body: vec![
                                    format!(
                                        "job {}: {} of {}{}",
                                        j.id,
                                        j.kind,
                                        j.stack,
                                        j.build_id
                                            .map(|b| format!(" (build #{b})"))
                                            .unwrap_or_default()
                                    ),
                                    "running children are stopped; the build is recorded".into(),
                                    "as cancelled and leaves no image.".into(),
                                ],
                                pending: Pending::CancelJob(j.id),
                            };
                            state.overlay = Some(Overlay::Confirm(c));
                            return Vec::new();
                        }
                        state.status = Some(format!("job {} is not running", j.id));
                    }
                }
                Some(Action::Enter) => {
                    if let Some(j) = state.jobs.iter().rev().nth(selected) {
                        if let Some(b) = j.build_id {
                            let stack = j.stack.clone();
                            select_stack(state, &stack);
                            state.select_build = Some(b);
                            state.pane = Pane::Log;
                            state.focus = Focus::Pane;
                            return vec![Effect::Reload];
                        }
                    }
                }
                _ => {}
            }
            state.overlay = Some(Overlay::Jobs { selected });
            Vec::new()
        }
        Overlay::Detail { title, lines } => {
            if !(matches!(k.code, KeyCode::Esc | KeyCode::Enter) || act == Some(Action::Back)) {
                state.overlay = Some(Overlay::Detail { title, lines });
            }
            Vec::new()
        }
    }
}

fn select_stack(state: &mut State, name: &str) {
    if let Some(p) = state
        .stacks_list
        .visible
        .iter()
        .position(|i| state.stacks[*i].name == name)
    {
        state.stacks_list.selected = p;
    }
}

fn run_command(state: &mut State, text: &str, selected: usize) -> Vec<Effect> {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    let arg = words.next().map(str::to_string);
    let name = match COMMANDS.iter().find(|c| c.0 == first) {
        Some(c) => c.0,
        None => match completions(text).get(selected) {
            Some(c) => c.0,
            None => {
                state.status = Some(format!("unknown command `{first}`; press : and tab"));
                return Vec::new();
            }
        },
    };
    match name {
        "build" => {
            if let Some(a) = arg {
                if !state.stacks.iter().any(|s| s.name == a) {
                    state.status = Some(format!("no stack named `{a}`"));
                    return Vec::new();
                }
                select_stack(state, &a);
                let mut e = vec![Effect::Reload];
                e.extend(action(state, Action::Build));
                return e;
            }
            action(state, Action::Build)
        }
        "builds" => action(state, Action::PaneBuilds),
        "logs" => action(state, Action::PaneLog),
        "manifest" => action(state, Action::PaneManifest),
        "updates" => action(state, Action::PaneUpdates),
        "releases" => action(state, Action::PaneReleases),
        "jobs" => action(state, Action::Jobs),
        "help" => action(state, Action::Help),
        "check" => action(state, Action::CheckUpdates),
        "rebuild" => action(state, Action::Rebuild),
        "deploy" => action(state, Action::Deploy),
        "rollback" => action(state, Action::Rollback),
        "quit" => action(state, Action::Quit),
        _ => Vec::new(),
    }
}

fn confirmed(state: &mut State, p: Pending) -> Vec<Effect> {
    match p {
        Pending::Build(stack) => {
            let id = state.next_job;
            state.next_job += 1;
            let cancel = CancelToken::new();
            state.jobs.push(Job {
                id,
                kind: "build".into(),
                stack: stack.clone(),
                build_id: None,
                step: None,
                lines: 0,
                started: state.now,
                finished: None,
                state: JobState::Running,
                cancel: cancel.clone(),
                live: Default::default(),
            });
            state.pane = Pane::Builds;
            state.focus = Focus::Pane;
            state.log.follow = true;
            state.status = Some(format!("job {id}: building {stack}; J lists jobs"));
            vec![Effect::StartBuild {
                job: id,
                stack,
                cancel,
            }]
        }
        Pending::CancelJob(id) => {
            if let Some(j) = state.jobs.iter().find(|j| j.id == id) {
                j.cancel.cancel();
                state.status = Some(format!("job {id}: cancelling…"));
            }
            Vec::new()
        }
        Pending::Quit => {
            for j in &state.jobs {
                if j.state == JobState::Running {
                    j.cancel.cancel();
                }
            }
            state.quit = true;
            Vec::new()
        }
    }
}

fn input_key(state: &mut State, k: KeyEvent) -> Vec<Effect> {
    let Some((target, mut input)) = state.input.take() else {
        return Vec::new();
    };
    match k.code {
        KeyCode::Esc => {
            if target != InputTarget::LogSearch {
                set_filter(state, target, String::new());
            }
            return Vec::new();
        }
        KeyCode::Enter => {
            if target == InputTarget::LogSearch {
                let needle = input.value().to_string();
                if needle.is_empty() {
                    state.log.search = None;
                    state.log.matched = None;
                    return Vec::new();
                }
                state.log.search = Some(needle.clone());
                return vec![Effect::SearchLog {
                    needle,
                    from: state.log.top,
                    forward: true,
                }];
            }
            return Vec::new();
        }
        _ => {
            if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
                return action(state, Action::Quit);
            }
            input.handle_event(&Event::Key(k));
        }
    }
    if target != InputTarget::LogSearch {
        set_filter(state, target, input.value().to_string());
    }
    state.input = Some((target, input));
    Vec::new()
}

fn set_filter(state: &mut State, target: InputTarget, f: String) {
    match target {
        InputTarget::Stacks => {
            state.stacks_list.filter = f;
            let rows = std::mem::take(&mut state.stacks);
            state.set_stacks(rows);
        }
        InputTarget::Builds => {
            state.builds_list.filter = f;
            state.refilter_builds();
        }
        InputTarget::Manifest => {
            state.manifest_list.filter = f;
            state.refilter_manifest();
        }
        InputTarget::LogSearch => {}
    }
}

/// Whether keys go to the log (Log pane focused, or fullscreen).
pub fn in_log(state: &State) -> bool {
    state.fullscreen || (state.focus == Focus::Pane && state.pane == Pane::Log)
}

/// Whether log-only keys (`f`, `w`, `n`, `N`, `F`) apply: a log is on screen.
fn log_visible(state: &State) -> bool {
    state.fullscreen || matches!(state.pane, Pane::Log | Pane::Builds)
}

fn quit(state: &mut State) -> Vec<Effect> {
    let n = state.running_jobs();
    if n == 0 {
        state.quit = true;
        return Vec::new();
    }
    state.overlay = Some(Overlay::Confirm(Confirm {
        title: "Quit drover?".into(),
        body: vec![
            format!("{n} job(s) still running: they are cancelled"),
            "(builds are recorded as cancelled and leave no image).".into(),
        ],
        pending: Pending::Quit,
    }));
    Vec::new()
}

fn scroll_log(state: &mut State, delta: isize) {
    let l = &mut state.log;
    l.follow = false;
    l.top = (l.top as isize + delta).clamp(0, l.max_top() as isize) as usize;
}

fn action(state: &mut State, a: Action) -> Vec<Effect> {
    let page = state.log.height.max(1) as isize;
    let list_page = state.list_height.max(1) as isize;
    match a {
        Action::Help => {
            state.overlay = Some(Overlay::Help {
                input: Input::default(),
                scroll: 0,
            })
        }
        Action::Palette => {
            state.overlay = Some(Overlay::Palette {
                input: Input::default(),
                selected: 0,
            })
        }
        Action::Jobs => state.overlay = Some(Overlay::Jobs { selected: 0 }),
        Action::Filter => {
            let target = if in_log(state) {
                InputTarget::LogSearch
            } else if state.focus == Focus::Stacks {
                InputTarget::Stacks
            } else {
                match state.pane {
                    Pane::Builds => InputTarget::Builds,
                    Pane::Manifest => InputTarget::Manifest,
                    Pane::Log => InputTarget::LogSearch,
                    Pane::Updates | Pane::Releases => {
                        state.status = Some("nothing to filter here yet".into());
                        return Vec::new();
                    }
                }
            };
            let current = match target {
                InputTarget::Stacks => state.stacks_list.filter.clone(),
                InputTarget::Builds => state.builds_list.filter.clone(),
                InputTarget::Manifest => state.manifest_list.filter.clone(),
                InputTarget::LogSearch => state.log.search.clone().unwrap_or_default(),
            };
            state.input = Some((target, Input::new(current)));
        }
        Action::NextPane | Action::PrevPane => {
            if state.focus == Focus::Stacks {
                state.focus = Focus::Pane;
            } else {
                let i = state.pane.index() as isize + if a == Action::NextPane { 1 } else { -1 };
                state.pane = Pane::ALL[i.rem_euclid(Pane::ALL.len() as isize) as usize];
            }
        }
        Action::PaneBuilds
        | Action::PaneLog
        | Action::PaneManifest
        | Action::PaneUpdates
        | Action::PaneReleases => {
            state.pane = match a {
                Action::PaneBuilds => Pane::Builds,
                Action::PaneLog => Pane::Log,
                Action::PaneManifest => Pane::Manifest,
                Action::PaneUpdates => Pane::Updates,
                _ => Pane::Releases,
            };
            state.focus = Focus::Pane;
            state.fullscreen = false;
        }
        Action::Left => state.focus = Focus::Stacks,
        Action::Right => state.focus = Focus::Pane,
        Action::Down | Action::Up | Action::PageDown | Action::PageUp => {
            let (d, p) = match a {
                Action::Down => (1, 1),
                Action::Up => (-1, 1),
                Action::PageDown => (1, list_page),
                _ => (-1, list_page),
            };
            if in_log(state) {
                let p = if p == 1 { 1 } else { page };
                scroll_log(state, d * p);
            } else {
                move_list(state, d * p);
            }
        }
        Action::Top | Action::Bottom => {
            let last = a == Action::Bottom;
            if in_log(state) {
                state.log.top = if last { state.log.max_top() } else { 0 };
                state.log.follow = last;
            } else if let Some(l) = focused_list(state) {
                l.jump(last);
            }
        }
        Action::Enter => enter(state),
        Action::Back => {
            if state.fullscreen {
                state.fullscreen = false;
            } else if state.focus == Focus::Pane {
                state.focus = Focus::Stacks;
            } else if !state.stacks_list.filter.is_empty() {
                set_filter(state, InputTarget::Stacks, String::new());
            } else {
                return quit(state);
            }
        }
        Action::Quit => return quit(state),
        Action::Build => {
            let Some(name) = state.selected_stack().map(str::to_string) else {
                state.status = Some("no stack selected".into());
                return Vec::new();
            };
            if let Some(j) = state
                .jobs
                .iter()
                .find(|j| j.stack == name && j.state == JobState::Running)
            {
                state.status = Some(format!(
                    "a build of {name} is already running (job {}); J lists jobs",
                    j.id
                ));
                return Vec::new();
            }
            let from = state
                .stacks
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.last_build.as_ref())
                .map(|b| match &b.image_digest {
                    Some(d) => format!("image {} (build #{})", crate::text::short_digest(d), b.id),
                    None => format!("no image (last build #{} {})", b.id, b.status.as_str()),
                })
                .unwrap_or_else(|| "no image yet".into());
            state.overlay = Some(Overlay::Confirm(Confirm {
                title: format!("Build {name}?"),
                body: vec![
                    format!("stack  {name}"),
                    format!("from   {from}"),
                    "to     a new image from the stack file: base layer (cached".into(),
                    "       when unchanged), app layer, manifest, OCI archive".into(),
                    "Runs in the background; the log streams into Builds.".into(),
                    "Nothing that runs is changed; J lists jobs, x cancels.".into(),
                ],
                pending: Pending::Build(name),
            }));
        }
        Action::CheckUpdates => state.status = Some(not_available("check for updates", 4)),
        Action::Rebuild => {
            state.status = Some(not_available("rebuild applying pending updates", 4))
        }
        Action::Deploy => state.status = Some(not_available("deploy", 5)),
        Action::Rollback => state.status = Some(not_available("rollback", 5)),
        Action::Follow if log_visible(state) => {
            state.log.follow = !state.log.follow;
            if state.log.follow {
                state.log.top = state.log.max_top();
            }
        }
        Action::Wrap if log_visible(state) => state.log.wrap = !state.log.wrap,
        Action::Fullscreen if log_visible(state) => state.fullscreen = !state.fullscreen,
        Action::NextMatch | Action::PrevMatch if log_visible(state) => {
            let Some(needle) = state.log.search.clone() else {
                state.status = Some("no search yet: press / in the log".into());
                return Vec::new();
            };
            let forward = a == Action::NextMatch;
            let from = match state.log.matched {
                Some(m) if forward => m + 1,
                Some(m) => match m.checked_sub(1) {
                    Some(f) => f,
                    None => {
                        state.status = Some(format!("`{needle}`: no earlier match"));
                        return Vec::new();
                    }
                },
                None => state.log.top,
            };
            return vec![Effect::SearchLog {
                needle,
                from,
                forward,
            }];
        }
        Action::Sort | Action::SortReverse if state.pane == Pane::Manifest => {
            if a == Action::Sort {
                state.manifest_sort = state.manifest_sort.next();
                state.manifest_desc = false;
            } else {
                state.manifest_desc = !state.manifest_desc;
            }
            state.refilter_manifest();
        }
        Action::CancelJob => {
            state.overlay = Some(Overlay::Jobs { selected: 0 });
        }
        _ => {}
    }
    Vec::new()
}

fn focused_list(state: &mut State) -> Option<&mut super::state::ListState> {
    if state.focus == Focus::Stacks {
        return Some(&mut state.stacks_list);
    }
    match state.pane {
        Pane::Builds => Some(&mut state.builds_list),
        Pane::Manifest => Some(&mut state.manifest_list),
        Pane::Updates => Some(&mut state.updates_list),
        Pane::Releases => Some(&mut state.releases_list),
        Pane::Log => None,
    }
}

fn move_list(state: &mut State, delta: isize) {
    if let Some(l) = focused_list(state) {
        l.step(delta);
    }
}

fn enter(state: &mut State) {
    if state.focus == Focus::Stacks {
        state.focus = Focus::Pane;
        return;
    }
    match state.pane {
        Pane::Builds => {
            if state.selected_build().is_some() {
                state.pane = Pane::Log;
            }
        }
        Pane::Manifest => {
            if let Some(c) = state
                .manifest_list
                .current()
                .and_then(|i| state.manifest.get(i))
            {
                state.overlay = Some(Overlay::Detail {
                    title: format!("{} {}", c.name, c.version),
                    lines: vec![
                        format!("package         {}", c.name),
                        format!("version         {}", c.version),
                        format!("architecture    {}", c.arch),
                        format!("source          {} {}", c.source, c.source_version),
                        format!(
                            "suite           {}",
                            if c.suite.is_empty() { "-" } else { &c.suite }
                        ),
                        format!("origin          {}", c.origin),
                        format!(
                            "installed size  {}",
                            c.installed_size_kib
                                .map(|k| format!("{k} KiB"))
                                .unwrap_or_else(|| "-".into())
                        ),
                    ],
                });
            }
        }
        Pane::Updates => {
            if let Some(u) = state
                .updates_list
                .current()
                .and_then(|i| state.updates.get(i))
            {
                let mut lines = vec![
                    format!("source    {}", u.source),
                    format!("packages  {}", u.packages.join(", ")),
                    format!("version   {} -> {}", u.from, u.to),
                    format!("urgency   {}", u.urgency),
                    String::new(),
                ];
                lines.extend(u.cves.iter().cloned());
                state.overlay = Some(Overlay::Detail {
                    title: format!("Update of {}", u.source),
                    lines,
                });
            }
        }
        Pane::Log | Pane::Releases => {}
    }
}
