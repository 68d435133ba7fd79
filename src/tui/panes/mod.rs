//! The seven panes: each module draws its pane from [`super::state::State`] and handles the
//! keys of its own (`enter` on its rows, its actions). This module routes the keys whose
//! meaning follows the focus: moving in the focused list (or scrolling the log), `enter`,
//! and `/` with the text field it opens (a list filter, or the log search).

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use super::keymap::Action;
use super::msg::Effect;
use super::overlays;
use super::state::{Focus, InputTarget, Pane, State};
use super::views::ListState;

pub mod builds;
pub mod log;
pub mod manifest;
pub mod releases;
pub mod stacks;
pub mod updates;

/// The list that the movement keys move: the Stacks list, or the focused pane's (the log
/// has none: it scrolls).
fn focused_list(state: &mut State) -> Option<&mut ListState> {
    if state.focus == Focus::Stacks {
        return Some(&mut state.stacks_list);
    }
    match state.pane {
        Pane::Builds => Some(&mut state.builds_list),
        Pane::Manifest => Some(&mut state.manifest_list),
        Pane::Updates => Some(&mut state.updates_list),
        Pane::Releases => Some(&mut state.releases_list),
        Pane::Log | Pane::Logs => None,
    }
}

/// `j`/`k`, arrows, PgUp/PgDn, `g`/`G`: scroll the log when it has the keys
/// ([`log::in_log`]), else move the selection of the focused list.
pub fn navigate(state: &mut State, a: Action) {
    let page = state.log.height.max(1) as isize;
    let list_page = state.list_height.max(1) as isize;
    let (d, p) = match a {
        Action::Down => (1, 1),
        Action::Up => (-1, 1),
        Action::PageDown => (1, list_page),
        Action::PageUp => (-1, list_page),
        Action::Top | Action::Bottom => {
            let last = a == Action::Bottom;
            if log::in_log(state) {
                log::jump(state, last);
            } else if let Some(l) = focused_list(state) {
                l.jump(last);
            }
            return;
        }
        _ => return,
    };
    if log::in_log(state) {
        let p = if p == 1 { 1 } else { page };
        log::scroll(state, d * p);
    } else if let Some(l) = focused_list(state) {
        l.step(d * p);
    }
}

/// `enter`: from the Stacks list, focus its panes; in a pane, open its selected row.
pub fn enter(state: &mut State) -> Vec<crate::tui::msg::Effect> {
    if state.focus == Focus::Stacks {
        state.focus = Focus::Pane;
        return Vec::new();
    }
    match state.pane {
        Pane::Builds => builds::enter(state),
        Pane::Manifest => manifest::enter(state),
        Pane::Updates => updates::enter(state),
        Pane::Releases => return releases::enter(state),
        Pane::Log | Pane::Logs => {}
    }
    Vec::new()
}

/// `/`: open the text field on the focused list's filter, or on the log's search.
pub fn filter(state: &mut State) {
    let target = if log::in_log(state) {
        InputTarget::LogSearch
    } else if state.focus == Focus::Stacks {
        InputTarget::Stacks
    } else {
        match state.pane {
            Pane::Builds => InputTarget::Builds,
            Pane::Manifest => InputTarget::Manifest,
            Pane::Log | Pane::Logs => InputTarget::LogSearch,
            Pane::Updates | Pane::Releases => {
                state.status = Some("nothing to filter here yet".into());
                return;
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

/// Keys of the open text field: a filter applies as it is typed (`esc` clears it); the
/// log search runs on `enter`; `ctrl-c` quits (asking when jobs run).
pub fn input_key(state: &mut State, k: KeyEvent) -> Vec<Effect> {
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
                return log::search(state, input.value().to_string());
            }
            return Vec::new();
        }
        _ => {
            if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
                return overlays::confirm::ask_quit(state);
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

/// Set the filter of the list `target` to `f` and refilter it (the log search is not a
/// filter: nothing changes for it).
pub fn set_filter(state: &mut State, target: InputTarget, f: String) {
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
