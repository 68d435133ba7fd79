//! The operator console (`drover` without a command): stacks on the left; Builds (with the
//! log), Log, Manifest, Updates and Releases on the right; background builds with live
//! logs. Pure state ([`state`]) changed by [`update::update`] on keys and job events, sized
//! for the terminal by [`viewport::fit`] and drawn by [`render::draw`]; the loop here does
//! the I/O (terminal, store, jobs).
//!
//! The terminal is restored (main screen, cooked mode, cursor) on quit, on error and on a
//! panic of the UI thread; a panic in a background job is reported in the UI.

use std::io::{BufWriter, Stdout};
use std::panic;
use std::sync::OnceLock;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;

use crate::paths::Paths;
use crate::store::Store;

pub mod chrome;
pub mod data;
pub mod jobs;
pub mod keymap;
pub mod lifecycle;
pub mod msg;
pub mod overlays;
pub mod panes;
pub mod render;
pub mod runlog;
pub mod state;
pub mod theme;
pub mod update;
pub mod viewport;
pub mod views;
pub mod widgets;

#[cfg(test)]
mod update_tests;

use state::State;
use update::{Effect, Msg};

/// At most this many frames per second.
pub const FRAME: Duration = Duration::from_millis(16);

/// How often the agent's status is polled for the Releases pane.
pub const AGENT_POLL: Duration = Duration::from_secs(2);

/// The poll interval while a job runs (a deploy's instances show as they start).
pub const AGENT_POLL_FAST: Duration = Duration::from_millis(500);

static UI_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Directory of `keymap.toml` and `theme.toml`: `$XDG_CONFIG_HOME/drover`
/// (`~/.config/drover`).
pub fn user_config_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".config"))
        })
        .map(|d| d.join("drover"))
}

/// `keymap.toml` and `theme.toml` from `dir`, each falling back to the defaults where it
/// is broken, with one message per broken file (both are reported when both are broken).
pub fn load_user_config(
    dir: &std::path::Path,
    depth: theme::ColorDepth,
) -> (keymap::Keymap, theme::Theme, Vec<String>) {
    let (k, e1) = keymap::Keymap::load(dir);
    let (t, e2) = theme::Theme::load(dir, depth);
    (k, t, e1.into_iter().chain(e2).collect())
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped (normal return, `?` errors, unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Open the console on `paths` and run it until the operator quits.
pub fn run(paths: &Paths) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the console needs a terminal (stdin and stdout); for scripts use a command, \
             see drover --help"
        );
    }
    let store = crate::build::select::open_store(paths)?;

    let depth = theme::ColorDepth::detect();
    let (keymap, theme, problems) = match user_config_dir() {
        Some(dir) => load_user_config(&dir, depth),
        None => (
            keymap::Keymap::default(),
            theme::Theme::new(depth),
            Vec::new(),
        ),
    };

    let _ = UI_THREAD.set(std::thread::current().id());
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if Some(std::thread::current().id()) == UI_THREAD.get().copied() {
            restore_terminal();
            eprintln!("drover: the console crashed: {info}");
        }
        // Other threads (jobs): the job's JoinError carries the message to the UI; printing
        // here would scribble over the screen.
    }));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = {
        enable_raw_mode().context("cannot switch the terminal to raw mode (is it a terminal?)")?;
        let _guard = TerminalGuard;
        execute!(std::io::stdout(), EnterAlternateScreen)?;
        // One large buffer, flushed once per frame: the terminal gets each frame in one
        // write instead of stdout's 1 KiB pieces (no half-drawn frames on slow links).
        let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 18, std::io::stdout()));
        let mut terminal = Terminal::new(backend)?;
        terminal.clear()?;
        rt.block_on(app(&mut terminal, paths, store, keymap, theme, problems))
    };
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = panic::take_hook();
    panic::set_hook(previous);
    result
}

