//! One console frame with a 1,000,000-line log and a 5,000-row manifest (ratatui
//! `TestBackend`, 200×60): the cost must not depend on the log's length because only the
//! visible rows are built. Also: scrolling a page through a 1,000,000-line log stored in
//! SQLite (window reload included), and the same through a 1,000,000-line runtime log
//! in the Logs pane (all lines, and with the health check's requests hidden), with the
//! time to open that pane (its ids loaded) printed once.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion};
use drover::manifest::Component;
use drover::store::builds::LogLine;
use drover::store::Store;
use drover::tui::keymap::Keymap;
use drover::tui::state::{Focus, Pane, StackRow, State, LOG_WINDOW};
use drover::tui::theme::{ColorDepth, Theme};
use drover::tui::{data, render, viewport};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const LINES: usize = 1_000_000;

fn state() -> State {
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let mut s = State::new("/var/lib/drover".into(), now, Keymap::default());
    s.set_stacks(
        (0..20)
            .map(|i| StackRow {
                name: format!("stack-{i}"),
                description: String::new(),
                last_build: None,
                updates: None,
                updates_stale: false,
                release: None,
                strategy: drover::stack::Strategy::BlueGreen,
                last_unavailable_ms: None,
                tcp: false,
                problem: None,
            })
            .collect(),
    );
    s.loaded_stack = s.selected_stack().map(str::to_string);
    s.set_manifest(
        Some(1),
        (0..5000)
            .map(|i| Component {
                name: format!("package-{i:05}"),
                version: format!("1.{i}-1+deb12u1"),
                arch: "amd64".into(),
                source: format!("source-{}", i / 3),
                source_version: format!("1.{i}-1"),
                suite: "bookworm".into(),
                origin: "http://deb.debian.org/debian".into(),
                installed_size_kib: Some(i),
            })
            .collect(),
    );
    // The log: 1,000,000 lines, of which the in-memory window around the view holds
    // LOG_WINDOW (as `data::ensure_window` leaves it).
    let top = LINES / 2;
    s.log.build_id = Some(1);
    s.log.total = LINES;
    s.log.top = top;
    s.log.follow = false;
    s.log.window_start = top - LOG_WINDOW / 2;
    s.log.window = (s.log.window_start..s.log.window_start + LOG_WINDOW)
        .map(|i| ("stdout".into(), format!("{i:07} Unpacking libfoo{i} (1.2.3-4) over (1.2.3-3) ... some more build output text")))
        .collect();
    s.focus = Focus::Pane;
    s
}

fn bench(c: &mut Criterion) {
    let theme = Theme::new(ColorDepth::TrueColor);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();

    let mut s = state();
    s.pane = Pane::Log;
    c.bench_function("frame/log_1m_lines_200x60", |b| {
        b.iter(|| {
            // Alternate the scroll position so every frame has new content to diff.
            s.log.top = if s.log.top == LINES / 2 {
                LINES / 2 + 1
            } else {
                LINES / 2
            };
            term.draw(|f| {
                viewport::fit(&mut s, f.area());
                render::draw(f, &s, &theme)
            })
            .unwrap();
            black_box(&term);
        })
    });

    let mut s = state();
    s.pane = Pane::Manifest;
    c.bench_function("frame/manifest_5000_rows_200x60", |b| {
        b.iter(|| {
            s.manifest_list.selected = if s.manifest_list.selected == 2500 {
                2501
            } else {
                2500
            };
            term.draw(|f| {
                viewport::fit(&mut s, f.area());
                render::draw(f, &s, &theme)
            })
            .unwrap();
            black_box(&term);
        })
    });

    let mut s = state();
    s.pane = Pane::Log;
    s.log.wrap = true;
    c.bench_function("frame/log_1m_lines_wrapped_200x60", |b| {
        b.iter(|| {
            s.log.top = if s.log.top == LINES / 2 {
                LINES / 2 + 1
            } else {
                LINES / 2
            };
            term.draw(|f| {
                viewport::fit(&mut s, f.area());
                render::draw(f, &s, &theme)
            })
            .unwrap();
            black_box(&term);
        })
    });

    // Paging through a stored 1,000,000-line log: window reloads from SQLite included.
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("drover.db")).unwrap();
    let id = store.create_build("stack-0", 1).unwrap();
    for chunk in (0..LINES as i64).collect::<Vec<_>>().chunks(50_000) {
        let lines: Vec<LogLine> = chunk
            .iter()
            .map(|&i| LogLine {
                seq: i,
                ts: "2026-01-01T00:00:00Z".into(),
                stream: "stdout".into(),
                line: format!("{i:07} Unpacking libfoo{i} (1.2.3-4) ..."),
            })
            .collect();
        store.append_logs(id, &lines).unwrap();
    }
    let mut s = state();
    s.pane = Pane::Log;
    s.log = Default::default();
    s.log.build_id = Some(id);
    s.log.total = LINES;
    let mut pos = 0usize;
    c.bench_function("frame/page_through_stored_1m_log_200x60", |b| {
        b.iter(|| {
            pos = (pos + 997_331) % LINES; // jump far each time: always a window reload
            s.log.top = pos;
            data::ensure_window(&mut s.log, &store).unwrap();
            term.draw(|f| {
                viewport::fit(&mut s, f.area());
                render::draw(f, &s, &theme)
            })
            .unwrap();
            black_box(&term);
        })
    });
}

