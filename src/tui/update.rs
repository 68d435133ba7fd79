//! Key and event handling: `update(state, msg) -> effects`, the top-level reducer. It
//! dispatches an open overlay's keys to that overlay (`overlays::*::key`) and job messages
//! to [`super::overlays::jobs::on_msg`]; the pane actions, palette commands and confirmed
//! work are here. Pure apart from cancelling a job's [`crate::jobs::CancelToken`];
//! everything that needs I/O comes back as an [`Effect`] for the app loop.

use crossterm::event::KeyEvent;
use tui_input::Input;

use super::keymap::Action;
use super::state::{
    AgentView, Confirm, Focus, InputTarget, Overlay, Pane, Pending, State, UpdateRow,
};
use crate::deploy::api::DeployRequest;
use crate::deploy::plan::{self, Current};

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
            state.agent = match a {
                Some(s) => AgentView::Running(s),
                None => AgentView::NotRunning,
            };
            Vec::new()
        }
        Msg::Stacks(loaded) => {
            super::panes::stacks::on_loaded(state, loaded);
            Vec::new()
        }
        Msg::Key(k) => {
            if k.kind != crossterm::event::KeyEventKind::Press {
                return Vec::new();
            }
            state.status = None;
            if state.overlay.is_some() {
                return overlay_key(state, k);
            }
            if state.input.is_some() {
                return panes::input_key(state, k);
            }
            match state.keymap.action(&k) {
                Some(a) => action(state, a),
                None => Vec::new(),
            }
        }
    }
}

fn overlay_key(state: &mut State, k: KeyEvent) -> Vec<Effect> {
    let Some(overlay) = state.overlay.take() else {
        return Vec::new();
    };
    let act = state.keymap.action(&k);
    match overlay {
        Overlay::Help { input, scroll } => overlays::help::key(state, k, input, scroll),
        Overlay::Palette { input, selected } => overlays::palette::key(state, k, input, selected),
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

pub(super) fn action(state: &mut State, a: Action) -> Vec<Effect> {
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
        Action::Down
        | Action::Up
        | Action::PageDown
        | Action::PageUp
        | Action::Top
        | Action::Bottom => panes::navigate(state, a),
        Action::Enter => panes::enter(state),
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
        Action::Build => {
            let Some(name) = overlays::jobs::idle_stack(state, "build") else {
                return Vec::new();
            };
            let from = image_of(state, &name);
            state.overlay = Some(Overlay::Confirm(overlays::confirm::build(name, &from)));
        }
        Action::CheckUpdates => return check_updates(state),
        Action::Rebuild => rebuild(state),
        Action::Deploy => deploy(state, false),
        Action::Rollback => deploy(state, true),
        Action::Follow
        | Action::Wrap
        | Action::Fullscreen
        | Action::NextMatch
        | Action::PrevMatch
            if panes::log::visible(state) =>
        {
            return panes::log::action(state, a)
        }
        Action::Sort | Action::SortReverse if state.pane == Pane::Manifest => {
            panes::manifest::sort(state, a == Action::SortReverse)
        }
        Action::CancelJob => {
            state.overlay = Some(Overlay::Jobs { selected: 0 });
        }
        _ => {}
    }
    Vec::new()
}

/// `u`: check for updates now (changes nothing that runs: no confirmation).
fn check_updates(state: &mut State) -> Vec<Effect> {
    let Some(stack) = overlays::jobs::idle_stack(state, "check") else {
        return Vec::new();
    };
    let (job, _) = overlays::jobs::new_job(state, "check", &stack);
    state.status = Some(format!(
        "job {job}: checking {stack} for updates; J lists jobs"
    ));
    vec![Effect::CheckUpdates { job, stack }]
}

/// `image 1a2b3c4d5e6f (build #N)`, or what there is instead.
fn image_of(state: &State, name: &str) -> String {
    state
        .stacks
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.last_build.as_ref())
        .map(|b| match &b.image_digest {
            Some(d) => format!("image {} (build #{})", crate::text::short_digest(d), b.id),
            None => format!("no image (last build #{} {})", b.id, b.status.as_str()),
        })
        .unwrap_or_else(|| "no image yet".into())
}