async fn app(
    terminal: &mut Terminal<CrosstermBackend<BufWriter<Stdout>>>,
    paths: &Paths,
    store: Store,
    keymap: keymap::Keymap,
    theme: theme::Theme,
    problems: Vec<String>,
) -> Result<()> {
    let mut state = State::new(
        paths.state.display().to_string(),
        chrono::Utc::now(),
        keymap,
    );
    // Config-file problems open in a Detail overlay at start (readable at any width, not
    // wrapped into the stacks box); `:problems` shows them again, the header counts them.
    state.config_problems = problems;
    update::show_config_problems(&mut state);
    data::reload(&mut state, paths, &store)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (agent_tx, mut agent_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut agent_poll = AGENT_POLL;
    let mut agent_polling = false;
    let mut next_agent_poll = tokio::time::Instant::now();
    let (checks_tx, mut checks_rx) = tokio::sync::mpsc::unbounded_channel();
    let (detail_tx, mut detail_rx) = tokio::sync::mpsc::unbounded_channel();
    let (created_tx, mut created_rx) = tokio::sync::mpsc::unbounded_channel();
    // The Stacks list is read off the UI task with its own connection, one load at a
    // time: the connection is here when no load runs; a reload asked for meanwhile runs
    // when that load is back (so it sees what changed after the running one started).
    let (stacks_tx, mut stacks_rx) = tokio::sync::mpsc::unbounded_channel();
    // A second connection to the store opened (and recovered) above: a plain open.
    let mut stacks_store = Some(Store::open(&paths.database())?);
    let mut stacks_again = false;
    // Scheduled update checks (drover.toml `check_interval`) while the console is open.
    let checks_cancel = crate::jobs::CancelToken::new();
    let checks = jobs::spawn_scheduled_checks(paths.clone(), checks_cancel.clone(), checks_tx);
    let mut events = EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let mut ticks = 0u64;
    loop {
        if state.quit {
            break;
        }
        if dirty && last_draw.elapsed() >= FRAME {
            data::sync(&mut state, &store)?;
            // Size the viewport first (it may move the visible log range: height,
            // follow), fill that range, then draw once from the settled state.
            let size = terminal.size()?;
            viewport::fit(&mut state, Rect::new(0, 0, size.width, size.height));
            if !state
                .log
                .covers(state.log.top, state.log.top + state.log.height)
            {
                data::ensure_window(&mut state.log, &store)?;
            }
            terminal.draw(|f| render::draw(f, &state, &theme))?;
            dirty = false;
            last_draw = Instant::now();
        }
        let next_frame = tokio::time::Instant::from_std(last_draw + FRAME);
        let effects: Vec<Effect> = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) => {
                    dirty = true;
                    update::update(&mut state, Msg::Key(k))
                }
                Some(Ok(Event::Resize(..))) => {
                    dirty = true;
                    Vec::new()
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                None => break,
            },
            Some(m) = rx.recv() => {
                dirty = true;
                let mut effects = update::update(&mut state, Msg::Job(m));
                // Drain what is already queued: one frame for a burst of log lines.
                for _ in 0..50_000 {
                    match rx.try_recv() {
                        Ok(m) => effects.extend(update::update(&mut state, Msg::Job(m))),
                        Err(_) => break,
                    }
                }
                effects
            },
            _ = clock.tick() => {
                dirty = true;
                ticks += 1;
                let mut e = update::update(&mut state, Msg::Tick(chrono::Utc::now()));
                // Pick up builds made elsewhere (the CLI) now and then.
                if ticks.is_multiple_of(5) {
                    e.push(Effect::Reload);
                }
                e
            },
            _ = tokio::time::sleep_until(next_agent_poll), if !agent_polling => {
                // The agent's routes and instances, without ever starting it.
                agent_polling = true;
                jobs::poll_agent(paths.clone(), agent_tx.clone());
                Vec::new()
            },
            Some(a) = agent_rx.recv() => {
                agent_polling = false;
                if state.running_jobs() == 0 {
                    agent_poll = AGENT_POLL;
                }
                next_agent_poll = tokio::time::Instant::now() + agent_poll;
                // Nothing is drawn when nothing changed.
                let before = state.agent.clone();
                let e = update::update(&mut state, Msg::Agent(a));
                dirty |= state.agent != before;
                e
            },
            Some((s, loaded)) = stacks_rx.recv() => {
                dirty = true;
                if std::mem::take(&mut stacks_again) {
                    let q = data::StackQuery::of(&state);
                    data::spawn_load_stacks(paths.clone(), s, q, stacks_tx.clone());
                } else {
                    stacks_store = Some(s);
                }
                update::update(&mut state, Msg::Stacks(loaded))
            },
            Some(d) = detail_rx.recv() => {
                dirty = true;
                update::update(&mut state, Msg::Detail(d))
            },
            Some(c) = created_rx.recv() => {
                dirty = true;
                update::update(&mut state, Msg::StackCreated(c))
            },
            Some(line) = checks_rx.recv() => {
                dirty = true;
                state.status = Some(line);
                vec![Effect::Reload]
            },
            _ = tokio::time::sleep_until(next_frame), if dirty => Vec::new(),
        };
        let mut reloaded = false;
        for e in effects {
            match e {
                Effect::StartBuild {
                    job,
                    stack,
                    cancel,
                    apply_updates,
                } => {
                    jobs::spawn_build(paths.clone(), stack, apply_updates, job, cancel, tx.clone())
                }
                Effect::CheckUpdates { job, stack } => {
                    jobs::spawn_check(paths.clone(), stack, job, tx.clone())
                }
                Effect::Lock { job, stack, update } => {
                    jobs::spawn_lock(paths.clone(), stack, update, job, tx.clone())
                }
                Effect::Deploy { job, req } => {
                    jobs::spawn_deploy(paths.clone(), req, job, tx.clone());
                    // Show the new instances as they start.
                    agent_poll = AGENT_POLL_FAST;
                }
                Effect::Lifecycle { job, req } => {
                    jobs::spawn_lifecycle(paths.clone(), req, job, tx.clone());
                    agent_poll = AGENT_POLL_FAST;
                }
                Effect::Reload if !reloaded => {
                    reloaded = true;
                    // The list and the selected stack's panes, off the UI task.
                    match stacks_store.take() {
                        Some(s) => {
                            let q = data::StackQuery::of(&state);
                            data::spawn_load_stacks(paths.clone(), s, q, stacks_tx.clone())
                        }
                        None => stacks_again = true,
                    }
                }
                Effect::Reload => {}
                Effect::NewStack { name, template } => {
                    let (paths, tx) = (paths.clone(), created_tx.clone());
                    tokio::task::spawn_blocking(move || {
                        let _ = tx.send(jobs::new_stack(&paths, &name, &template));
                    });
                }
                Effect::Diff { stack, a, b } => {
                    let (paths, tx) = (paths.clone(), detail_tx.clone());
                    tokio::task::spawn_blocking(move || {
                        let _ = tx.send(overlays::diff::load(&paths, &stack, a, b));
                    });
                }
                Effect::ReleaseDetail { stack, release } => {
                    let (paths, tx) = (paths.clone(), detail_tx.clone());
                    tokio::task::spawn_blocking(move || {
                        let _ = tx.send(panes::releases::load_detail(&paths, &stack, release));
                    });
                }
                Effect::Audit { stack } => {
                    let (paths, tx) = (paths.clone(), detail_tx.clone());
                    tokio::task::spawn_blocking(move || {
                        let _ = tx.send(overlays::detail::load_audit(&paths, &stack));
                    });
                }
                Effect::SearchLog {
                    needle,
                    from,
                    forward,
                } => {
                    if let Err(e) = data::search(&mut state, &store, &needle, from, forward) {
                        state.status = Some(format!("search failed: {e:#}"));
                    }
                }
            }
        }
    }
    // A scheduled check's auto-rebuild stops with the console (recorded as cancelled).
    checks_cancel.cancel();
    checks.abort();
    // Jobs were cancelled on quit (after confirmation); give builds a moment to record it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.running_jobs() > 0 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(m)) => {
                update::update(&mut state, Msg::Job(m));
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_broken_config_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keymap.toml"), "[keys]\nbogus = \"x\"\n").unwrap();
        std::fs::write(dir.path().join("theme.toml"), "accent = \"not-a-colour\"\n").unwrap();
        let (k, _, problems) = load_user_config(dir.path(), theme::ColorDepth::None);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("keymap.toml") && problems[0].contains("bogus"));
        assert!(problems[1].contains("theme.toml") && problems[1].contains("accent"));
        assert_eq!(k.first(keymap::Action::Build), "b", "defaults still work");
        let mut s = State::new("/state".into(), chrono::Utc::now(), k);
        s.config_problems = problems;
        update::show_config_problems(&mut s);
        match &s.overlay {
            Some(state::Overlay::Detail { title, lines, .. }) => {
                assert!(title.contains("2"), "{title}");
                let text = lines.join("\n");
                assert!(
                    text.contains("keymap.toml") && text.contains("theme.toml"),
                    "{text}"
                );
            }
            o => panic!("{o:?}"),
        }
    }
}
