//! Drawing: the whole screen from [`State`] with ratatui widgets. Only visible rows are
//! built (lists and the log are sliced before any widget sees them), so the cost of a
//! frame does not depend on the length of a log or a manifest.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table};
use ratatui::Frame;
use unicode_width::UnicodeWidthChar;

use super::keymap::{Action, ACTIONS};
use super::state::{
    AgentView, Focus, InputTarget, JobState, ListState, LogView, ManifestColumn, Overlay, Pane,
    State,
};
use super::theme::Theme;
use super::update::{completions, in_log, stale_updates_text};
use crate::deploy::api::InstanceStatus;
use crate::store::builds::{BuildRecord, BuildStatus};
use crate::text::{age_at, short_digest};

/// Draw one frame.
pub fn draw(f: &mut Frame, state: &mut State, theme: &Theme) {
    let area = f.area();
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, header, state, theme);
    if state.fullscreen {
        draw_log(f, body, state, theme, true);
    } else {
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
        let [left, right] =
            Layout::horizontal([Constraint::Length(left_w), Constraint::Min(20)]).areas(body);
        draw_stacks(f, left, state, theme);
        draw_right(f, right, state, theme);
    }
    draw_footer(f, footer, state, theme);
    if state.overlay.is_some() {
        draw_overlay(f, area, state, theme);
    }
}

fn draw_header(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
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

fn block<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    let b = Block::default().borders(Borders::ALL).title(title);
    if focused {
        b.border_style(theme.accent)
    } else {
        b.border_style(theme.dim)
    }
}

/// Keep the selection inside `[offset, offset + height)`.
fn fit_offset(list: &mut ListState, height: usize) {
    let h = height.max(1);
    if list.selected < list.offset {
        list.offset = list.selected;
    } else if list.selected >= list.offset + h {
        list.offset = list.selected + 1 - h;
    }
    let max = list.visible.len().saturating_sub(h);
    list.offset = list.offset.min(max);
}

/// Short status word (fits a 9-column cell).
/// A list row, marked (reverse/bold from the theme, never colour alone) when it is the
/// selection: one rule for every list and overlay.
fn selectable<'a>(row: Row<'a>, selected: bool, theme: &Theme) -> Row<'a> {
    if selected {
        row.style(theme.selected)
    } else {
        row
    }
}

pub fn status_word(s: BuildStatus) -> &'static str {
    s.as_str()
}

fn status_style(s: BuildStatus, theme: &Theme) -> Style {
    match s {
        BuildStatus::Succeeded => theme.ok,
        BuildStatus::Failed => theme.error,
        BuildStatus::Running => theme.warn,
        _ => theme.warn,
    }
}

fn filter_title(name: &str, list: &ListState, total: usize) -> String {
    if list.filter.is_empty() {
        format!(" {name} ({total}) ")
    } else {
        format!(
            " {name} ({}/{total}) /{} ",
            list.visible.len(),
            crate::text::sanitize_for_terminal(&list.filter)
        )
    }
}

