//! The Logs pane's data: the selected stack's runtime log in the shared [`LogView`]
//! (scrolling, follow, wrap, search and fullscreen are the build log's), read from the
//! store by window. The view keeps the ids of the lines passing the filter
//! ([`RuntimeSource::ids`]); a window is one keyset query between two ids, so a frame
//! costs the same at line 10 and at line 1,000,000.

use anyhow::Result;

use super::state::{LogView, Pane, RuntimeSource, State, LOG_WINDOW};
use crate::store::runtime_logs::RuntimeFilter;
use crate::store::Store;

/// What a line deleted by the per-stack cap shows while it is still in the view's ids.
pub const ROTATED: &str = "(rotated out of the runtime log)";

/// Make the log view show the selected stack's runtime log with `state.runtime_filter`:
/// a new stack or filter reloads the ids (and follows the end); otherwise the lines
/// stored since are appended. Only while the Logs pane is shown.
pub fn sync(state: &mut State, store: &Store) -> Result<()> {
    debug_assert_eq!(state.pane, Pane::Logs);
    let Some(stack) = state.selected_stack().map(str::to_string) else {
        state.log = LogView {
            runtime: Some(RuntimeSource::default()),
            follow: true,
            wrap: state.log.wrap,
            height: state.log.height,
            ..LogView::default()
        };
        return Ok(());
    };
    let filter = state.runtime_filter.clone();
    let same = state
        .log
        .runtime
        .as_ref()
        .is_some_and(|r| r.stack == stack && r.filter == filter);
    if !same {
        state.log = open(store, &stack, &filter, state.log.wrap, state.log.height)?;
    } else if let Some(rt) = state.log.runtime.as_mut() {
        // Look only at lines stored since the last look (not since the last line shown:
        // with a filter, the lines in between would be read again at every frame).
        let newest = store.runtime_log_last_id(&rt.stack)?;
        if newest <= rt.scanned {
            return ensure_window(&mut state.log, store);
        }
        let more = store.runtime_log_ids(&rt.stack, &rt.filter, rt.scanned)?;
        rt.scanned = newest.max(more.last().copied().unwrap_or(0));
        if !more.is_empty() {
            rt.ids.extend(more);
            state.log.total = rt.ids.len();
            if state.log.follow {
                state.log.top = state.log.max_top();
            }
        }
    }
    ensure_window(&mut state.log, store)
}

/// A log view of `stack`'s runtime log passing `filter`, following its end.
pub fn open(
    store: &Store,
    stack: &str,
    filter: &RuntimeFilter,
    wrap: bool,
    height: usize,
) -> Result<LogView> {
    let scanned = store.runtime_log_last_id(stack)?;
    let mut ids = store.runtime_log_ids(stack, filter, 0)?;
    // Lines stored between the two reads are picked up at the next sync.
    ids.retain(|id| *id <= scanned);
    let mut log = LogView {
        total: ids.len(),
        runtime: Some(RuntimeSource {
            stack: stack.to_string(),
            filter: filter.clone(),
            ids,
            scanned,
        }),
        follow: true,
        wrap,
        height,
        ..LogView::default()
    };
    log.top = log.max_top();
    Ok(log)
}

/// Load the runtime log lines around the visible rows when they are not in memory; a
/// line is shown as `HH:MM:SS.mmm INSTANCE text` with its stream.
pub fn ensure_window(log: &mut LogView, store: &Store) -> Result<()> {
    let Some(rt) = log.runtime.as_ref() else {
        return Ok(());
    };
    let Some(from) = log.window_needed() else {
        return Ok(());
    };
    let end = (from + LOG_WINDOW).min(rt.ids.len());
    log.window_start = from;
    log.window.clear();
    if from >= end {
        return Ok(());
    }
    let (first, last) = (rt.ids[from], rt.ids[end - 1]);
    let wanted = (end - from) as i64;
    let rows = store.runtime_log_window(&rt.stack, &rt.filter, first - 1, last, wanted)?;
    let mut rows = rows.into_iter().peekable();
    for &id in &rt.ids[from..end] {
        while rows.peek().is_some_and(|r| r.id < id) {
            rows.next();
        }
        match rows.next_if(|r| r.id == id) {
            // Stored text is sanitised by the writer (deploy::runtime_log), not again here.
            Some(r) => {
                let mut text =
                    String::with_capacity(r.time.len() + r.instance.len() + r.line.len() + 2);
                text.push_str(&r.time);
                text.push(' ');
                text.push_str(&r.instance);
                text.push(' ');
                text.push_str(&r.line);
                log.window.push_back((r.stream, text));
            }
            None => log.window.push_back(("drover".into(), ROTATED.into())),
        }
    }
    Ok(())
}

