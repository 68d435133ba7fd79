//! The Detail overlay: a scrollable page of text (a component, an update's CVEs, a job's
//! error, config problems), wrapped to the box.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::tui::state::{Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::*;

/// The Detail overlay: inside the frame between header and footer (the footer keys stay
/// visible), lines wrapped to the box, scrolled by `scroll`, with `a-b of n` in the bottom
/// border when it does not all fit. Writes the page size and largest scroll back.
pub fn draw(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme) {
    let Some(Overlay::Detail {
        title,
        lines,
        scroll,
        page,
        max,
    }) = &mut state.overlay
    else {
        return;
    };
    let body = Rect {
        y: area.y + 1.min(area.height),
        height: area.height.saturating_sub(2),
        ..area
    };
    let title = crate::text::sanitize_for_terminal(title);
    let want_w = lines
        .iter()
        .map(|l| crate::text::sanitize_for_terminal(l).chars().count())
        .max()
        .unwrap_or(20)
        .max(title.chars().count())
        .max(30)
        + 4;
    let w = (want_w as u16).min(body.width);
    let inner_w = w.saturating_sub(2).max(1) as usize;
    let rows: Vec<String> = lines
        .iter()
        .flat_map(|l| wrap_words(&crate::text::sanitize_for_terminal(l), inner_w))
        .collect();
    let h = (rows.len() as u16 + 2).min(body.height);
    let r = centered(body, w, h);
    let inner_h = h.saturating_sub(2) as usize;
    *page = inner_h.max(1);
    *max = rows.len().saturating_sub(inner_h);
    *scroll = (*scroll).min(*max);
    f.render_widget(Clear, r);
    let mut b = block(
        Span::styled(format!(" {title} "), theme.accent),
        true,
        theme,
    );
    if rows.len() > inner_h {
        b = b.title_bottom(Line::styled(
            format!(
                " {}-{} of {} ",
                *scroll + 1,
                (*scroll + inner_h).min(rows.len()),
                rows.len()
            ),
            theme.dim,
        ));
    }
    let inner = b.inner(r);
    f.render_widget(b, r);
    let shown: Vec<Line> = rows
        .into_iter()
        .skip(*scroll)
        .take(inner_h)
        .map(Line::raw)
        .collect();
    f.render_widget(Paragraph::new(shown), inner);
}
