//! The Detail overlay: a scrollable page of text (a component, an update's CVEs, a job's
//! error, config problems), wrapped to the box.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::state::{Overlay, State, UpdateRow};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, centered, wrap_words};

/// The Detail overlay: inside the frame between header and footer (the footer keys stay
/// visible), lines wrapped to the box, scrolled by `scroll`, with `a-b of n` in the bottom
/// border when it does not all fit (scroll clamped by [`fit`]).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Detail {
        title,
        lines,
        scroll,
        ..
    }) = &state.overlay
    else {
        return;
    };
    let (r, title, rows, inner_h) = geometry(area, title, lines);
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

/// Show a text read off the UI task (a diff, the audit log) in the Detail overlay, or say
/// in the footer why it could not be read.
pub fn on_loaded(state: &mut State, result: Result<(String, Vec<String>), String>) {
    match result {
        Ok((title, lines)) => {
            state.status = None;
            state.overlay = Some(Overlay::detail(title, lines));
        }
        Err(e) => state.status = Some(format!("cannot read it: {e}")),
    }
}

/// The audit records of `stack` (the newest 500) as the Detail overlay's title and lines,
/// the same table as `drover audit STACK`.
pub fn load_audit(
    paths: &crate::paths::Paths,
    stack: &str,
) -> Result<(String, Vec<String>), String> {
    let store = crate::store::Store::open(&paths.database()).map_err(|e| format!("{e:#}"))?;
    let rows = store
        .audit_query(Some(stack), None, 500)
        .map_err(|e| format!("{e:#}"))?;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(crate::store::audit::AuditRecord::cells)
        .collect();
    let lines = if cells.is_empty() {
        vec![format!("no audit records for {stack} yet")]
    } else {
        crate::text::table(&crate::store::audit::AuditRecord::HEADER, &cells)
            .lines()
            .map(str::to_string)
            .collect()
    };
    Ok((
        format!("Audit of {stack} ({} records, newest first)", rows.len()),
        lines,
    ))
}

/// Open a Detail overlay with the config-file problems (keymap, theme), each in full;
/// false when there are none.
pub fn show_config_problems(state: &mut State) -> bool {
    let n = state.config_problems.len();
    if n == 0 {
        return false;
    }
    let mut lines = Vec::new();
    for p in &state.config_problems {
        lines.extend(p.lines().map(str::to_string));
        lines.push(String::new());
    }
    lines.push("The defaults are used for what is broken; fix the file(s) and restart".into());
    lines.push("drover. :problems shows this again.".into());
    state.overlay = Some(Overlay::detail(
        format!("Config file problems ({n})"),
        lines,
    ));
    true
}

/// The detail view of one pending update: versions, suite, binary packages, then each CVE
/// under the changelog entry that names it, with that entry's urgency, date and DSA/DLA
/// advisories (when the check cached the changelog), else the bare ids; each CVE and
/// DSA/DLA with its Debian Security Tracker page ([`tracker_url`]); a high-urgency entry
/// that names no CVE with its text (when cached); then which key applies
/// it (`rebuild_key`, the Rebuild action's first key).
pub fn update_detail(u: &UpdateRow, rebuild_key: &str) -> Vec<String> {
    let mut lines = vec![
        format!("source      {} {} -> {}", u.source, u.from, u.to),
        format!("suite       {}", u.suites.join(", ")),
        format!("packages    {}", u.packages.join(", ")),
        format!(
            "urgency     {}",
            if u.urgency.is_empty() {
                "-"
            } else {
                &u.urgency
            }
        ),
        String::new(),
        format!("CVEs fixed: {}", u.cves.len()),
    ];
    let mut listed: Vec<&str> = Vec::new();
    for e in &u.entries {
        let ids: Vec<&String> = e
            .cves
            .iter()
            .filter(|c| !listed.contains(&c.as_str()))
            .collect();
        // A high-urgency entry that names no CVE still matters: it is shown too.
        let high_no_cve = e.cves.is_empty() && crate::updates::urgency_rank(Some(&e.urgency)) >= 3;
        if ids.is_empty() && e.advisories.is_empty() && !high_no_cve {
            continue;
        }
        lines.push(
            format!(
                "{} ({}, {}) {}",
                e.version,
                e.urgency,
                if e.date.is_empty() {
                    "no date"
                } else {
                    &e.date
                },
                e.advisories.join(" ")
            )
            .trim_end()
            .to_string(),
        );
        for a in &e.advisories {
            lines.push(format!("  {a}  {}", tracker_url(a)));
        }
        for c in ids {
            lines.push(format!("  {c}  {}", tracker_url(c)));
            listed.push(c);
        }
        if high_no_cve {
            lines.push(format!(
                "  ({} urgency, no CVE named in the changelog entry)",
                e.urgency
            ));
            if e.text.is_empty() {
                lines.push("    (its text was not cached by the check)".into());
            }
            lines.extend(e.text.lines().map(|l| format!("    {l}")));
        }
    }
    let rest: Vec<&String> = u
        .cves
        .iter()
        .filter(|c| !listed.contains(&c.as_str()))
        .collect();
    if !rest.is_empty() && !u.entries.is_empty() {
        lines.push("not in a cached changelog entry:".into());
    }
    lines.extend(rest.iter().map(|c| format!("  {c}  {}", tracker_url(c))));
    lines.push(String::new());
    lines.push(format!(
        "{rebuild_key} rebuilds applying every pending update (asks first); \
         `drover lock STACK --update {}` then `drover build STACK` applies this one only",
        u.source
    ));
    lines
}

/// The Debian Security Tracker page of a CVE, DSA or DLA id
/// (`https://security-tracker.debian.org/tracker/ID`).
pub fn tracker_url(id: &str) -> String {
    format!("https://security-tracker.debian.org/tracker/{id}")
}

/// Keys of the Detail overlay: scroll by line or page, top/end, esc/enter/back closes.
pub fn key(
    state: &mut State,
    k: KeyEvent,
    title: String,
    lines: Vec<String>,
    mut scroll: usize,
    page: usize,
    max: usize,
) -> Vec<Effect> {
    let act = state.keymap.action(&k);
    if matches!(k.code, KeyCode::Esc | KeyCode::Enter) || act == Some(Action::Back) {
        return Vec::new();
    }
    scroll = match act {
        Some(Action::Down) => scroll + 1,
        Some(Action::Up) => scroll.saturating_sub(1),
        Some(Action::PageDown) => scroll + page.max(1),
        Some(Action::PageUp) => scroll.saturating_sub(page.max(1)),
        Some(Action::Top) => 0,
        Some(Action::Bottom) => max,
        _ => scroll,
    }
    .min(max);
    state.overlay = Some(Overlay::Detail {
        title,
        lines,
        scroll,
        page,
        max,
    });
    Vec::new()
}

/// Where the Detail box goes in `area` (between header and footer, as wide as its longest
/// line allows), its sanitised title, its lines wrapped to the box, and its inner height.
fn geometry(area: Rect, title: &str, lines: &[String]) -> (Rect, String, Vec<String>, usize) {
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
    (r, title, rows, inner_h)
}

/// Size the Detail overlay for a frame of `area`: the page size, the largest scroll, and
/// the scroll clamped to it.
pub fn fit(state: &mut State, area: Rect) {
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
    let (_, _, rows, inner_h) = geometry(area, title, lines);
    *page = inner_h.max(1);
    *max = rows.len().saturating_sub(inner_h);
    *scroll = (*scroll).min(*max);
}
