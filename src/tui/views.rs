//! The console's scrollable views, as plain data: a selectable, filterable list over
//! indices into its rows ([`ListState`]), and the window of a build log kept in memory
//! ([`LogView`]). Re-exported from [`super::state`].

use std::collections::VecDeque;

/// A selectable list: selection, scroll offset and a filter, over indices into the data.
#[derive(Debug, Clone, Default)]
pub struct ListState {
    /// Index into `visible`.
    pub selected: usize,
    /// First row drawn (kept by the renderer so the selection stays in view).
    pub offset: usize,
    /// The filter text (empty: everything).
    pub filter: String,
    /// Indices of the data rows that pass the filter, in display order.
    pub visible: Vec<usize>,
}

impl ListState {
    /// The rows on screen in a list `height` rows tall: `(position in visible, data index)`
    /// from `offset` on, as every pane draws them.
    pub fn on_screen(&self, height: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.visible
            .iter()
            .copied()
            .enumerate()
            .skip(self.offset)
            .take(height)
    }

    /// The data index of the selected row.
    pub fn current(&self) -> Option<usize> {
        self.visible.get(self.selected).copied()
    }

    /// The selected row of `rows` (the data this list shows).
    pub fn pick<'a, T>(&self, rows: &'a [T]) -> Option<&'a T> {
        self.current().and_then(|i| rows.get(i))
    }

    /// Move by `delta` rows, clamped.
    pub fn step(&mut self, delta: isize) {
        if self.visible.is_empty() {
            self.selected = 0;
            return;
        }
        let max = self.visible.len() - 1;
        self.selected = (self.selected as isize + delta).clamp(0, max as isize) as usize;
    }

    /// Select the first visible row whose data index matches `pred`; false (the selection
    /// unchanged) when none does.
    pub fn select_where(&mut self, pred: impl Fn(usize) -> bool) -> bool {
        match self.visible.iter().position(|i| pred(*i)) {
            Some(p) => {
                self.selected = p;
                true
            }
            None => false,
        }
    }

    /// Jump to the first or last row.
    pub fn jump(&mut self, last: bool) {
        self.selected = if last {
            self.visible.len().saturating_sub(1)
        } else {
            0
        };
    }

    /// Recompute `visible` from a row-matching predicate, keeping the selected data row
    /// when it is still visible.
    pub fn refilter(&mut self, order: impl Iterator<Item = usize>, keep: impl Fn(usize) -> bool) {
        let cur = self.current();
        self.visible = order.filter(|i| keep(*i)).collect();
        self.selected = cur
            .and_then(|c| self.visible.iter().position(|i| *i == c))
            .unwrap_or(0)
            .min(self.visible.len().saturating_sub(1));
    }
}

/// Capacity of the in-memory window of stored log lines.
pub const LOG_WINDOW: usize = 2000;
/// Capacity of the live tail kept from job events.
pub const LOG_TAIL: usize = 2000;

/// A stack's runtime log as the Logs pane views it: which lines (`filter`) and the store
/// ids of those lines in order, so a row number maps to a line by one lookup (8 bytes a
/// line: 8 MB for a 1,000,000-line log; the ids, not the lines, are in memory).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeSource {
    /// Stack name.
    pub stack: String,
    /// Which lines.
    pub filter: crate::store::runtime_logs::RuntimeFilter,
    /// Store ids of the lines passing `filter`, ascending; row `n` is `ids[n]`.
    pub ids: Vec<i64>,
    /// The newest id of the stack's log looked at (passing the filter or not): new lines
    /// are those after it.
    pub scanned: i64,
}

/// The log being viewed: a window of stored lines plus the live tail; only these are in
/// memory, whatever the log's length. Its source is a build (`build_id`) or a stack's
/// runtime log (`runtime`), never both.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// The build whose log this is.
    pub build_id: Option<i64>,
    /// The runtime log this is (the Logs pane).
    pub runtime: Option<RuntimeSource>,
    /// Lines known to exist (store count, or the newest live `seq` + 1).
    pub total: usize,
    /// `seq` of `window[0]`.
    pub window_start: usize,
    /// Sanitised stored lines `window_start..window_start + window.len()`, with stream.
    pub window: VecDeque<(String, String)>,
    /// `seq` of `tail[0]`.
    pub tail_start: usize,
    /// Sanitised live lines from job events (contiguous).
    pub tail: VecDeque<(String, String)>,
    /// First line shown.
    pub top: usize,
    /// Stick to the end as lines arrive.
    pub follow: bool,
    /// Wrap long lines instead of cutting them.
    pub wrap: bool,
    /// The current search text.
    pub search: Option<String>,
    /// The line of the current match.
    pub matched: Option<usize>,
    /// Rows of the last drawn log area (for paging and follow).
    pub height: usize,
    /// A search found nothing (shown in the status line).
    pub not_found: bool,
}

impl LogView {
    /// A line by `seq`, if in memory: `(stream, text)`.
    pub fn line(&self, seq: usize) -> Option<(&str, &str)> {
        if seq >= self.tail_start && seq < self.tail_start + self.tail.len() {
            let (s, l) = &self.tail[seq - self.tail_start];
            return Some((s, l));
        }
        if seq >= self.window_start && seq < self.window_start + self.window.len() {
            let (s, l) = &self.window[seq - self.window_start];
            return Some((s, l));
        }
        None
    }

    /// Whether lines `from..to` are all in memory.
    pub fn covers(&self, from: usize, to: usize) -> bool {
        (from..to.min(self.total)).all(|s| self.line(s).is_some())
    }

    /// The first line of a [`LOG_WINDOW`]-line window centred on the visible lines, or
    /// `None` when those are all in memory already (both logs, build and runtime, read
    /// their windows by this rule).
    pub fn window_needed(&self) -> Option<usize> {
        let h = self.height.max(1);
        let top = if self.follow {
            self.max_top()
        } else {
            self.top
        };
        if self.covers(top, top + h) {
            return None;
        }
        Some(top.saturating_sub((LOG_WINDOW - h.min(LOG_WINDOW)) / 2))
    }

    /// Largest useful `top`.
    pub fn max_top(&self) -> usize {
        self.total.saturating_sub(self.height.max(1))
    }

    /// Append a live line with its `seq`.
    pub fn push_live(&mut self, seq: usize, stream: &str, line: String) {
        if self.tail.is_empty() || seq != self.tail_start + self.tail.len() {
            self.tail.clear();
            self.tail_start = seq;
        }
        self.tail.push_back((stream.to_string(), line));
        if self.tail.len() > LOG_TAIL {
            self.tail.pop_front();
            self.tail_start += 1;
        }
        self.total = self.total.max(seq + 1);
        if self.follow {
            self.top = self.max_top();
        }
    }
}
