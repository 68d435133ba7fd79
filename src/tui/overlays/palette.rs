//! The command palette (`:`): the typed command and the commands it completes to; a
//! command names the [`Action`] it runs, which the dispatcher ([`crate::tui::update`]) does.

use crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::overlays::detail::show_config_problems;
use crate::tui::state::{Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, centered};

/// Draw the palette overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Palette { input, selected }) = &state.overlay else {
        return;
    };
    let comps = completions(input.value());
    let h = (comps.len() as u16 + 3).min(area.height);
    let r = centered(area, 60, h);
    let r = Rect {
        y: area.y + 2.min(area.height.saturating_sub(h)),
        ..r
    };
    f.render_widget(Clear, r);
    let b = block(Span::styled(" Command ", theme.accent), true, theme);
    let inner = b.inner(r);
    f.render_widget(b, r);
    let mut lines = vec![Line::from(vec![
        Span::styled(":", theme.key),
        Span::raw(crate::text::sanitize_for_terminal(input.value())),
    ])];
    for (i, (name, desc, ok)) in comps.iter().enumerate() {
        let style = if i == *selected {
            theme.selected
        } else if *ok {
            Style::new()
        } else {
            theme.dim
        };
        lines.push(Line::styled(format!("{name:<10} {desc}"), style));
    }
    if comps.is_empty() {
        lines.push(Line::styled("no such command", theme.dim));
    }
    f.render_widget(Paragraph::new(lines), inner);
    let x = inner.x + 1 + input.visual_cursor() as u16;
    if x < inner.x + inner.width {
        f.set_cursor_position((x, inner.y));
    }
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
    ("check", "check the selected stack for updates", true),
    ("rebuild", "rebuild applying pending updates", true),
    (
        "lock",
        "refresh the selected stack's lock (lock update: move it to the updates)",
        true,
    ),
    ("deploy", "deploy the selected or newest build", true),
    (
        "rollback",
        "roll back to the previous (or selected) release",
        true,
    ),
    ("problems", "show the config file problems", true),
    ("message", "show the last footer message whole", true),
    ("quit", "quit drover", true),
];

/// Palette completions for the typed text.
pub fn completions(text: &str) -> Vec<&'static (&'static str, &'static str, bool)> {
    let word = text.split_whitespace().next().unwrap_or("");
    COMMANDS.iter().filter(|c| c.0.starts_with(word)).collect()
}

/// What a key of the palette leads to: its effects, then the [`Action`] that the command
/// run by `enter` stands for, if any, for the dispatcher to do (after those effects).
pub type Outcome = (Vec<Effect>, Option<Action>);

/// Keys of the palette: typing, choosing, tab completion, enter runs the command.
pub fn key(state: &mut State, k: KeyEvent, mut input: Input, mut selected: usize) -> Outcome {
    let n = completions(input.value()).len();
    match k.code {
        KeyCode::Esc => return (Vec::new(), None),
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
    (Vec::new(), None)
}

/// `:lock` / `:lock update`: refresh the selected stack's lock (or move it to the pending
/// updates) as a background job; the next `b` builds it.
fn lock(state: &mut State, update: bool) -> Vec<Effect> {
    let Some(stack) = state.idle_stack("lock") else {
        return Vec::new();
    };
    let (job, _) = state.new_job("lock", &stack);
    state.status = Some(format!(
        "job {job}: {} the lock of {stack}; J lists jobs",
        if update { "updating" } else { "refreshing" }
    ));
    vec![Effect::Lock { job, stack, update }]
}

/// Run the palette command `text` (or the completion `selected` when it names none).
fn run_command(state: &mut State, text: &str, selected: usize) -> Outcome {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    let arg = words.next().map(str::to_string);
    let name = match COMMANDS.iter().find(|c| c.0 == first) {
        Some(c) => c.0,
        None => match completions(text).get(selected) {
            Some(c) => c.0,
            None => {
                state.status = Some(format!("unknown command `{first}`; press : and tab"));
                return (Vec::new(), None);
            }
        },
    };
    let then = match name {
        "build" => {
            if let Some(a) = arg {
                if !state.stacks.iter().any(|s| s.name == a) {
                    state.status = Some(format!("no stack named `{a}`"));
                    return (Vec::new(), None);
                }
                state.select_stack(&a);
                return (vec![Effect::Reload], Some(Action::Build));
            }
            Action::Build
        }
        "builds" => Action::PaneBuilds,
        "logs" => Action::PaneLog,
        "manifest" => Action::PaneManifest,
        "updates" => Action::PaneUpdates,
        "releases" => Action::PaneReleases,
        "jobs" => Action::Jobs,
        "help" => Action::Help,
        "check" => Action::CheckUpdates,
        "rebuild" => Action::Rebuild,
        "lock" => return (lock(state, arg.as_deref() == Some("update")), None),
        "deploy" => Action::Deploy,
        "rollback" => Action::Rollback,
        "problems" => {
            if !show_config_problems(state) {
                state.status = Some("no config file problems".into());
            }
            return (Vec::new(), None);
        }
        "message" => {
            match state.last_status.clone() {
                Some(m) => {
                    state.overlay = Some(Overlay::detail(
                        "Message".into(),
                        m.lines().map(str::to_string).collect(),
                    ))
                }
                None => state.status = Some("no message yet".into()),
            }
            return (Vec::new(), None);
        }
        "quit" => Action::Quit,
        _ => return (Vec::new(), None),
    };
    (Vec::new(), Some(then))
}
