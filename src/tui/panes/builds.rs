//! The Builds pane: the selected stack's builds, newest first, above the selected log;
//! `enter` opens a build's log; `b` asks to build the selected stack.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use crate::store::builds::BuildRecord;
use crate::text::{age_at, short_digest};
use crate::tui::keymap::Action;
use crate::tui::overlays::confirm;
use crate::tui::panes::stacks::image_of;
use crate::tui::state::{Overlay, Pane, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{
    block, bordered_inner, filter_title, fit_offset, selectable, status_style, status_word,
};

fn duration(b: &BuildRecord) -> String {
    let (Ok(s), Some(Ok(e))) = (
        chrono::DateTime::parse_from_rfc3339(&b.started_at),
        b.finished_at
            .as_deref()
            .map(chrono::DateTime::parse_from_rfc3339),
    ) else {
        return "-".into();
    };
    let secs = (e - s).num_seconds().max(0);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Draw the Builds list into `area` (offsets as [`fit`] left them).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme, focused: bool) {
    let title = filter_title("Builds", &state.builds_list, state.builds.len());
    let b = block(Span::styled(title, theme.accent), focused, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if state.builds.is_empty() {
        let text = if state.stacks.is_empty() {
            "No stack selected.".to_string()
        } else {
            format!(
                "Never built. Press {} to build.",
                state.keymap.first(Action::Build)
            )
        };
        f.render_widget(Paragraph::new(Line::styled(text, theme.dim)), inner);
        return;
    }
    let body_h = inner.height.saturating_sub(1) as usize;
    let l = &state.builds_list;
    let now = state.now;
    let live = crate::deploy::plan::Current::from_releases(&state.releases);
    let rows: Vec<Row> = l
        .on_screen(body_h)
        .map(|(pos, i)| {
            let b = &state.builds[i];
            let note = match (&b.failed_step, &b.error) {
                (Some(s), Some(e)) => format!("{s}: {e}"),
                _ => b
                    .image_digest
                    .as_deref()
                    .map(short_digest)
                    .unwrap_or_default(),
            };
            // The build that runs now is marked, so a deploy candidate is never mistaken
            // for it.
            let note = match live.filter(|c| c.build_id == b.id) {
                Some(c) => format!("live #{} · {note}", c.release),
                None => note,
            };
            // Both artifacts: a build with a VM image says so.
            let note = match &b.vm_path {
                Some(p) if b.image_path.is_some() => {
                    let ext = std::path::Path::new(p)
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!("{note} + vm {ext}")
                }
                _ => note,
            };
            // A build that applied updates (its lock moved) says how many packages.
            let note = match state.applied_updates.get(&b.id) {
                Some(n) => format!("applied {n} · {note}"),
                None => note,
            };
            let row = Row::new(vec![
                Span::raw(format!("#{}", b.id)),
                Span::styled(status_word(b.status), status_style(b.status, theme)),
                Span::styled(age_at(&b.started_at, now), theme.dim),
                Span::raw(duration(b)),
                Span::raw(crate::text::sanitize_for_terminal(&note)),
            ]);
            selectable(row, pos == l.selected, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(5),
                Constraint::Length(11),
                Constraint::Length(4),
                Constraint::Length(6),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(vec!["BUILD", "STATUS", "AGE", "TIME", "IMAGE / ERROR"]).style(theme.dim))
        .column_spacing(1),
        inner,
    );
}

/// Keep the Builds selection on screen for a list drawn into `area`; the page size is
/// what page up/down moves by.
pub fn fit(state: &mut State, area: Rect) {
    if state.builds.is_empty() {
        return;
    }
    let body_h = bordered_inner(area).height.saturating_sub(1) as usize;
    state.list_height = body_h;
    fit_offset(&mut state.builds_list, body_h);
}

/// `enter` on a build: its log in the Log pane.
pub fn enter(state: &mut State) {
    if state.selected_build().is_some() {
        state.pane = Pane::Log;
    }
}

/// `b`: ask to build the selected stack (from its current image), unless a job of its own
/// runs.
pub fn build(state: &mut State) {
    let Some(name) = state.idle_stack("build") else {
        return;
    };
    let from = image_of(state, &name);
    state.overlay = Some(Overlay::Confirm(confirm::build(name, &from)));
}
