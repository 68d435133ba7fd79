//! The confirmation overlay: what is about to happen, answered with y or n.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::tui::state::{Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::*;

/// Draw the confirm overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Confirm(c)) = &state.overlay else {
        return;
    };
    let w = c
        .body
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(20)
        .max(c.title.chars().count())
        .max(30) as u16
        + 4;
    let r = centered(area, w, c.body.len() as u16 + 3);
    f.render_widget(Clear, r);
    let b = block(
        Span::styled(format!(" {} ", c.title), theme.accent),
        true,
        theme,
    );
    let inner = b.inner(r);
    f.render_widget(b, r);
    let mut lines: Vec<Line> = c.body.iter().map(|l| Line::raw(l.clone())).collect();
    lines.push(Line::from(vec![
        Span::styled("y", theme.key),
        Span::raw("/enter yes   "),
        Span::styled("n", theme.key),
        Span::raw("/esc/q no"),
    ]));
    f.render_widget(Paragraph::new(lines), inner);
}