fn draw_stacks(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme) {
    let focused = state.focus == Focus::Stacks && state.overlay.is_none();
    let title = filter_title("Stacks", &state.stacks_list, state.stacks.len());
    let b = block(Span::styled(title, theme.accent), focused, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let problems: Vec<&String> = state.problems.iter().collect();
    // Room for each line of each problem, plus one for wrapping.
    let prob_lines: usize = problems.iter().map(|p| p.lines().count() + 1).sum();
    let prob_h = (prob_lines as u16).min(inner.height / 2);
    let [list_area, prob_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(prob_h)]).areas(inner);
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
        fit_offset(&mut state.stacks_list, body_h);
        let l = &state.stacks_list;
        let now = state.now;
        let rows: Vec<Row> = l
            .visible
            .iter()
            .enumerate()
            .skip(l.offset)
            .take(body_h)
            .map(|(pos, &i)| {
                let s = &state.stacks[i];
                let (st, st_style, when, img) = match &s.last_build {
                    None => ("never".to_string(), theme.dim, String::new(), "-".into()),
                    Some(b) => (
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

fn draw_right(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme) {
    let [tabs, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
    let stack = state.selected_stack().unwrap_or("-").to_string();
    // Narrow: no stack name, tighter labels, so all five tabs fit in 46 columns.
    let narrow = area.width < 60;
    let mut spans = Vec::new();
    if !narrow {
        spans.push(Span::styled(format!(" {stack} "), theme.accent));
    }
    for (i, p) in Pane::ALL.iter().enumerate() {
        if narrow && i > 0 {
            spans.push(Span::raw(" "));
        }
        let label = if narrow {
            format!("{} {}", i + 1, p.title())
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
            let n = state.builds_list.visible.len() as u16;
            let list_h = (n + 3).clamp(4, (rest.height * 2 / 5).max(4));
            let [top, bottom] =
                Layout::vertical([Constraint::Length(list_h), Constraint::Min(3)]).areas(rest);
            draw_builds(f, top, state, theme, focused);
            draw_log(f, bottom, state, theme, false);
        }
        Pane::Log => draw_log(f, rest, state, theme, focused),
        Pane::Manifest => draw_manifest(f, rest, state, theme, focused),
        Pane::Updates => draw_updates(f, rest, state, theme, focused),
        Pane::Releases => draw_releases(f, rest, state, theme, focused),
    }
}

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

fn draw_builds(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme, focused: bool) {
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
    state.list_height = body_h;
    fit_offset(&mut state.builds_list, body_h);
    let l = &state.builds_list;
    let now = state.now;
    let rows: Vec<Row> = l
        .visible
        .iter()
        .enumerate()
        .skip(l.offset)
        .take(body_h)
        .map(|(pos, &i)| {
            let b = &state.builds[i];
            let note = match (&b.failed_step, &b.error) {
                (Some(s), Some(e)) => format!("{s}: {e}"),
                _ => b
                    .image_digest
                    .as_deref()
                    .map(short_digest)
                    .unwrap_or_default(),
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

/// Split `text` into pieces of at most `width` columns.
fn wrap_line(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut w = 0;
    for c in text.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            w = 0;
        }
        cur.push(c);
        w += cw;
    }
    out.push(cur);
    out
}

/// Split `text` into rows of at most `width` columns, breaking after spaces where it can
/// (a word longer than a row is cut like [`wrap_line`]); leading spaces are kept (indent).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut w = 0;
    // Words with the spaces that follow them.
    for word in text.split_inclusive(' ') {
        let ww: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
        let bare = word.trim_end_matches(' ');
        let bw: usize = bare.chars().map(|c| c.width().unwrap_or(0)).sum();
        if w + bw > width && w > 0 {
            out.push(std::mem::take(&mut cur).trim_end().to_string());
            w = 0;
        }
        if bw > width {
            let mut pieces = wrap_line(word, width);
            let last = pieces.pop().unwrap_or_default();
            out.extend(pieces);
            w = last.chars().map(|c| c.width().unwrap_or(0)).sum();
            cur = last;
            continue;
        }
        cur.push_str(word);
        w += ww;
    }
    out.push(cur.trim_end().to_string());
    out
}

/// Spans of one log line with search matches highlighted.
fn log_spans<'a>(text: &'a str, base: Style, needle: Option<&str>, theme: &Theme) -> Line<'a> {
    let Some(n) = needle.filter(|n| !n.is_empty()) else {
        return Line::styled(text, base);
    };
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(n) {
        if i > 0 {
            spans.push(Span::styled(&rest[..i], base));
        }
        spans.push(Span::styled(&rest[i..i + n.len()], theme.matched));
        rest = &rest[i + n.len()..];
    }
    if !rest.is_empty() {
        spans.push(Span::styled(rest, base));
    }
    Line::from(spans)
}

fn log_title(state: &State) -> String {
    let l = &state.log;
    let Some(id) = l.build_id else {
        return " Log ".into();
    };
    let status = state
        .builds
        .iter()
        .find(|b| b.id == id)
        .map(|b| b.status.as_str())
        .unwrap_or("");
    let mut flags = Vec::new();
    if l.follow {
        flags.push("follow".to_string());
    }
    if l.wrap {
        flags.push("wrap".to_string());
    }
    if let Some(s) = &l.search {
        flags.push(format!("/{}", crate::text::sanitize_for_terminal(s)));
    }
    let last = (l.top + l.height).min(l.total);
    let mut t = format!(
        " Log #{id} {status} | {}-{} of {} ",
        if l.total == 0 { 0 } else { l.top + 1 },
        last,
        l.total
    );
    if !flags.is_empty() {
        t.push_str(&format!("[{}] ", flags.join(" ")));
    }
    t
}

/// Draw the log of `state.log`: only the rows that fit are built.
pub fn draw_log(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme, focused: bool) {
    let focused = focused || (in_log(state) && state.overlay.is_none());
    let b = block(Span::styled(log_title(state), theme.accent), focused, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let h = inner.height as usize;
    let w = inner.width as usize;
    let log: &mut LogView = &mut state.log;
    log.height = h;
    if log.follow {
        log.top = log.max_top();
    }
    log.top = log.top.min(log.max_top());
    if log.build_id.is_none() {
        f.render_widget(
            Paragraph::new(Line::styled("No build selected.", theme.dim)),
            inner,
        );
        return;
    }
    if log.total == 0 {
        f.render_widget(
            Paragraph::new(Line::styled("(no log lines yet)", theme.dim)),
            inner,
        );
        return;
    }
    let needle = log.search.as_deref();
    let mut lines: Vec<Line> = Vec::with_capacity(h);
    let mut seq = log.top;
    while lines.len() < h && seq < log.total {
        let (stream, text) = log.line(seq).unwrap_or(("", "..."));
        let mut base = if stream == "drover" {
            theme.drover
        } else {
            Style::new()
        };
        if log.matched == Some(seq) {
            base = base.add_modifier(Modifier::BOLD);
        }
        if log.wrap && w > 0 {
            for piece in wrap_line(text, w) {
                if lines.len() >= h {
                    break;
                }
                lines.push(log_spans_owned(piece, base, needle, theme));
            }
        } else {
            lines.push(log_spans(text, base, needle, theme));
        }
        seq += 1;
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn log_spans_owned(
    text: String,
    base: Style,
    needle: Option<&str>,
    theme: &Theme,
) -> Line<'static> {
    let l = log_spans(&text, base, needle, theme);
    Line::from(
        l.spans
            .into_iter()
            .map(|s| Span::styled(s.content.into_owned(), s.style))
            .collect::<Vec<_>>(),
    )
    .style(l.style)
}

fn draw_manifest(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme, focused: bool) {
    let mut title = filter_title("Manifest", &state.manifest_list, state.manifest.len());
    if let Some(b) = state.manifest_build {
        title.push_str(&format!("build #{b} "));
    }
    let b = block(Span::styled(title, theme.accent), focused, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if state.manifest.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::styled(
                    "No manifest: this stack has no succeeded build yet.",
                    theme.dim,
                ),
                Line::styled(
                    format!(
                        "Press {} to build it; its components manifest shows here.",
                        state.keymap.first(Action::Build)
                    ),
                    theme.dim,
                ),
            ])
            .wrap(ratatui::widgets::Wrap { trim: false }),
            inner,
        );
        return;
    }
    let body_h = inner.height.saturating_sub(1) as usize;
    state.list_height = body_h;
    fit_offset(&mut state.manifest_list, body_h);
    let l = &state.manifest_list;
    let rows: Vec<Row> = l
        .visible
        .iter()
        .enumerate()
        .skip(l.offset)
        .take(body_h)
        .map(|(pos, &i)| {
            let c = &state.manifest[i];
            let row = Row::new(vec![
                c.name.clone(),
                c.version.clone(),
                c.source.clone(),
                if c.suite.is_empty() {
                    "-".to_string()
                } else {
                    c.suite.clone()
                },
            ]);
            selectable(row, pos == l.selected, theme)
        })
        .collect();
    let mark = |c: ManifestColumn, name: &str| {
        if state.manifest_sort == c {
            format!("{name} {}", if state.manifest_desc { "v" } else { "^" })
        } else {
            name.to_string()
        }
    };
    let header = Row::new(vec![
        mark(ManifestColumn::Package, "PACKAGE"),
        mark(ManifestColumn::Version, "VERSION"),
        mark(ManifestColumn::Source, "SOURCE"),
        mark(ManifestColumn::Suite, "SUITE"),
    ])
    .style(theme.dim);
    // Column widths from the rows on screen (never the whole manifest).
    let mut want = [9usize, 9, 8, 7];
    for &i in l.visible.iter().skip(l.offset).take(body_h) {
        let c = &state.manifest[i];
        for (w, v) in want
            .iter_mut()
            .zip([&c.name, &c.version, &c.source, &c.suite])
        {
            *w = (*w).max(v.chars().count());
        }
    }
    let widths = manifest_widths(want, inner.width.saturating_sub(3) as usize);
    f.render_widget(
        Table::new(rows, widths.map(|w| Constraint::Length(w as u16)))
            .header(header)
            .column_spacing(1),
        inner,
    );
}

/// Fit the wanted column widths into `total`: shrink source, then package, then suite,
/// then version, each down to a minimum; extra room goes to the package column.
fn manifest_widths(want: [usize; 4], total: usize) -> [usize; 4] {
    let mut w = [
        want[0].min(40),
        want[1].min(32),
        want[2].min(28),
        want[3].min(20),
    ];
    let min = [10usize, 10, 7, 8];
    for col in [2, 0, 3, 1] {
        let sum: usize = w.iter().sum();
        if sum <= total {
            break;
        }
        w[col] = w[col].saturating_sub(sum - total).max(min[col]);
    }
    let sum: usize = w.iter().sum();
    if sum < total {
        w[0] += total - sum;
    }
    w
}

fn empty_state(f: &mut Frame, area: Rect, lines: Vec<String>, theme: &Theme) {
    f.render_widget(
        Paragraph::new(
            lines
                .into_iter()
                .map(|l| Line::styled(l, theme.dim))
                .collect::<Vec<_>>(),
        )
        .wrap(ratatui::widgets::Wrap { trim: false }),
        area,
    );
}

fn draw_updates(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme, focused: bool) {
    let b = block(
        Span::styled(format!(" Updates ({}) ", state.updates.len()), theme.accent),
        focused,
        theme,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    // After a rebuild the newest check is of an older build: say so above its rows.
    let inner = match stale_updates_text(state) {
        Some(why) => {
            // Word wrap may need a little more than the characters over the width.
            let rows = why
                .chars()
                .count()
                .div_ceil((inner.width as usize).saturating_sub(10).max(1))
                as u16;
            let [note, rest] =
                Layout::vertical([Constraint::Length(rows + 1), Constraint::Min(1)]).areas(inner);
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
    if state.updates_list.visible.len() != state.updates.len() {
        state.updates_list.visible = (0..state.updates.len()).collect();
    }
    fit_offset(&mut state.updates_list, body_h);
    let l = &state.updates_list;
    let on_screen = || {
        l.visible
            .iter()
            .skip(l.offset)
            .take(body_h)
            .map(|&i| &state.updates[i])
    };
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

/// The agent line of the Releases pane and the selected stack's instances (live release
/// and a deploy in progress), from the polled agent status.
fn agent_lines(state: &State, theme: &Theme) -> (Line<'static>, Vec<InstanceStatus>) {
    let stack = state.selected_stack().unwrap_or("");
    match &state.agent {
        AgentView::Unknown => (Line::styled("agent: checking…", theme.dim), Vec::new()),
        AgentView::NotRunning => (
            Line::styled(
                format!(
                    "agent not running ({} deploys and starts it)",
                    state.keymap.first(Action::Deploy)
                ),
                theme.dim,
            ),
            Vec::new(),
        ),
        AgentView::Running(a) => match a.stacks.iter().find(|s| s.stack == stack) {
            None => (
                Line::styled(
                    format!("agent pid {}: no route for {stack} yet", a.pid),
                    theme.dim,
                ),
                Vec::new(),
            ),
            Some(s) => {
                let healthy = s
                    .instances
                    .iter()
                    .filter(|i| i.healthy && Some(i.release) == s.live_release)
                    .count();
                let style = if s.live_release.is_some() && healthy >= s.replicas.max(1) {
                    theme.ok
                } else {
                    theme.warn
                };
                let mut spans = vec![
                    Span::raw(format!("route :{}  ", s.route_port)),
                    Span::styled(
                        format!(
                            "live {}  {healthy}/{} healthy",
                            s.live_release
                                .map(|r| format!("#{r}"))
                                .unwrap_or_else(|| "-".into()),
                            s.replicas
                        ),
                        style,
                    ),
                ];
                if let Some(d) = &s.deploying {
                    spans.push(Span::styled(format!("  ({d})"), theme.warn));
                }
                (Line::from(spans), s.instances.clone())
            }
        },
    }
}

fn draw_releases(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme, focused: bool) {
    let b = block(
        Span::styled(
            format!(" Releases ({}) ", state.releases.len()),
            theme.accent,
        ),
        focused,
        theme,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    let (agent, instances) = agent_lines(state, theme);
    let inst_h = if instances.is_empty() {
        0
    } else {
        (instances.len() as u16 + 1).min(inner.height / 3).max(2)
    };
    let [agent_area, inst_area, _, list_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(inst_h),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(agent), agent_area);
    if inst_h > 0 {
        let rows: Vec<Row> = instances
            .iter()
            .map(|i| {
                let st = if i.healthy { theme.ok } else { theme.warn };
                Row::new(vec![
                    Span::raw(i.id.clone()),
                    Span::raw(format!("#{}", i.release)),
                    Span::styled(i.state.as_str(), st),
                    Span::raw(format!(":{}", i.port)),
                    Span::styled(crate::text::sanitize_for_terminal(&i.last_check), theme.dim),
                ])
            })
            .collect();
        f.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(16),
                    Constraint::Length(4),
                    Constraint::Length(9),
                    Constraint::Length(6),
                    Constraint::Fill(1),
                ],
            )
            .header(
                Row::new(vec!["INSTANCE", "REL", "STATE", "PORT", "LAST CHECK"]).style(theme.dim),
            )
            .column_spacing(1),
            inst_area,
        );
    }
    if state.releases.is_empty() {
        empty_state(
            f,
            list_area,
            vec![
                "No releases yet.".into(),
                format!(
                    "{} deploys the newest succeeded build (or the one selected in Builds); \
                     {} rolls back. Releases of this stack show here with build, image and \
                     status.",
                    state.keymap.first(Action::Deploy),
                    state.keymap.first(Action::Rollback)
                ),
            ],
            theme,
        );
        return;
    }
    let body_h = list_area.height.saturating_sub(1) as usize;
    if state.releases_list.visible.len() != state.releases.len() {
        state.releases_list.visible = (0..state.releases.len()).collect();
    }
    fit_offset(&mut state.releases_list, body_h);
    let l = &state.releases_list;
    let now = state.now;
    let wide = list_area.width >= 60;
    let rows: Vec<Row> = l
        .visible
        .iter()
        .enumerate()
        .skip(l.offset)
        .take(body_h)
        .map(|(pos, &i)| {
            let r = &state.releases[i];
            let st = match r.status.as_str() {
                "live" => theme.ok,
                "failed" => theme.error,
                "deploying" => theme.warn,
                _ => Style::default(),
            };
            let mut cells = vec![
                Span::raw(format!("#{}", r.release)),
                Span::raw(format!("#{}", r.build_id)),
                Span::raw(short_digest(&r.image_digest)),
                Span::raw(age_at(&r.created_at, now)),
                Span::styled(r.status.as_str(), st),
            ];
            if wide {
                cells.push(Span::raw(r.by.clone()));
                cells.push(Span::styled(
                    r.rollback_of
                        .map(|n| format!("rollback to #{n}"))
                        .or_else(|| {
                            r.error.as_deref().map(|e| {
                                crate::text::sanitize_for_terminal(e.lines().next().unwrap_or(""))
                            })
                        })
                        .unwrap_or_default(),
                    theme.dim,
                ));
            }
            let row = Row::new(cells);
            selectable(row, pos == l.selected, theme)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Length(4),
        Constraint::Length(10),
    ];
    let mut header = vec!["REL", "BUILD", "IMAGE", "AGE", "STATUS"];
    if wide {
        widths.extend([Constraint::Length(8), Constraint::Fill(1)]);
        header.extend(["BY", "NOTE"]);
    }
    f.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.dim))
            .column_spacing(1),
        list_area,
    );
}

fn hints(state: &State) -> Vec<(String, &'static str)> {
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
        v.push(("1-5".into(), "panes"));
    } else {
        match state.pane {
            Pane::Log => return log_keys,
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
        v.push((k(Action::Back), "quit"));
    }
    v
}

fn draw_footer(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
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
    if let Some(s) = &state.status {
        f.render_widget(
            Paragraph::new(Line::styled(
                format!(" {}", crate::text::sanitize_for_terminal(s)),
                theme.warn,
            )),
            area,
        );
        return;
    }
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in hints(state) {
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_overlay(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme) {
    let Some(overlay) = &state.overlay else {
        return;
    };
    if matches!(overlay, Overlay::Detail { .. }) {
        return draw_detail(f, area, state, theme);
    }
    match overlay {
        Overlay::Help { input, scroll } => {
            let r = centered(area, 70, area.height.saturating_sub(4).max(8));
            f.render_widget(Clear, r);
            let b = block(Span::styled(" Keys ", theme.accent), true, theme);
            let inner = b.inner(r);
            f.render_widget(b, r);
            let [fl, list] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
            let filter = input.value().to_lowercase();
            f.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled("filter: ", theme.key),
                    Span::raw(crate::text::sanitize_for_terminal(input.value())),
                ])),
                fl,
            );
            let mut rows: Vec<(String, String)> = ACTIONS
                .iter()
                .map(|(a, name, desc, _)| (state.keymap.label(*a), format!("{desc}  [{name}]")))
                .collect();
            rows.push(("y/enter, n".into(), "answer a confirmation".into()));
            rows.push((
                "enter, esc".into(),
                "keep / clear a filter being typed".into(),
            ));
            let rows: Vec<(String, String)> = rows
                .into_iter()
                .filter(|(k, d)| {
                    filter.is_empty()
                        || k.to_lowercase().contains(&filter)
                        || d.to_lowercase().contains(&filter)
                })
                .collect();
            let h = list.height as usize;
            let start = (*scroll).min(rows.len().saturating_sub(h));
            let lines: Vec<Line> = rows
                .iter()
                .skip(start)
                .take(h)
                .map(|(k, d)| {
                    Line::from(vec![
                        Span::styled(format!("{k:<16}"), theme.key),
                        Span::raw(d.clone()),
                    ])
                })
                .collect();
            if lines.is_empty() {
                f.render_widget(
                    Paragraph::new(Line::styled("no key matches", theme.dim)),
                    list,
                );
            } else {
                f.render_widget(Paragraph::new(lines), list);
            }
        }
        Overlay::Palette { input, selected } => {
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
        Overlay::Confirm(c) => {
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
        Overlay::Jobs { selected } => {
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
        Overlay::Detail { .. } => {}
    }
}

/// The Detail overlay: inside the frame between header and footer (the footer keys stay
/// visible), lines wrapped to the box, scrolled by `scroll`, with `a-b of n` in the bottom
/// border when it does not all fit. Writes the page size and largest scroll back.
fn draw_detail(f: &mut Frame, area: Rect, state: &mut State, theme: &Theme) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_words_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(
            wrap_words("defaults used for the rest", 12),
            ["defaults", "used for the", "rest"]
        );
        assert_eq!(wrap_words("  CVE-1", 20), ["  CVE-1"], "indent kept");
        assert_eq!(wrap_words("", 5), [""]);
        assert_eq!(
            wrap_words("/a/very/long/path: bad", 8),
            ["/a/very/", "long/pat", "h: bad"]
        );
        for w in 1..30 {
            for row in wrap_words("x keymap.toml: unknown action `bogus` (defaults)", w) {
                assert!(row.chars().count() <= w, "{row:?} in {w}");
            }
        }
    }
}
