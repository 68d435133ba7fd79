//! Key and event handling: `update(state, msg) -> effects`, the top-level reducer and
//! dispatcher. A key goes to the open overlay (`overlays::*::key`), else to the text field
//! ([`super::panes::input_key`]), else through the keymap to an [`Action`]: the global ones
//! (overlays, pane switching, focus, back, quit) are done here, the rest go to the pane
//! that owns them (`panes::*`). Job messages go to [`super::overlays::jobs::on_msg`].
//! Nothing here does I/O: what needs it comes back as an [`Effect`] for the app loop.

use crate::deploy::api::LifecycleAction;
use crossterm::event::KeyEvent;
use tui_input::Input;

use super::keymap::Action;
use super::state::{Focus, InputTarget, Overlay, Pane, State};

// Re-exported: call sites name them as `update::{Msg, JobMsg, Effect}`.
pub use super::msg::{Effect, JobMsg, Msg};
use super::overlays;
use super::panes;
// Re-exported: they were public here before the overlays and panes got their own modules.
pub use super::overlays::detail::{show_config_problems, update_detail};
pub use super::overlays::palette::{completions, COMMANDS};
pub use super::panes::log::in_log;
pub use super::panes::updates::stale_updates_text;

/// Handle one message.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick(now) => {
            state.now = now;
            Vec::new()
        }
        Msg::Job(j) => overlays::jobs::on_msg(state, j),
        Msg::Agent(a) => {
            state.agent = a;
            Vec::new()
        }
        Msg::Stacks(loaded) => {
            super::panes::stacks::on_loaded(state, loaded);
            match state.select_when_loaded.take() {
                Some(name) if state.stacks.iter().any(|s| s.name == name) => {
                    state.select_stack(&name);
                    // Its builds and panes, for the new selection.
                    vec![Effect::Reload]
                }
                Some(name) => {
                    state.select_when_loaded = Some(name);
                    Vec::new()
                }
                None => Vec::new(),
            }
        }
        Msg::StackCreated(result) => {
            match result {
                Ok((name, text)) => {
                    state.status = Some(text);
                    state.select_when_loaded = Some(name);
                }
                Err(e) => state.status = Some(e),
            }
            vec![Effect::Reload]
        }
        Msg::Detail(result) => {
            overlays::detail::on_loaded(state, result);
            Vec::new()
        }
        Msg::Key(k) => {
            if k.kind != crossterm::event::KeyEventKind::Press {
                return Vec::new();
            }
            if let Some(s) = state.status.take() {
                state.last_status = Some(s);
            }
            if state.overlay.is_some() {
                return overlay_key(state, k);
            }
            if state.input.is_some() {
                return panes::input_key(state, k);
            }
            match state.keymap.action(&k) {
                // `esc` goes back and never quits (k9s, lazygit): at the top it only says
                // how to quit.
                Some(Action::Back) if k.code == crossterm::event::KeyCode::Esc && at_top(state) => {
                    state.status = Some("esc goes back; q or ctrl-c quits".into());
                    Vec::new()
                }
                Some(a) => action(state, a),
                None => Vec::new(),
            }
        }
    }
}

/// True when `back` would quit: stacks list focused, no fullscreen, no stacks filter.
fn at_top(state: &State) -> bool {
    !state.fullscreen && state.focus == Focus::Stacks && state.stacks_list.filter.is_empty()
}

fn overlay_key(state: &mut State, k: KeyEvent) -> Vec<Effect> {
    let Some(overlay) = state.overlay.take() else {
        return Vec::new();
    };
    let act = state.keymap.action(&k);
    match overlay {
        Overlay::Help { input, scroll } => overlays::help::key(state, k, input, scroll),
        Overlay::Palette { input, selected } => {
            let (mut effects, then) = overlays::palette::key(state, k, input, selected);
            if let Some(a) = then {
                effects.extend(action(state, a));
            }
            effects
        }
        Overlay::Confirm(c) => overlays::confirm::key(state, k, act, c),
        Overlay::Jobs { selected } => overlays::jobs::key(state, act, selected),
        Overlay::Detail {
            title,
            lines,
            scroll,
            page,
            max,
        } => overlays::detail::key(state, k, title, lines, scroll, page, max),
    }
}

/// Do the action `a` of a key (or of a palette command): the global ones here, the others
/// in the pane that owns them.
fn action(state: &mut State, a: Action) -> Vec<Effect> {
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
        Action::Filter => panes::filter(state),
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
        | Action::PaneReleases
        | Action::PaneLogs => {
            state.pane = match a {
                Action::PaneBuilds => Pane::Builds,
                Action::PaneLog => Pane::Log,
                Action::PaneManifest => Pane::Manifest,
                Action::PaneUpdates => Pane::Updates,
                Action::PaneLogs => Pane::Logs,
                _ => Pane::Releases,
            };
            state.focus = Focus::Pane;
            state.fullscreen = false;
        }
        Action::Left => state.focus = Focus::Stacks,
        Action::Right => state.focus = Focus::Pane,
        Action::Down
        | Action::Up
        | Action::PageDown
        | Action::PageUp
        | Action::Top
        | Action::Bottom => panes::navigate(state, a),
        Action::Enter => return panes::enter(state),
        Action::Back => {
            if state.fullscreen {
                state.fullscreen = false;
            } else if state.focus == Focus::Pane {
                state.focus = Focus::Stacks;
            } else if !state.stacks_list.filter.is_empty() {
                panes::set_filter(state, InputTarget::Stacks, String::new());
            } else {
                return overlays::confirm::ask_quit(state);
            }
        }
        Action::Quit => return overlays::confirm::ask_quit(state),
        Action::Build => panes::builds::build(state),
        Action::CheckUpdates => return panes::updates::check(state),
        Action::Rebuild => panes::updates::rebuild(state),
        Action::Deploy => panes::releases::deploy(state, false),
        Action::Rollback => panes::releases::deploy(state, true),
        Action::StopStack => super::lifecycle::ask(state, LifecycleAction::Stop, 0),
        Action::StartStack => super::lifecycle::ask(state, LifecycleAction::Start, 0),
        Action::ScaleUp => super::lifecycle::ask(state, LifecycleAction::Scale, 1),
        Action::ScaleDown => super::lifecycle::ask(state, LifecycleAction::Scale, -1),
        Action::RestartStack => super::lifecycle::ask(state, LifecycleAction::Restart, 0),
        Action::Follow
        | Action::Wrap
        | Action::Fullscreen
        | Action::NextMatch
        | Action::PrevMatch
            if panes::log::visible(state) =>
        {
            return panes::log::action(state, a)
        }
        Action::HideHealth if state.pane == Pane::Logs => super::runlog::toggle_health(state),
        Action::ReleaseLogs if state.pane == Pane::Releases => super::runlog::show_release(state),
        Action::ReleaseFilter if state.pane == Pane::Logs => super::runlog::cycle_release(state),
        Action::InstanceFilter if state.pane == Pane::Logs => super::runlog::cycle_instance(state),
        Action::Sort | Action::SortReverse if state.pane == Pane::Manifest => {
            panes::manifest::sort(state, a == Action::SortReverse)
        }
        Action::Diff => return overlays::diff::ask(state),
        Action::Audit => {
            if let Some(stack) = state.selected_stack().map(str::to_string) {
                state.status = Some("reading the audit log…".into());
                return vec![Effect::Audit { stack }];
            }
        }
        Action::CancelJob => {
            state.overlay = Some(Overlay::Jobs { selected: 0 });
        }
        _ => {}
    }
    Vec::new()
}