/// `r`: confirm a rebuild with the pending updates it applies.
fn rebuild(state: &mut State) {
    let Some(name) = overlays::jobs::idle_stack(state, "rebuild") else {
        return;
    };
    // Language packages are not applied by a rebuild (their app's lockfile pins them).
    let debian: Vec<&UpdateRow> = state
        .updates
        .iter()
        .filter(|u| u.ecosystem.is_none())
        .collect();
    if let Some(why) = stale_updates_text(state) {
        state.status = Some(format!("{why} first"));
        return;
    }
    if state.loaded_stack.as_deref() != Some(name.as_str()) || debian.is_empty() {
        state.status = Some(format!(
            "{name} has no pending updates known: press {} to check first",
            state.keymap.first(Action::CheckUpdates)
        ));
        return;
    }
    let mut body = vec![
        format!("stack  {name}"),
        format!("from   {}", image_of(state, &name)),
        "to     a new image with the tracked suites added, so these".into(),
        "       pending updates are installed:".into(),
    ];
    const TOP: usize = 4;
    for u in debian.iter().take(TOP) {
        body.push(format!(
            "  {} {} -> {} ({} CVE{}{})",
            u.source,
            u.from,
            u.to,
            u.cves.len(),
            if u.cves.len() == 1 { "" } else { "s" },
            if u.urgency.is_empty() {
                String::new()
            } else {
                format!(", {}", u.urgency)
            }
        ));
    }
    if debian.len() > TOP {
        body.push(format!(
            "  … and {} more source package(s)",
            debian.len() - TOP
        ));
    }
    body.push("Runs in the background; the log streams into Builds.".into());
    state.overlay = Some(Overlay::Confirm(Confirm {
        title: format!("Rebuild {name} applying updates?"),
        body,
        pending: Pending::Rebuild(name),
    }));
}

/// `d` (deploy the selected build in Builds, else the newest succeeded one) and `R` (roll
/// back to the previous release, or to the one selected in Releases): decided by
/// [`plan::resolve`] on the loaded builds and releases, then confirmed with from -> to.
fn deploy(state: &mut State, rollback: bool) {
    let what = if rollback { "roll back" } else { "deploy" };
    let Some(name) = overlays::jobs::idle_stack(state, what) else {
        return;
    };
    if state.loaded_stack.as_deref() != Some(name.as_str()) {
        state.status = Some(format!("{name} is still loading; try again"));
        return;
    }
    let mut req = DeployRequest {
        stack: name.clone(),
        rollback,
        ..Default::default()
    };
    let current = Current::from_releases(&state.releases);
    let build = if rollback {
        None
    } else if state.pane == Pane::Builds && state.focus == Focus::Pane {
        let b = state.selected_build().cloned();
        req.build = b.as_ref().map(|b| b.id);
        b
    } else {
        state
            .builds
            .iter()
            .find(|b| b.status == crate::store::builds::BuildStatus::Succeeded)
            .cloned()
    };
    if rollback && state.pane == Pane::Releases && state.focus == Focus::Pane {
        if let Some(r) = state.releases_list.pick(&state.releases) {
            if Some(r.release) != current.map(|c| c.release) {
                req.to = Some(r.release);
            }
        }
    }
    let target = match plan::resolve(&req, &state.releases, current, build.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            state.status = Some(format!("cannot {what} {name}: {e}"));
            return;
        }
    };
    let from = match current.and_then(|c| state.releases.iter().find(|r| r.release == c.release)) {
        Some(r) => format!("live {}", overlays::confirm::release_text(r)),
        None => "nothing deployed".into(),
    };
    let to = match target.rollback_of {
        Some(n) => match state.releases.iter().find(|r| r.release == n) {
            Some(r) => format!("{} (as a new release)", overlays::confirm::release_text(r)),
            None => format!("release #{n}"),
        },
        None => format!(
            "build #{}, {} (new release)",
            target.build_id,
            build
                .as_ref()
                .and_then(|b| b.image_digest.as_deref())
                .map(crate::text::short_digest)
                .unwrap_or_else(|| "-".into())
        ),
    };
    req.replicas = Some(target.replicas);
    let downgrade = state.downgrades.get(&target.build_id);
    state.overlay = Some(Overlay::Confirm(overlays::confirm::deploy(
        rollback,
        &name,
        &from,
        &to,
        target.replicas,
        downgrade,
        req,
    )));
}
