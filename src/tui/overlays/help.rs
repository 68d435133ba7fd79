//! The Help overlay (`?`): every key of the keymap with what it does, filtered as typed.

use crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use crate::tui::keymap::ACTIONS;
use crate::tui::msg::Effect;
use crate::tui::state::{Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, centered};

/// Draw the help overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Help { input, scroll }) = &state.overlay else {
        return;
    };
    let r = centered(area, 70, area.height.saturating_sub(4).max(8));
    f.render_widget(Clear, r);
    let b = block(Span::styled(" Keys ", theme.accent), true, theme);
    let inner = b.inner(r);
    f.render_widget(b, r);
    let [fl, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
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

/// Keys of the Help overlay: filter typing, scrolling, closing.
pub fn key(state: &mut State, k: KeyEvent, mut input: Input, mut scroll: usize) -> Vec<Effect> {
    match k.code {
        // Like every text field: esc clears the filter; on an empty one it closes.
        KeyCode::Esc if !input.value().is_empty() => {
            input = Input::default();
            scroll = 0;
        }
        KeyCode::Esc => return Vec::new(),
        KeyCode::Char('q') | KeyCode::Char('?') if input.value().is_empty() => return Vec::new(),
        KeyCode::Down => scroll += 1,
        KeyCode::Up => scroll = scroll.saturating_sub(1),
        KeyCode::PageDown => scroll += 10,
        KeyCode::PageUp => scroll = scroll.saturating_sub(10),
        KeyCode::Enter => return Vec::new(),
        _ => {
            input.handle_event(&Event::Key(k));
            scroll = 0;
        }
    }
    state.overlay = Some(Overlay::Help { input, scroll });
    Vec::new()
}