/// The Logs pane over a stored 1,000,000-line runtime log (issue #13): every frame jumps
/// far (a window reload: one keyset read between two ids) and draws.
fn bench_runtime(c: &mut Criterion) {
    use drover::store::runtime_logs::{RuntimeFilter, RuntimeLine};
    let theme = Theme::new(ColorDepth::TrueColor);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("drover.db")).unwrap();
    for chunk in (0..LINES as i64).collect::<Vec<_>>().chunks(50_000) {
        let lines: Vec<RuntimeLine> = chunk
            .iter()
            .map(|&i| RuntimeLine {
                id: 0,
                stack: "stack-0".into(),
                release: 1 + i % 3,
                instance: format!("stack-0-r{}-{}", 1 + i % 3, i % 7),
                stream: "stderr".into(),
                ts: "2026-01-01T00:00:00.000Z".into(),
                health: i % 4 == 0,
                line: if i % 4 == 0 {
                    r#"127.0.0.1 - - [01/Jan/2026 00:00:00] "GET /up HTTP/1.1" 200 -"#.into()
                } else {
                    format!(
                        r#"127.0.0.1 - - [01/Jan/2026 00:00:00] "GET /items/{i} HTTP/1.1" 200 -"#
                    )
                },
            })
            .collect();
        store.append_runtime_logs(&lines).unwrap();
    }
    for (name, filter) in [
        (
            "frame/page_through_runtime_1m_log_200x60",
            RuntimeFilter::default(),
        ),
        (
            "frame/page_through_runtime_1m_log_no_health_200x60",
            RuntimeFilter {
                hide_health: true,
                ..Default::default()
            },
        ),
    ] {
        let mut s = state();
        s.pane = Pane::Logs;
        let t = std::time::Instant::now();
        s.log = drover::tui::runlog::open(&store, "stack-0", &filter, false, 58).unwrap();
        eprintln!(
            "{name}: opening the pane (ids of {} lines) took {:?}",
            s.log.total,
            t.elapsed()
        );
        s.log.follow = false;
        let total = s.log.total;
        let mut pos = 0usize;
        c.bench_function(name, |b| {
            b.iter(|| {
                pos = (pos + 997_331) % total;
                s.log.top = pos;
                data::ensure_window(&mut s.log, &store).unwrap();
                term.draw(|f| {
                    viewport::fit(&mut s, f.area());
                    render::draw(f, &s, &theme)
                })
                .unwrap();
                black_box(&term);
            })
        });
    }
}

criterion_group!(benches, bench, bench_runtime);
criterion_main!(benches);
