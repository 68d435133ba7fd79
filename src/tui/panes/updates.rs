//! The Updates pane: pending updates of the selected stack by source package, riskiest
//! first, with their CVE count and urgency; `enter` lists an update's CVEs, `u` checks
//! now, `r` asks to rebuild applying them.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::overlays::confirm;
use crate::tui::overlays::detail::update_detail;
use crate::tui::panes::stacks::image_of;
use crate::tui::state::{Overlay, State, UpdateRow};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, bordered_inner, empty_state, fit_offset, selectable};

/// Draw the Updates table into `area` (offsets as [`fit`] left them).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme, focused: bool) {
    let b = block(
        Span::styled(
            match state.updates_checked {
                // Which build these rows are of: the newest checked, not necessarily what
                // is live (the Stacks list counts the live release's).
                Some(b) => format!(" Updates ({}) of build #{b} ", state.updates.len()),
                None => format!(" Updates ({}) ", state.updates.len()),
            },
            theme.accent,
        ),
        focused,
        theme,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    // After a rebuild the newest check is of an older build: say so above its rows.
    let inner = match stale_updates_text(state) {
        Some(why) => {
            let [note, rest] = note_split(inner, &why);
            let mut lines = vec![Line::styled(why, theme.warn)];
            if !state.updates.is_empty() {
                lines.push(Line::styled(
                    "the rows below are of the older build:",
                    theme.dim,
                ));
            }
            f.render_widget(
                Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
                note,
            );
            rest
        }
        None => inner,
    };
    if state.updates.is_empty() {
        empty_state(
            f,
            inner,
            vec![
                "No pending updates recorded for this stack.".into(),
                String::new(),
                format!(
                    "Press {} to check (like `drover updates STACK --refresh`): pending \
                     updates show here grouped by source package with CVE count and urgency, \
                     riskiest first; {} rebuilds applying them.",
                    state.keymap.first(Action::CheckUpdates),
                    state.keymap.first(Action::Rebuild)
                ),
            ],
            theme,
        );
        return;
    }
    let body_h = inner.height.saturating_sub(1) as usize;
    let l = &state.updates_list;
    let on_screen = || l.on_screen(body_h).map(|(_, i)| &state.updates[i]);
    // Versions get the room they need (the candidate is never cut); the source column
    // takes the rest, at least 8 columns.
    const CVES_W: usize = 4;
    const URGENCY_W: usize = 8;
    let room = (inner.width as usize).saturating_sub(CVES_W + URGENCY_W + 3);
    let want_v = on_screen()
        .map(|u| u.from.chars().count() + 4 + u.to.chars().count())
        .max()
        .unwrap_or(0)
        .max("VERSION".len());
    let version_w = want_v.min(room.saturating_sub(8));
    let source_w = room.saturating_sub(version_w);
    let rows: Vec<Row> = on_screen()
        .enumerate()
        .map(|(n, u)| {
            let row = Row::new(vec![
                u.source.clone(),
                crate::text::version_change(&u.from, &u.to, version_w),
                u.cves.len().to_string(),
                u.urgency.clone(),
            ]);
            selectable(row, l.offset + n == l.selected, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(source_w as u16),
                Constraint::Length(version_w as u16),
                Constraint::Length(CVES_W as u16),
                Constraint::Length(URGENCY_W as u16),
            ],
        )
        .header(Row::new(vec!["SOURCE", "VERSION", "CVES", "URGENCY"]).style(theme.dim))
        .column_spacing(1),
        inner,
    );
}

/// `checked build #1; build #3 is not checked yet: press u` when the newest update check
/// is of an older build than the newest succeeded one.
pub fn stale_updates_text(state: &State) -> Option<String> {
    state.updates_stale().map(|(checked, newest)| {
        format!(
            "checked build #{checked}; build #{newest} is not checked yet: press {}",
            state.keymap.first(Action::CheckUpdates)
        )
    })
}

/// The stale-check note `why` above the rows: `[note, rows]` inside the border.
fn note_split(inner: Rect, why: &str) -> [Rect; 2] {
    // Word wrap may need a little more than the characters over the width.
    let rows = why
        .chars()
        .count()
        .div_ceil((inner.width as usize).saturating_sub(10).max(1)) as u16;
    Layout::vertical([Constraint::Length(rows + 1), Constraint::Min(1)]).areas(inner)
}

/// Keep the Updates selection on screen for a table drawn into `area` (every row is
/// listed: the pane has no filter).
pub fn fit(state: &mut State, area: Rect) {
    let inner = bordered_inner(area);
    let inner = match stale_updates_text(state) {
        Some(why) => note_split(inner, &why)[1],
        None => inner,
    };
    if state.updates.is_empty() {
        return;
    }
    if state.updates_list.visible.len() != state.updates.len() {
        state.updates_list.visible = (0..state.updates.len()).collect();
    }
    fit_offset(
        &mut state.updates_list,
        inner.height.saturating_sub(1) as usize,
    );
}

/// `enter` on an update: its CVEs with their changelog entries in the Detail overlay.
pub fn enter(state: &mut State) {
    if let Some(u) = state.updates_list.pick(&state.updates) {
        state.overlay = Some(Overlay::detail(
            format!("Update of {}", u.source),
            update_detail(u, &state.keymap.first(Action::Rebuild)),
        ));
    }
}

/// `u`: check the selected stack for updates now, as a job (it changes nothing that runs:
/// no confirmation).
pub fn check(state: &mut State) -> Vec<Effect> {
    let Some(stack) = state.idle_stack("check") else {
        return Vec::new();
    };
    let (job, _) = state.new_job("check", &stack);
    state.status = Some(format!(
        "job {job}: checking {stack} for updates; J lists jobs"
    ));
    vec![Effect::CheckUpdates { job, stack }]
}

/// `r`: ask to rebuild the selected stack applying its pending Debian updates; says in the
/// footer why not when the check is stale or there is nothing known to apply.
pub fn rebuild(state: &mut State) {
    let Some(name) = state.idle_stack("rebuild") else {
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
    let from = image_of(state, &name);
    let c = confirm::rebuild(name, &from, &debian);
    state.overlay = Some(Overlay::Confirm(c));
}
