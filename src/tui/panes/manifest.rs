//! The Manifest pane: the components of the selected stack's newest succeeded build,
//! sorted by a column (`s`, `S`); `enter` shows a component's details.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use crate::manifest::Component;
use crate::tui::keymap::Action;
use crate::tui::state::{ManifestColumn, Overlay, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, bordered_inner, filter_title, fit_offset, selectable};

/// Draw the Manifest table into `area` (offsets as [`fit`] left them).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme, focused: bool) {
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
    let l = &state.manifest_list;
    let rows: Vec<Row> = l
        .on_screen(body_h)
        .map(|(pos, i)| {
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

/// Keep the Manifest selection on screen for a table drawn into `area`; the page size is
/// what page up/down moves by.
pub fn fit(state: &mut State, area: Rect) {
    if state.manifest.is_empty() {
        return;
    }
    let body_h = bordered_inner(area).height.saturating_sub(1) as usize;
    state.list_height = body_h;
    fit_offset(&mut state.manifest_list, body_h);
}

/// `s`: sort by the next column (ascending); `S` (`reverse`): reverse the order.
pub fn sort(state: &mut State, reverse: bool) {
    if reverse {
        state.manifest_desc = !state.manifest_desc;
    } else {
        state.manifest_sort = state.manifest_sort.next();
        state.manifest_desc = false;
    }
    state.refilter_manifest();
}

/// `enter` on a component: its details in the Detail overlay.
pub fn enter(state: &mut State) {
    if let Some(c) = state.manifest_list.pick(&state.manifest) {
        state.overlay = Some(Overlay::detail(
            format!("{} {}", c.name, c.version),
            component_detail(c),
        ));
    }
}

/// The Detail lines of a component: package, version, architecture, source, suite,
/// origin, installed size.
fn component_detail(c: &Component) -> Vec<String> {
    vec![
        format!("package         {}", c.name),
        format!("version         {}", c.version),
        format!("architecture    {}", c.arch),
        format!("source          {} {}", c.source, c.source_version),
        format!(
            "suite           {}",
            if c.suite.is_empty() { "-" } else { &c.suite }
        ),
        format!("origin          {}", c.origin),
        format!(
            "installed size  {}",
            c.installed_size_kib
                .map(|k| format!("{k} KiB"))
                .unwrap_or_else(|| "-".into())
        ),
    ]
}
