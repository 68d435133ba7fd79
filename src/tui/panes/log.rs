//! The Log and Logs panes: the visible window of a build's log or a stack's runtime log, with search matches and wrapping,
//! and its keys: scrolling, follow, wrap, fullscreen and search.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::state::{Focus, LogView, Pane, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, bordered_inner, wrap_line};

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
    let mut flags = Vec::new();
    let head = if let Some(rt) = &l.runtime {
        if let Some(r) = rt.filter.release {
            flags.push(format!("r{r}"));
        }
        if let Some(i) = &rt.filter.instance {
            flags.push(crate::text::sanitize_for_terminal(i));
        }
        if rt.filter.hide_health {
            flags.push("no health".to_string());
        }
        format!("Logs {}", crate::text::sanitize_for_terminal(&rt.stack))
    } else {
        let Some(id) = l.build_id else {
            return " Log ".into();
        };
        let status = state
            .builds
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.status.as_str())
            .unwrap_or("");
        format!("Log #{id} {status}")
    };
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
        " {head} | {}-{} of {} ",
        if l.total == 0 { 0 } else { l.top + 1 },
        last,
        l.total
    );
    if !flags.is_empty() {
        t.push_str(&format!("[{}] ", flags.join(" ")));
    }
    t
}

/// Draw the log of `state.log` (scrolled as [`fit`] left it): only the rows that fit are
/// built.
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme, focused: bool) {
    let focused = focused || (in_log(state) && state.overlay.is_none());
    let b = block(Span::styled(log_title(state), theme.accent), focused, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let h = inner.height as usize;
    let w = inner.width as usize;
    let log: &LogView = &state.log;
    if log.build_id.is_none() && log.runtime.is_none() {
        f.render_widget(
            Paragraph::new(Line::styled("No build selected.", theme.dim)),
            inner,
        );
        return;
    }
    if log.total == 0 {
        let empty = match &log.runtime {
            Some(rt) if rt.stack.is_empty() => "No stack selected.",
            Some(_) => "(no runtime log lines: deploy the stack with d, or widen the filter)",
            None => "(no log lines yet)",
        };
        f.render_widget(Paragraph::new(Line::styled(empty, theme.dim)), inner);
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

/// Size the log view for a pane drawn into `area`: its height, and the top line clamped
/// (the end when following).
pub fn fit(state: &mut State, area: Rect) {
    let log = &mut state.log;
    log.height = bordered_inner(area).height as usize;
    if log.follow {
        log.top = log.max_top();
    }
    log.top = log.top.min(log.max_top());
}

/// Whether keys go to the log (Log pane focused, or fullscreen).
pub fn in_log(state: &State) -> bool {
    state.fullscreen || (state.focus == Focus::Pane && matches!(state.pane, Pane::Log | Pane::Logs))
}

/// Whether log-only keys (`f`, `w`, `n`, `N`, `F`) apply: a log is on screen.
pub fn visible(state: &State) -> bool {
    state.fullscreen || matches!(state.pane, Pane::Log | Pane::Logs | Pane::Builds)
}

/// Scroll the log by `delta` lines (clamped); scrolling stops following.
pub fn scroll(state: &mut State, delta: isize) {
    let l = &mut state.log;
    l.follow = false;
    l.top = (l.top as isize + delta).clamp(0, l.max_top() as isize) as usize;
}

/// `g` / `G` in the log: the first line, or the end (which follows).
pub fn jump(state: &mut State, last: bool) {
    state.log.top = if last { state.log.max_top() } else { 0 };
    state.log.follow = last;
}

/// The log's own keys, while a log is on screen ([`visible`]): `f` follow, `w` wrap, `F`
/// fullscreen, `n` / `N` the next / previous match of the search (a [`Effect::SearchLog`]).
pub fn action(state: &mut State, a: Action) -> Vec<Effect> {
    match a {
        Action::Follow => {
            state.log.follow = !state.log.follow;
            if state.log.follow {
                state.log.top = state.log.max_top();
            }
        }
        Action::Wrap => state.log.wrap = !state.log.wrap,
        Action::Fullscreen => state.fullscreen = !state.fullscreen,
        Action::NextMatch | Action::PrevMatch => {
            let Some(needle) = state.log.search.clone() else {
                state.status = Some("no search yet: press / in the log".into());
                return Vec::new();
            };
            let forward = a == Action::NextMatch;
            let from = match state.log.matched {
                Some(m) if forward => m + 1,
                Some(m) => match m.checked_sub(1) {
                    Some(f) => f,
                    None => {
                        state.status = Some(format!("`{needle}`: no earlier match"));
                        return Vec::new();
                    }
                },
                None => state.log.top,
            };
            return vec![Effect::SearchLog {
                needle,
                from,
                forward,
            }];
        }
        _ => {}
    }
    Vec::new()
}

/// `enter` in the log's search field: search for `needle` from the top line on screen; an
/// empty needle clears the search.
pub fn search(state: &mut State, needle: String) -> Vec<Effect> {
    if needle.is_empty() {
        state.log.search = None;
        state.log.matched = None;
        return Vec::new();
    }
    state.log.search = Some(needle.clone());
    vec![Effect::SearchLog {
        needle,
        from: state.log.top,
        forward: true,
    }]
}
