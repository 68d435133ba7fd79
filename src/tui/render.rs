//! Drawing: the frame layout (header, the Stacks list and the pane on the right, footer,
//! an overlay on top) from [`State`]; each pane and overlay draws itself (`panes::*`,
//! `overlays::*`). Only visible rows are built (lists and the log are sliced before any
//! widget sees them), so the cost of a frame does not depend on the length of a log or a
//! manifest.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::state::{Focus, Overlay, Pane, State};
use super::theme::Theme;
use super::{chrome, overlays, panes};

// Re-exported: it was public here before the split.
pub use super::widgets::status_word;

/// Draw one frame from `state`, a pure function of it: list offsets, the log's scroll
/// and the Detail overlay's page were sized for this frame by [`super::viewport::fit`].
pub fn draw(f: &mut Frame, state: &State, theme: &Theme) {
    let area = f.area();
    let ([header, body, footer], sides) = frame_areas(area, state);
    chrome::header(f, header, state, theme);
    match sides {
        None => panes::log::draw(f, body, state, theme, true),
        Some([left, right]) => {
            panes::stacks::draw(f, left, state, theme);
            draw_right(f, right, state, theme);
        }
    }
    chrome::footer(f, footer, state, theme);
    match &state.overlay {
        None => {}
        Some(Overlay::Help { .. }) => overlays::help::draw(f, area, state, theme),
        Some(Overlay::Palette { .. }) => overlays::palette::draw(f, area, state, theme),
        Some(Overlay::Confirm(_)) => overlays::confirm::draw(f, area, state, theme),
        Some(Overlay::Jobs { .. }) => overlays::jobs::draw(f, area, state, theme),
        Some(Overlay::Detail { .. }) => overlays::detail::draw(f, area, state, theme),
    }
}

/// `[header, body, footer]` of a frame of `area`, and `[Stacks list, right side]` of the
/// body unless the log is full screen (one layout for drawing and for the viewport pass).
pub(crate) fn frame_areas(area: Rect, state: &State) -> ([Rect; 3], Option<[Rect; 2]>) {
    let footer_h = chrome::footer_lines(state, area).len().max(1) as u16;
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(footer_h),
    ])
    .areas(area);
    if state.fullscreen {
        return ([header, body, footer], None);
    }
    // Under 100 columns the stacks list narrows to name and status while a pane on
    // the right has the focus, so manifest versions fit.
    let left_w = if area.width < 100 {
        if state.focus == Focus::Pane {
            18
        } else {
            32
        }
    } else {
        (area.width * 2 / 5).min(70)
    };
    let sides = Layout::horizontal([Constraint::Length(left_w), Constraint::Min(20)]).areas(body);
    ([header, body, footer], Some(sides))
}

/// `[tab line, pane]` of the right side.
pub(crate) fn right_areas(area: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area)
}

/// `[builds list, log]` of the Builds pane: the list as tall as its rows, up to 2/5.
pub(crate) fn builds_split(rest: Rect, state: &State) -> [Rect; 2] {
    let n = state.builds_list.visible.len() as u16;
    let list_h = (n + 3).clamp(4, (rest.height * 2 / 5).max(4));
    Layout::vertical([Constraint::Length(list_h), Constraint::Min(3)]).areas(rest)
}

fn draw_right(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let [tabs, rest] = right_areas(area);
    let stack = state.selected_stack().unwrap_or("-").to_string();
    // Narrow: no stack name, tighter labels and short titles but the selected pane's, so
    // all six tabs fit in 46 columns.
    let full: usize =
        stack.chars().count() + 2 + Pane::ALL.iter().map(|p| p.title().len() + 4).sum::<usize>();
    let narrow = area.width < 60 || full > area.width as usize;
    let mut spans = Vec::new();
    if !narrow {
        spans.push(Span::styled(format!(" {stack} "), theme.accent));
    }
    for (i, p) in Pane::ALL.iter().enumerate() {
        if narrow && i > 0 {
            spans.push(Span::raw(" "));
        }
        let label = if narrow {
            let title = if *p == state.pane {
                p.title()
            } else {
                p.short_title()
            };
            format!("{} {}", i + 1, title)
        } else {
            format!(" {} {} ", i + 1, p.title())
        };
        if *p == state.pane {
            spans.push(Span::styled(label, theme.selected));
        } else {
            spans.push(Span::styled(label, theme.dim));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), tabs);
    let focused = state.focus == Focus::Pane && state.overlay.is_none();
    match state.pane {
        Pane::Builds => {
            let [top, bottom] = builds_split(rest, state);
            panes::builds::draw(f, top, state, theme, focused);
            panes::log::draw(f, bottom, state, theme, false);
        }
        Pane::Log | Pane::Logs => panes::log::draw(f, rest, state, theme, focused),
        Pane::Manifest => panes::manifest::draw(f, rest, state, theme, focused),
        Pane::Updates => panes::updates::draw(f, rest, state, theme, focused),
        Pane::Releases => panes::releases::draw(f, rest, state, theme, focused),
    }
}
