//! The header line (state directory, problems, jobs, clock) and the footer line (the
//! input being typed, a status message, or the keys that work where the focus is).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::keymap::Action;
use crate::tui::state::{Focus, InputTarget, Overlay, Pane, State};
use crate::tui::theme::Theme;

/// Draw the header line: state directory, config problems, running jobs, clock.
pub fn header(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let running = state.running_jobs();
    let jobs = if running == 0 {
        "no jobs running".to_string()
    } else {
        format!("{running} job(s) running")
    };
    let clock = state.now.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    // Config-file problems stay counted here once their overlay is closed (`:problems`).
    let problems = match state.config_problems.len() {
        0 => String::new(),
        n => format!("{n} config problem(s) | "),
    };
    let right = format!("{problems}{jobs} | {clock} ");
    let rw = right.chars().count() as u16;
    let [l, r] = Layout::horizontal([Constraint::Min(10), Constraint::Length(rw)]).areas(area);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" drover ", theme.accent),
            Span::styled("state ", theme.dim),
            Span::raw(state.state_dir.clone()),
        ])),
        l,
    );
    let jobs_style = if running > 0 { theme.warn } else { theme.dim };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(problems, theme.error),
            Span::styled(jobs, jobs_style),
            Span::styled(" | ", theme.dim),
            Span::raw(clock + " "),
        ])),
        r,
    );
}