/// The row of the first line at or after row `from` (`forward`), or at or before it,
/// containing `needle`, if any.
pub fn find(
    log: &LogView,
    store: &Store,
    needle: &str,
    from: usize,
    forward: bool,
) -> Result<Option<usize>> {
    let Some(rt) = log.runtime.as_ref() else {
        return Ok(None);
    };
    let Some(&id) = rt.ids.get(from.min(rt.ids.len().saturating_sub(1))) else {
        return Ok(None);
    };
    let Some(found) = store.find_runtime_log(&rt.stack, &rt.filter, id, needle, forward)? else {
        return Ok(None);
    };
    Ok(rt.ids.binary_search(&found).ok())
}

/// `H` in the Logs pane: hide or show the health check's own requests.
pub fn toggle_health(state: &mut State) {
    let f = &mut state.runtime_filter;
    f.hide_health = !f.hide_health;
    state.status = Some(if f.hide_health {
        "health-check requests hidden".into()
    } else {
        "health-check requests shown".into()
    });
}

/// `v` in the Logs pane: the next release filter: all releases, then each release of the
/// stack from the newest, then all again (an instance filter is cleared).
pub fn cycle_release(state: &mut State) {
    let mut releases: Vec<i64> = state.releases.iter().map(|r| r.release).collect();
    releases.sort_unstable_by(|a, b| b.cmp(a));
    let f = &mut state.runtime_filter;
    f.instance = None;
    f.release = match f.release {
        None => releases.first().copied(),
        Some(cur) => releases.iter().copied().find(|r| *r < cur),
    };
    state.status = Some(match f.release {
        Some(r) => format!("runtime log of release {r}"),
        None => "runtime log of every release".into(),
    });
}

/// `i` in the Logs pane: the next instance filter: every instance, then each instance the
/// agent runs for the stack (of the release filter, if one is set), then every instance
/// again. An instance that is gone is reached with `drover logs --instance`.
pub fn cycle_instance(state: &mut State) {
    let stack = state.selected_stack().unwrap_or("").to_string();
    let release = state.runtime_filter.release;
    let mut ids: Vec<String> = match &state.agent {
        super::state::AgentView::Running(a) => a
            .stacks
            .iter()
            .filter(|s| s.stack == stack)
            .flat_map(|s| s.instances.iter())
            .filter(|i| release.is_none_or(|r| i.release == r))
            .map(|i| i.id.clone())
            .collect(),
        _ => Vec::new(),
    };
    ids.sort();
    ids.dedup();
    let f = &mut state.runtime_filter;
    f.instance = match &f.instance {
        None => ids.first().cloned(),
        Some(cur) => ids.iter().find(|i| *i > cur).cloned(),
    };
    state.status = Some(match &f.instance {
        Some(i) => format!("runtime log of instance {i}"),
        None if ids.is_empty() => "no running instance to pick (the agent lists none)".into(),
        None => "runtime log of every instance".into(),
    });
}

/// `L` on a release in Releases: the Logs pane with that release's lines only.
pub fn show_release(state: &mut State) {
    let Some(r) = state.releases_list.pick(&state.releases).map(|r| r.release) else {
        return;
    };
    state.runtime_filter.release = Some(r);
    state.runtime_filter.instance = None;
    state.pane = Pane::Logs;
}
