//! Pieces every pane and overlay draws with: the bordered block, the selection rule,
//! status words and styles, filter titles, centring, empty states and wrapping.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row};
use ratatui::Frame;
use unicode_width::UnicodeWidthChar;

use crate::store::builds::BuildStatus;
use crate::tui::state::ListState;
use crate::tui::theme::Theme;

/// A bordered box titled `title`, its border in the accent colour when `focused`.
pub fn block<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    let b = Block::default().borders(Borders::ALL).title(title);
    if focused {
        b.border_style(theme.accent)
    } else {
        b.border_style(theme.dim)
    }
}

/// The inside of a [`block`] drawn over `area` (one cell of border each side): what the
/// viewport pass ([`super::viewport::fit`]) sizes lists by.
pub fn bordered_inner(area: Rect) -> Rect {
    Block::default().borders(Borders::ALL).inner(area)
}

/// Keep the selection inside `[offset, offset + height)`.
pub fn fit_offset(list: &mut ListState, height: usize) {
    let h = height.max(1);
    if list.selected < list.offset {
        list.offset = list.selected;
    } else if list.selected >= list.offset + h {
        list.offset = list.selected + 1 - h;
    }
    let max = list.visible.len().saturating_sub(h);
    list.offset = list.offset.min(max);
}

/// A list row, marked (reverse/bold from the theme, never colour alone) when it is the
/// selection: one rule for every list and overlay.
pub fn selectable<'a>(row: Row<'a>, selected: bool, theme: &Theme) -> Row<'a> {
    if selected {
        row.style(theme.selected)
    } else {
        row
    }
}

/// Short status word (fits a 9-column cell).
pub fn status_word(s: BuildStatus) -> &'static str {
    s.as_str()
}

/// The colour of a build status: ok, error, or warn for running and the rest.
pub fn status_style(s: BuildStatus, theme: &Theme) -> Style {
    match s {
        BuildStatus::Succeeded => theme.ok,
        BuildStatus::Failed => theme.error,
        BuildStatus::Running => theme.warn,
        _ => theme.warn,
    }
}

/// ` NAME (TOTAL) `, or ` NAME (SHOWN/TOTAL) /FILTER ` while a filter is set.
pub fn filter_title(name: &str, list: &ListState, total: usize) -> String {
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

/// A `w`×`h` rectangle centred in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Dim explanatory lines, wrapped, for a pane with nothing to list.
pub fn empty_state(f: &mut Frame, area: Rect, lines: Vec<String>, theme: &Theme) {
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

/// Split `text` into pieces of at most `width` columns.
pub fn wrap_line(text: &str, width: usize) -> Vec<String> {
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
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
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
