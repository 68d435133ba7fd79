//! The Jobs overlay (`J`): this session's background jobs with their step and state.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Row, Table};
use ratatui::Frame;

use crate::tui::state::{JobState, Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::*;

/// Draw the jobs overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Jobs { selected }) = &state.overlay else {
        return;
    };
    let n = state.jobs.len() as u16;
    let r = centered(area, 76, (n + 4).max(6));
    f.render_widget(Clear, r);
    let b = block(Span::styled(" Jobs ", theme.accent), true, theme);
    let inner = b.inner(r);
    f.render_widget(b, r);
    if state.jobs.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(
                "No background jobs in this session.",
                theme.dim,
            )),
            inner,
        );
        return;
    }
    let now = state.now;
    let rows: Vec<Row> = state
        .jobs
        .iter()
        .rev()
        .enumerate()
        .map(|(i, j)| {
            let (st, style) = match &j.state {
                JobState::Running => ("running".to_string(), theme.warn),
                JobState::Succeeded => ("succeeded".to_string(), theme.ok),
                JobState::Cancelled => ("cancelled".to_string(), theme.warn),
                JobState::Failed(e) => (
                    format!("failed: {}", crate::text::sanitize_for_terminal(e)),
                    theme.error,
                ),
            };
            let secs = (j.finished.unwrap_or(now) - j.started).num_seconds().max(0);
            let row = Row::new(vec![
                Span::raw(j.id.to_string()),
                Span::raw(j.kind.clone()),
                Span::raw(j.stack.clone()),
                Span::raw(j.build_id.map(|b| format!("#{b}")).unwrap_or_default()),
                Span::raw(j.step.map(|s| s.as_str()).unwrap_or("").to_string()),
                Span::raw(j.lines.to_string()),
                Span::raw(format!("{secs}s")),
                Span::styled(st, style),
            ]);
            selectable(row, i == *selected, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(3),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Min(8),
            ],
        )
        .header(
            Row::new(vec![
                "JOB", "KIND", "STACK", "BUILD", "STEP", "LINES", "TIME", "STATE",
            ])
            .style(theme.dim),
        )
        .column_spacing(1),
        inner,
    );
}