/// The keys worth showing in the footer where the focus is: `(keys, what)` pairs.
pub fn hints(state: &State) -> Vec<(String, &'static str)> {
    let k = |a: Action| state.keymap.first(a);
    let kk = |a: Action, b: Action| format!("{}/{}", state.keymap.first(a), state.keymap.first(b));
    match &state.overlay {
        Some(Overlay::Help { .. }) => {
            return vec![
                ("type".into(), "filter"),
                ("up/down".into(), "scroll"),
                ("esc".into(), "clear/close"),
            ]
        }
        Some(Overlay::Palette { .. }) => {
            return vec![
                ("enter".into(), "run"),
                ("tab".into(), "complete"),
                ("up/down".into(), "choose"),
                ("esc".into(), "close"),
            ]
        }
        Some(Overlay::Confirm(_)) => {
            return vec![("y/enter".into(), "yes"), ("n/esc/q".into(), "no")]
        }
        Some(Overlay::Jobs { .. }) => {
            return vec![
                (kk(Action::Down, Action::Up), "move"),
                (k(Action::CancelJob), "cancel job"),
                ("enter".into(), "log/details"),
                (k(Action::Back), "close"),
            ]
        }
        Some(Overlay::Detail { .. }) => {
            return vec![
                (kk(Action::Down, Action::Up), "scroll"),
                (kk(Action::PageDown, Action::PageUp), "page"),
                (kk(Action::Top, Action::Bottom), "top/end"),
                ("esc/q/enter".into(), "close"),
            ]
        }
        None => {}
    }
    let log_keys = vec![
        (kk(Action::Down, Action::Up), "scroll"),
        (kk(Action::Top, Action::Bottom), "top/end"),
        (k(Action::Follow), "follow"),
        (k(Action::Wrap), "wrap"),
        (k(Action::Filter), "search"),
        (kk(Action::NextMatch, Action::PrevMatch), "next/prev"),
        (k(Action::Fullscreen), "fullscreen"),
        (k(Action::Back), "back"),
    ];
    if state.fullscreen {
        return log_keys;
    }
    let mut v: Vec<(String, &'static str)> = Vec::new();
    if state.focus == Focus::Stacks {
        v.push((kk(Action::Down, Action::Up), "move"));
        v.push((k(Action::Enter), "open"));
        v.push((k(Action::Build), "build"));
        v.push((k(Action::Deploy), "deploy"));
        v.push((k(Action::Filter), "filter"));
        v.push(("1-6".into(), "panes"));
    } else {
        match state.pane {
            Pane::Log => return log_keys,
            Pane::Logs => {
                let mut v = log_keys;
                v.insert(4, (k(Action::HideHealth), "health"));
                v.insert(5, (k(Action::ReleaseFilter), "release"));
                v.insert(6, (k(Action::InstanceFilter), "instance"));
                return v;
            }
            Pane::Builds => {
                v.push((kk(Action::Down, Action::Up), "move"));
                v.push((k(Action::Enter), "log"));
                v.push((k(Action::Build), "build"));
                v.push((k(Action::Follow), "follow"));
                v.push((k(Action::Fullscreen), "fullscreen"));
                v.push((k(Action::Filter), "filter"));
            }
            Pane::Manifest => {
                v.push((kk(Action::Down, Action::Up), "move"));
                v.push((k(Action::Enter), "details"));
                v.push((k(Action::Sort), "sort"));
                v.push((k(Action::SortReverse), "reverse"));
                v.push((k(Action::Filter), "filter"));
            }
            Pane::Updates => {
                v.push((kk(Action::Down, Action::Up), "move"));
                v.push((k(Action::Enter), "CVEs"));
                v.push((k(Action::CheckUpdates), "check"));
                v.push((k(Action::Rebuild), "rebuild"));
            }
            Pane::Releases => {
                v.push((kk(Action::Down, Action::Up), "move"));
                v.push((k(Action::Enter), "detail"));
                v.push((k(Action::ReleaseLogs), "logs"));
                v.push((k(Action::Diff), "diff"));
                v.push((k(Action::Deploy), "deploy"));
                v.push((k(Action::Rollback), "rollback"));
            }
        }
        v.push((k(Action::Back), "back"));
    }
    v.push((k(Action::Jobs), "jobs"));
    v.push((k(Action::Palette), "cmd"));
    v.push((k(Action::Help), "help"));
    if state.focus == Focus::Stacks {
        v.push((state.keymap.quit_key(), "quit"));
    }
    v
}

/// The end of a footer message cut at a third of the screen: where its whole text is
/// (the palette's `:message`).
pub const MESSAGE_POINTER: &str = "… :message shows it all";

/// The footer's lines for a frame of `area`: the status message (when one is shown and no
/// text field is open) wrapped at spaces to the width, one space in, over as many lines as
/// it needs up to a third of the frame's height (at least one). A message longer than that
/// is never cut silently: its last line ends with [`MESSAGE_POINTER`]. Empty when the
/// footer shows a text field or the key hints (one line).
pub fn footer_lines(state: &State, area: Rect) -> Vec<String> {
    status_lines(state, area.width, (area.height as usize / 3).max(1))
}

/// The status message wrapped to `width` columns in at most `max` lines (see
/// [`footer_lines`]).
fn status_lines(state: &State, width: u16, max: usize) -> Vec<String> {
    let Some(s) = state.status.as_deref().filter(|_| state.input.is_none()) else {
        return Vec::new();
    };
    let width = (width as usize).saturating_sub(1).max(1);
    let max = max.max(1);
    let text = crate::text::sanitize_for_terminal(s);
    let mut lines = crate::tui::widgets::wrap_words(&text, width);
    if lines.len() > max {
        lines.truncate(max);
        let keep = width.saturating_sub(MESSAGE_POINTER.chars().count() + 1);
        let last: String = lines[max - 1].chars().take(keep).collect();
        lines[max - 1] = format!("{} {MESSAGE_POINTER}", last.trim_end());
    }
    lines.into_iter().map(|l| format!(" {l}")).collect()
}

/// Draw the footer: the input being typed (with the cursor), else the status message
/// ([`footer_lines`]), else the [`hints`].
pub fn footer(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    if let Some((target, input)) = &state.input {
        let prompt = match target {
            InputTarget::LogSearch => "search: ",
            _ => "filter: ",
        };
        let hint = "  (enter keep, esc clear)";
        let text = crate::text::sanitize_for_terminal(input.value());
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(prompt, theme.key),
                Span::raw(text),
                Span::styled(hint, theme.dim),
            ])),
            area,
        );
        let x = area.x + prompt.len() as u16 + input.visual_cursor() as u16;
        if x < area.x + area.width {
            f.set_cursor_position((x, area.y));
        }
        return;
    }
    if state.status.is_some() {
        // The footer was sized by `footer_lines` of the frame: all of its rows are the
        // message's.
        let lines: Vec<Line> = status_lines(state, area.width, area.height as usize)
            .into_iter()
            .map(|l| Line::styled(l, theme.warn))
            .collect();
        f.render_widget(Paragraph::new(lines), area);
        return;
    }
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in hints(state) {
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
