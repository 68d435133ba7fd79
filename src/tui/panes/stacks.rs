//! The Stacks list on the left: each stack with its last build, image, pending updates
//! and live release, as many columns as the width allows.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use crate::text::{age_at, short_digest};
use crate::tui::state::{Focus, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{
    block, bordered_inner, filter_title, fit_offset, selectable, status_style, status_word,
};

/// Draw the Stacks list into `area` (offsets as [`fit`] left them).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let focused = state.focus == Focus::Stacks && state.overlay.is_none();
    let title = filter_title("Stacks", &state.stacks_list, state.stacks.len());
    let b = block(Span::styled(title, theme.accent), focused, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let problems: Vec<&String> = state.problems.iter().collect();
    let (list_area, prob_area) = areas(inner, state);
    let prob_h = prob_area.height;
    if state.stacks.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::styled("No stacks.", theme.dim),
                Line::styled(
                    "Add CONFIG/stacks/NAME.toml (see config/stacks/hello.toml).",
                    theme.dim,
                ),
            ])
            .wrap(ratatui::widgets::Wrap { trim: false }),
            list_area,
        );
    } else {
        // Columns by the room there is (inner width): everything from 44; else pending
        // updates and the live release before age, and age before the image digest.
        let tier = stacks_tier(inner.width);
        let body_h = list_area.height.saturating_sub(1) as usize;
        let l = &state.stacks_list;
        let now = state.now;
        let rows: Vec<Row> = l
            .on_screen(body_h)
            .map(|(pos, i)| {
                let s = &state.stacks[i];
                let (st, st_style, when, img) = match (&s.problem, &s.last_build) {
                    (Some(crate::tui::state::RowProblem::Broken(_)), _) => {
                        ("broken".to_string(), theme.error, String::new(), "-".into())
                    }
                    (Some(crate::tui::state::RowProblem::Orphaned(_)), _) => (
                        "orphaned".to_string(),
                        theme.warn,
                        String::new(),
                        "-".into(),
                    ),
                    (None, None) => ("never".to_string(), theme.dim, String::new(), "-".into()),
                    (None, Some(b)) => (
                        status_word(b.status).to_string(),
                        status_style(b.status, theme),
                        // Since the build started, like the Builds pane's AGE.
                        age_at(&b.started_at, now),
                        b.image_digest
                            .as_deref()
                            .map(|d| short_digest(d)[..7.min(short_digest(d).len())].to_string())
                            .unwrap_or_else(|| "-".into()),
                    ),
                };
                // After a rebuild the newest check is of an older build: unknown.
                let upd = s
                    .updates
                    .as_ref()
                    .filter(|_| !s.updates_stale)
                    .map(|(n, u)| {
                        if tier.image {
                            format!("{n} {u}")
                        } else {
                            format!("{n} {}", short_urgency(u))
                        }
                    })
                    .unwrap_or_else(|| if s.updates_stale { "?" } else { "-" }.into());
                let rel = s.release.clone().unwrap_or_else(|| "-".into());
                let mut cells = vec![Span::raw(s.name.clone()), Span::styled(st, st_style)];
                if tier.age {
                    cells.push(Span::styled(when, theme.dim));
                }
                if tier.image {
                    cells.push(Span::raw(img));
                }
                if tier.updates {
                    cells.push(Span::raw(upd));
                    cells.push(Span::raw(rel));
                }
                let row = Row::new(cells);
                selectable(row, pos == l.selected, theme)
            })
            .collect();
        let mut widths = vec![Constraint::Min(6), Constraint::Length(9)];
        let mut header = vec!["STACK", "BUILD"];
        if tier.age {
            widths.push(Constraint::Length(3));
            header.push("AGE");
        }
        if tier.image {
            widths.push(Constraint::Length(7));
            header.push("IMAGE");
        }
        if tier.updates {
            let (u, r) = if tier.image { (8, 6) } else { (7, 4) };
            widths.extend([Constraint::Length(u), Constraint::Length(r)]);
            header.extend(["UPDATES", "LIVE"]);
        }
        f.render_widget(
            Table::new(rows, widths)
                .header(Row::new(header).style(theme.dim))
                .column_spacing(1),
            list_area,
        );
    }
    if prob_h > 0 {
        // A diagnostic is several lines (the problem, then the hint): one Line each, so
        // the newline is not drawn as a replacement character.
        let lines: Vec<Line> = problems
            .iter()
            .flat_map(|p| p.lines())
            .map(|l| Line::styled(crate::text::sanitize_for_terminal(l), theme.error))
            .collect();
        f.render_widget(
            Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
            prob_area,
        );
    }
}

/// Which optional columns the Stacks list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StacksTier {
    age: bool,
    image: bool,
    updates: bool,
}

/// The Stacks columns that fit `inner` columns (STACK and BUILD always): 44 and up all;
/// 33 STACK BUILD AGE UPDATES LIVE; 28 STACK BUILD UPDATES LIVE (urgency abbreviated).
fn stacks_tier(inner: u16) -> StacksTier {
    StacksTier {
        age: inner >= 33,
        image: inner >= 44,
        updates: inner >= 28,
    }
}

/// A four-letter urgency for narrow columns (`crit`, `high`, `med`, `low`, `emer`).
fn short_urgency(u: &str) -> &str {
    match u {
        "critical" => "crit",
        "medium" => "med",
        "emergency" => "emer",
        _ => u.get(..4).unwrap_or(u),
    }
}

/// Put a Stacks list read off the UI task into `state` (the selection follows its stack by
/// name); a failed read keeps the old rows and says why in the footer.
pub fn on_loaded(state: &mut State, loaded: crate::tui::msg::StacksLoad) {
    match loaded {
        Ok(loaded) => {
            state.problems = loaded.problems;
            state.set_stacks(loaded.rows);
            if let Some(data) = loaded.stack {
                crate::tui::data::apply_stack(state, *data);
            }
        }
        Err(e) => state.status = Some(e.to_string()),
    }
}

/// The list and, below it, the stack-file problems inside the border.
fn areas(inner: Rect, state: &State) -> (Rect, Rect) {
    // Room for each line of each problem, plus one for wrapping.
    let prob_lines: usize = state.problems.iter().map(|p| p.lines().count() + 1).sum();
    let prob_h = (prob_lines as u16).min(inner.height / 2);
    let [list_area, prob_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(prob_h)]).areas(inner);
    (list_area, prob_area)
}

/// Keep the Stacks selection on screen for a list drawn into `area`.
pub fn fit(state: &mut State, area: Rect) {
    let (list_area, _) = areas(bordered_inner(area), state);
    if !state.stacks.is_empty() {
        fit_offset(
            &mut state.stacks_list,
            list_area.height.saturating_sub(1) as usize,
        );
    }
}

/// `image 1a2b3c4d5e6f (build #N)` of the stack `name`'s last build, or what there is
/// instead: the "from" of a build or rebuild confirmation.
pub fn image_of(state: &State, name: &str) -> String {
    state
        .stacks
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.last_build.as_ref())
        .map(|b| match &b.image_digest {
            Some(d) => format!("image {} (build #{})", short_digest(d), b.id),
            None => format!("no image (last build #{} {})", b.id, b.status.as_str()),
        })
        .unwrap_or_else(|| "no image yet".into())
}
