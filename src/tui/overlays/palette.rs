//! The command palette (`:`): the typed command and the commands it completes to.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::tui::state::{Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::update::completions;
use crate::tui::widgets::*;

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
