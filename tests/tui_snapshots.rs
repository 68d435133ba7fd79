//! Snapshots (ratatui `TestBackend`) of every pane and overlay at 80×24 and 120×40 (the
//! newer ones at 80×24 and 200×60), from a store seeded with the store API (no network).
//! Times are fixed and the state directory is shown as `[STATE]`.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use drover::debian::changelog::Entry;
use drover::deploy::api::{AgentStatus, InstanceStatus, StackStatus};
use drover::manifest::Component;
use drover::paths::Paths;
use drover::store::builds::{LogLine, Success};
use drover::store::Store;
use drover::tui::keymap::Keymap;
use drover::tui::state::{AgentView, State};
use drover::tui::theme::{ColorDepth, Theme};
use drover::tui::update::{update, Msg};
use drover::tui::{data, render, viewport};
use drover::updates::PendingUpdate;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const T0: &str = "2026-01-01T10:00:00Z";

fn comp(name: &str, version: &str, source: &str, suite: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        suite: suite.into(),
        origin: "http://deb.debian.org/debian".into(),
        installed_size_kib: Some(1234),
    }
}

fn seed(store: &mut Store) {
    // #1 succeeded, #2 failed, #3 succeeded (newest).
    for (i, ok) in [(1, true), (2, false), (3, true)] {
        let id = store.create_build("hello", 1).unwrap();
        assert_eq!(id, i);
        store.set_build_base(id, &"ab".repeat(32), i != 1).unwrap();
        let lines: Vec<LogLine> = (0..60)
            .map(|n| LogLine {
                seq: n,
                ts: T0.into(),
                stream: if n % 10 == 0 { "drover" } else { "stdout" }.into(),
                line: if n == 7 {
                    "\u{1b}[1;32mcolour\u{1b}[0m and a\ttab and a bell\u{7} and a very long line that goes on and on past the edge of any reasonable terminal width to test cutting and wrapping".into()
                } else {
                    format!("build {i} step output line {n}")
                },
            })
            .collect();
        store.append_logs(id, &lines).unwrap();
        if ok {
            let comps = vec![
                comp("bash", "5.2.15-2+b7", "bash", "bookworm"),
                comp("ca-certificates", "20230311", "ca-certificates", "bookworm"),
                comp("libssl3", "3.0.15-1~deb12u1", "openssl", "bookworm"),
                comp("openssl", "3.0.15-1~deb12u1", "openssl", "bookworm"),
                comp(
                    "python3-minimal",
                    "3.11.2-1+b1",
                    "python3-defaults",
                    "bookworm",
                ),
                comp("zlib1g", "1:1.2.13.dfsg-1", "zlib", "bookworm-updates"),
                comp("local-tool", "1.0", "local-tool", ""),
            ];
            let digest = format!("sha256:{}", format!("{i}").repeat(64));
            store
                .finish_build_success(
                    id,
                    &Success {
                        image_digest: &digest,
                        image_path: "/state/images/hello/1.oci.tar",
                        components: &comps,
                    },
                )
                .unwrap();
        } else {
            store
                .finish_build_failure(id, "app", "build script exited with status 1")
                .unwrap();
        }
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    state: State,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let paths = Paths {
        config: repo.join("config"),
        state: tmp.path().to_path_buf(),
    };
    let mut store = Store::open(&paths.database()).unwrap();
    seed(&mut store);
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let mut state = State::new("[STATE]".into(), now, Keymap::default());
    data::reload(&mut state, &paths, &store).unwrap();
    normalise(&mut state);
    data::sync(&mut state, &store).unwrap();
    Fixture {
        _tmp: tmp,
        store,
        state,
    }
}

/// Reload the fixture's state from its store (after seeding more), with fixed times.
fn reload(f: &mut Fixture) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let paths = Paths {
        config: repo.join("config"),
        state: f._tmp.path().to_path_buf(),
    };
    data::reload(&mut f.state, &paths, &f.store).unwrap();
    normalise(&mut f.state);
}

/// Fixed times instead of the store's wall clock.
fn normalise(state: &mut State) {
    for b in state.builds.iter_mut().chain(
        state
            .stacks
            .iter_mut()
            .filter_map(|s| s.last_build.as_mut()),
    ) {
        b.started_at = T0.into();
        b.finished_at = Some("2026-01-01T10:01:05Z".into());
    }
    for r in state.releases.iter_mut() {
        r.created_at = "2026-01-01T11:00:00Z".into();
    }
}

fn keys(state: &mut State, ks: &str) {
    for c in ks.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\t' => KeyCode::Tab,
            '\u{1b}' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        let m = if c.is_ascii_uppercase() {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        update(state, Msg::Key(KeyEvent::new(code, m)));
    }
}

fn screen(f: &mut Fixture, w: u16, h: u16) -> String {
    let theme = Theme::new(ColorDepth::None);
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    // Draw, load what became visible, draw again (as the app loop does).
    term.draw(|fr| {
        viewport::fit(&mut f.state, fr.area());
        render::draw(fr, &f.state, &theme)
    })
    .unwrap();
    data::sync(&mut f.state, &f.store).unwrap();
    data::ensure_window(&mut f.state.log, &f.store).unwrap();
    normalise(&mut f.state);
    term.draw(|fr| {
        viewport::fit(&mut f.state, fr.area());
        render::draw(fr, &f.state, &theme)
    })
    .unwrap();
    term.backend().to_string()
}

fn check(name: &str, ks: &str) {
    check_with(fixture, name, ks)
}

/// Snapshots at 80×24 and 120×40 of a fresh `fixture()` after the keys `ks`.
fn check_with(fixture: impl Fn() -> Fixture, name: &str, ks: &str) {
    for (w, h) in [(80, 24), (120, 40)] {
        let mut f = fixture();
        keys(&mut f.state, ks);
        let text = screen(&mut f, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

#[test]
fn stacks_and_builds() {
    check("builds", "");
}

#[test]
fn builds_focused_second_selected() {
    check("builds_selected", "\nj");
}

#[test]
fn log_pane() {
    check("log", "2");
}

#[test]
fn log_wrapped_from_top() {
    check("log_wrap_top", "2gw");
}

#[test]
fn log_fullscreen() {
    check("log_fullscreen", "2F");
}

#[test]
fn manifest_pane() {
    check("manifest", "3");
}

#[test]
fn manifest_filtered_libssl() {
    check("manifest_filter", "3/libssl\n");
}

#[test]
fn manifest_sorted_by_suite_desc() {
    check("manifest_sort", "3sssS");
}

#[test]
fn manifest_detail() {
    check("manifest_detail", "3j\n");
}

#[test]
fn updates_empty() {
    check("updates", "4");
}

#[test]
fn releases_empty() {
    check("releases", "5");
}

#[test]
fn help_overlay() {
    check("help", "?");
}

#[test]
fn help_overlay_filtered() {
    check("help_filter", "?log");
}

#[test]
fn palette() {
    check("palette", ":b");
}

#[test]
fn confirm_build() {
    check("confirm_build", "b");
}

#[test]
fn jobs_overlay_empty() {
    check("jobs_empty", "J");
}

#[test]
fn jobs_overlay_with_a_job() {
    check("jobs", "byJ");
}

#[test]
fn jobs_overlay_with_a_rollback() {
    check_deployed("jobs_rollback", "5jRyJ");
}

#[test]
fn filter_input_open() {
    check("filter_input", "/hel");
}

/// The fixture plus two releases (#1 superseded, #2 live, both of build #1), the agent
/// serving release #2 with one healthy and one starting instance, and an update check of
/// build #3 with a cached changelog.
/// A pending update of binary package `pkg` from source `source`, `versions` = (installed,
/// candidate), checked at T0 in bookworm-security.
fn pending_update(
    pkg: &str,
    source: &str,
    versions: (&str, &str),
    cves: &[String],
    urgency: &str,
) -> PendingUpdate {
    PendingUpdate {
        package: pkg.into(),
        arch: "amd64".into(),
        installed: versions.0.into(),
        candidate: versions.1.into(),
        suite: "bookworm-security".into(),
        source: source.into(),
        source_installed: versions.0.into(),
        source_candidate: versions.1.into(),
        cves: cves.to_vec(),
        urgency: Some(urgency.into()),
        checked_at: T0.into(),
        advisories: vec![],
        dates: vec![],
        deb: None,
        feed_cves: vec![],
        open_cves: vec![],
    }
}

fn deployed_fixture() -> Fixture {
    let mut f = fixture();
    let d1 = format!("sha256:{}", "1".repeat(64));
    for n in 1..=2 {
        let r = f
            .store
            .create_release("hello", 1, &d1, 2, "operator", None)
            .unwrap();
        assert_eq!(r, n);
        f.store.mark_release_live("hello", r).unwrap();
    }
    let cves = ["CVE-2025-9230", "CVE-2025-9231", "CVE-2025-9232"].map(String::from);
    let pending = |pkg: &str| {
        pending_update(
            pkg,
            "openssl",
            ("3.0.15-1~deb12u1", "3.0.17-1~deb12u2"),
            &cves,
            "high",
        )
    };
    // The live release runs build 1: its check comes first (as `check_stack` stores it),
    // the newest build's (3) last.
    f.store
        .record_update_check(
            "hello",
            1,
            T0,
            &[pending("libssl3"), pending("openssl")],
            &[],
            &[],
        )
        .unwrap();
    let check = f
        .store
        .record_update_check(
            "hello",
            3,
            T0,
            &[pending("libssl3"), pending("openssl")],
            &[],
            &[],
        )
        .unwrap();
    // A language package with a newer version in its registry: listed after the Debian
    // updates.
    f.store
        .put_language_updates(
            check,
            &[drover::updates::registries::LangUpdate {
                ecosystem: "pypi".into(),
                package: "requests".into(),
                installed: "2.28.1".into(),
                latest: "2.32.3".into(),
                location: "/srv/app/venv/requests-2.28.1.dist-info/METADATA".into(),
                registry: "https://pypi.org/pypi/requests/json".into(),
                checked_at: T0.into(),
            }],
        )
        .unwrap();
    let entry = |v: &str, urgency: &str, date: &str, cves: &[&str], adv: &[&str]| Entry {
        version: v.into(),
        distributions: "bookworm-security".into(),
        urgency: urgency.into(),
        date: date.into(),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        advisories: adv.iter().map(|c| c.to_string()).collect(),
        text: String::new(),
    };
    f.store
        .put_changelog(
            "openssl",
            "3.0.17-1~deb12u2",
            &[
                entry(
                    "3.0.17-1~deb12u2",
                    "high",
                    "Tue, 30 Sep 2025 20:00:00 +0200",
                    &["CVE-2025-9230", "CVE-2025-9231"],
                    &["DSA-6015-1"],
                ),
                entry("3.0.16-1~deb12u1", "medium", "", &["CVE-2025-9232"], &[]),
                entry("3.0.15-1~deb12u1", "medium", "", &["CVE-2024-1"], &[]),
            ],
        )
        .unwrap();
    reload(&mut f);
    let inst = |n: u32, state: &str, healthy: bool, check: &str| InstanceStatus {
        id: format!("hello-r2-{n}"),
        release: 2,
        pid: Some(4000 + n),
        port: 40000 + n as u16,
        state: state.parse().unwrap(),
        healthy,
        last_check: check.into(),
        in_flight: 0,
        started_at: T0.into(),
    };
    update(
        &mut f.state,
        Msg::Agent(AgentView::Running(AgentStatus {
            pid: 321,
            started_at: T0.into(),
            stacks: vec![StackStatus {
                stack: "hello".into(),
                route_port: 8080,
                live_release: Some(2),
                build_id: Some(1),
                image_digest: Some(d1),
                replicas: 2,
                deploying: None,
                instances: vec![
                    inst(1, "healthy", true, "200 ok"),
                    inst(2, "starting", false, "connection refused"),
                ],
                watching: None,
                stopped: None,
            }],
        })),
    );
    f
}

fn check_deployed(name: &str, ks: &str) {
    check_with(deployed_fixture, name, ks)
}

#[test]
fn releases_with_live_instances() {
    check_deployed("releases_live", "5");
}

#[test]
fn releases_agent_not_running() {
    let no_agent = || {
        let mut f = deployed_fixture();
        update(&mut f.state, Msg::Agent(AgentView::NotRunning));
        f
    };
    check_with(no_agent, "releases_no_agent", "5");
}

#[test]
fn releases_agent_socket_permission_denied() {
    // An agent of another user: the pane says so instead of "agent not running".
    let denied = || {
        let mut f = deployed_fixture();
        update(
            &mut f.state,
            Msg::Agent(AgentView::Denied(
                "permission denied on the agent socket /state/agent.sock (owned by uid 0): \
                 the agent runs as another user; run drover as the agent's user"
                    .into(),
            )),
        );
        f
    };
    check_with(denied, "releases_agent_denied", "5");
}

#[test]
fn releases_with_a_warm_release() {
    // `[deploy] keep_warm`: release 1's instance keeps running unrouted next to the live one.
    let warm = || {
        let mut f = deployed_fixture();
        let drover::tui::state::AgentView::Running(mut a) = f.state.agent.clone() else {
            panic!("the fixture has a running agent");
        };
        let mut w = a.stacks[0].instances[0].clone();
        w.id = "hello-r1-1".into();
        w.release = 1;
        w.pid = Some(3999);
        w.port = 39999;
        w.state = "warm".parse().unwrap();
        a.stacks[0].instances.push(w);
        update(&mut f.state, Msg::Agent(AgentView::Running(a)));
        f
    };
    check_with(warm, "releases_warm", "5");
}

#[test]
fn releases_with_route_traffic_and_a_watch() {
    // Route metrics of the last 30 minutes (release 1, then release 2 with 5xx) as the
    // reload reads them from the store, and the agent watching release 2.
    let traffic = || {
        use drover::store::metrics::{minute_of, Bucket};
        let mut f = deployed_fixture();
        let now = minute_of(std::time::SystemTime::now());
        let mut buckets = Vec::new();
        for m in 0..12i64 {
            let mut b = Bucket::default();
            let release = if m < 8 { 1 } else { 2 };
            for i in 0..(40 + m as u64 * 10) {
                let status = if release == 2 && i % 3 == 0 { 500 } else { 200 };
                b.record(status, false, std::time::Duration::from_millis(2 + i % 5));
            }
            buckets.push((release, now - (11 - m) * 60, b));
        }
        f.store.add_route_metrics("hello", &buckets).unwrap();
        reload(&mut f);
        assert_eq!(
            f.state.traffic.len(),
            12,
            "the reload reads the stored minutes"
        );
        // The pane draws relative to the state's clock: move the minutes onto it.
        let shift = minute_of(f.state.now.into()) - now;
        for r in f.state.traffic.iter_mut() {
            r.minute_unix += shift;
        }
        let AgentView::Running(mut a) = f.state.agent.clone() else {
            panic!("the fixture has a running agent");
        };
        a.stacks[0].watching = Some(
            "release 2 until 2026-01-01T12:02:00Z: rolls back to release 1 past 5xx 5.0%".into(),
        );
        update(&mut f.state, Msg::Agent(AgentView::Running(a)));
        f
    };
    check_with(traffic, "releases_traffic", "5");
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 30).unwrap();
    use drover::tui::panes::releases::watch_note;
    assert_eq!(
        watch_note("release 8 until 2026-01-01T12:02:00Z: rolls back …", now),
        "watching #8, 1m 30s left"
    );
    assert_eq!(watch_note("release 8 until later", now), "watching #8");
    assert_eq!(watch_note("", now), "watching");
}

#[test]
fn releases_of_a_stopped_stack() {
    // `drover stop`: the route is up without instances, the agent line says who stopped
    // it and the key that starts it.
    let stopped = || {
        let mut f = deployed_fixture();
        let AgentView::Running(mut a) = f.state.agent.clone() else {
            panic!("the fixture has a running agent");
        };
        a.stacks[0].instances.clear();
        a.stacks[0].stopped = Some("by alice at 2026-01-01T11:30:00Z".into());
        update(&mut f.state, Msg::Agent(AgentView::Running(a)));
        f
    };
    check_with(stopped, "releases_stopped", "5");
}

#[test]
fn a_broken_stack_file_and_a_deleted_one_keep_their_rows() {
    // `web.toml` no longer parses and `gone` has no file but a live release: both stay in
    // the Stacks list, marked, and the problems box says what to do.
    let problem_rows = || {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = tmp.path().join("config");
        std::fs::create_dir_all(config.join("stacks")).unwrap();
        std::fs::copy(
            repo.join("config/stacks/hello.toml"),
            config.join("stacks/hello.toml"),
        )
        .unwrap();
        let app = tmp.path().join("assets/demo/hello");
        std::fs::create_dir_all(&app).unwrap();
        for f in ["server.py", "VERSION"] {
            std::fs::copy(repo.join("assets/demo/hello").join(f), app.join(f)).unwrap();
        }
        std::fs::write(
            config.join("stacks/web.toml"),
            "name = \"web\"\npackages = 3\n",
        )
        .unwrap();
        let paths = Paths {
            config,
            state: tmp.path().join("state"),
        };
        paths.ensure_state().unwrap();
        let mut store = Store::open(&paths.database()).unwrap();
        seed(&mut store);
        let r = store
            .create_release(
                "gone",
                1,
                &format!("sha256:{}", "9".repeat(64)),
                1,
                "alice",
                None,
            )
            .unwrap();
        store.mark_release_live("gone", r).unwrap();
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let mut state = State::new("[STATE]".into(), now, Keymap::default());
        data::reload(&mut state, &paths, &store).unwrap();
        normalise(&mut state);
        data::sync(&mut state, &store).unwrap();
        let names: Vec<&str> = state.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["gone", "hello", "web"]);
        // The temporary directory is not part of the picture.
        let root = tmp.path().to_string_lossy().into_owned();
        for p in state.problems.iter_mut() {
            *p = p.replace(&root, "[ROOT]");
        }
        assert!(state
            .problems
            .iter()
            .any(|p| p.contains("gone: no stack file") && p.contains("release #1 is live")));
        Fixture {
            _tmp: tmp,
            store,
            state,
        }
    };
    check_with(problem_rows, "stacks_broken_and_orphaned", "");
}

#[test]
fn traffic_series_sums_releases_per_minute_and_drops_old_minutes() {
    use drover::store::metrics::{minute_of, Bucket};
    use drover::tui::panes::releases::{traffic_series, TRAFFIC_MINUTES};
    let mut f = deployed_fixture();
    let now = minute_of(std::time::SystemTime::now());
    let mut one = Bucket::default();
    one.record(200, false, std::time::Duration::from_millis(1));
    let mut bad = Bucket::default();
    bad.record(503, true, std::time::Duration::from_millis(1));
    f.store
        .add_route_metrics(
            "hello",
            &[(1, now, one.clone()), (2, now, bad), (1, now - 3600, one)],
        )
        .unwrap();
    reload(&mut f);
    let (req, err) = traffic_series(&f.state.traffic, now + 59);
    assert_eq!((req.len(), err.len()), (TRAFFIC_MINUTES, TRAFFIC_MINUTES));
    assert_eq!((req[TRAFFIC_MINUTES - 1], err[TRAFFIC_MINUTES - 1]), (2, 1));
    assert_eq!(
        req.iter().sum::<u64>(),
        2,
        "the minute an hour ago is not read"
    );
}

#[test]
fn confirm_deploy() {
    check_deployed("confirm_deploy", "d");
}

/// Issue #11: a rollback that puts older packages live asks with how many go back and
/// which CVE fixes that undoes (here: build 4 with openssl 3.0.17 is live, release 2 has
/// build 1's 3.0.15; the stored changelog of 3.0.17 names three CVEs in between).
#[test]
fn confirm_rollback_that_downgrades() {
    check_with(newer_live_fixture, "confirm_rollback_downgrade", "R");
}

/// Issue #13: `D` on the live release in Releases: what it changed against the release
/// before it, in the Detail overlay (the same text as `drover diff`; the fixture has no
/// image archives, so the image side says so).
#[test]
fn diff_of_a_release() {
    for (w, h) in [(80, 24), (120, 40)] {
        let mut f = newer_live_fixture();
        keys(&mut f.state, "5g");
        let asked = update(
            &mut f.state,
            Msg::Key(KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT)),
        );
        let [drover::tui::msg::Effect::Diff { stack, a, b }] = asked.as_slice() else {
            panic!("no diff asked: {asked:?}");
        };
        let paths = Paths {
            config: Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            state: f._tmp.path().to_path_buf(),
        };
        let loaded = drover::tui::overlays::diff::load(&paths, stack, *a, *b);
        update(&mut f.state, Msg::Detail(loaded));
        let text = screen(&mut f, w, h);
        assert!(text.contains("3 CVEs, undoes 0"), "{text}");
        insta::assert_snapshot!(format!("diff_release_{w}x{h}"), text);
    }
}

/// Issue #13: `enter` on a release: its detail (who, when, build, image, verification,
/// instance history) in the Detail overlay.
#[test]
fn release_detail() {
    for (w, h) in [(80, 24), (120, 40)] {
        let mut f = deployed_fixture();
        f.store
            .set_verification(1, true, "test script: GET / -> 200 hello")
            .unwrap();
        keys(&mut f.state, "5g");
        let asked = update(
            &mut f.state,
            Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        let [drover::tui::msg::Effect::ReleaseDetail { stack, release }] = asked.as_slice() else {
            panic!("no detail asked: {asked:?}");
        };
        let paths = Paths {
            config: Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            state: f._tmp.path().to_path_buf(),
        };
        let loaded = drover::tui::panes::releases::load_detail(&paths, stack, *release);
        update(&mut f.state, Msg::Detail(loaded));
        let text = screen(&mut f, w, h);
        assert!(text.contains("Release #2 of hello"), "{text}");
        // The stored times are the wall clock's: blank them for the snapshot.
        let text = blank_times(&text);
        insta::assert_snapshot!(format!("release_detail_{w}x{h}"), text);
    }
}

/// `2026-12-02T05:40:01.123Z` and `2026-12-02 05:40:01` become `[TIME]` (same width kept
/// out: the snapshot only needs to be stable).
fn blank_times(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let looks = i + 19 <= b.len()
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 7] == b'-'
            && (b[i + 10] == b'T' || b[i + 10] == b' ')
            && b[i + 13] == b':'
            && b[i + 16] == b':';
        if looks {
            out.push_str("[TIME]             ");
            i += 19;
            while i < b.len() && (b[i] == b'.' || b[i].is_ascii_digit() || b[i] == b'Z') {
                out.push(' ');
                i += 1;
            }
        } else {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Build 4 (openssl 3.0.17, whose stored changelog names three CVEs after 3.0.15) live
/// as release 3, over the deployed fixture (releases 1 and 2 run build 1).
fn newer_live_fixture() -> Fixture {
    let mut f = deployed_fixture();
    let id = f.store.create_build("hello", 1).unwrap();
    let comps = vec![
        comp("bash", "5.2.15-2+b7", "bash", "bookworm"),
        comp(
            "libssl3",
            "3.0.17-1~deb12u2",
            "openssl",
            "bookworm-security",
        ),
        comp(
            "openssl",
            "3.0.17-1~deb12u2",
            "openssl",
            "bookworm-security",
        ),
    ];
    let digest = format!("sha256:{}", "4".repeat(64));
    f.store
        .finish_build_success(
            id,
            &Success {
                image_digest: &digest,
                image_path: "/state/images/hello/4.oci.tar",
                components: &comps,
            },
        )
        .unwrap();
    let r = f
        .store
        .create_release("hello", id, &digest, 2, "operator", None)
        .unwrap();
    f.store.mark_release_live("hello", r).unwrap();
    reload(&mut f);
    f
}

/// Issue #11: the Stacks list counts what runs. The newest build (#3) was rebuilt with the
/// updates and has none pending; the live release still runs build #1, which has them.
#[test]
fn stacks_count_the_updates_of_the_live_release() {
    let rebuilt = || {
        let mut f = deployed_fixture();
        f.store
            .record_update_check("hello", 3, T0, &[], &[], &[])
            .unwrap();
        reload(&mut f);
        f
    };
    check_with(rebuilt, "stacks_live_updates", "");
}

#[test]
fn confirm_rollback_to_selected() {
    check_deployed("confirm_rollback", "5jR");
}

#[test]
fn updates_with_a_check() {
    check_deployed("updates_checked", "4");
}

#[test]
fn update_detail() {
    check_deployed("update_detail", "4\n");
}

#[test]
fn confirm_rebuild() {
    check_deployed("confirm_rebuild", "r");
}

#[test]
fn no_stacks() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths {
        config: tmp.path().join("config"),
        state: tmp.path().join("state"),
    };
    paths.ensure_state().unwrap();
    let store = Store::open(&paths.database()).unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let mut state = State::new("[STATE]".into(), now, Keymap::default());
    data::reload(&mut state, &paths, &store).unwrap();
    let mut f = Fixture {
        _tmp: tmp,
        store,
        state,
    };
    let text = screen(&mut f, 80, 24);
    let text = text.replace(&f._tmp.path().display().to_string(), "[TMP]");
    insta::assert_snapshot!("no_stacks_80x24", text);
}

/// Both config files broken: both problems in full in a Detail overlay at start (as the
/// app opens it), readable at 80 columns, counted in the header; esc closes, `:problems`
/// opens it again.
#[test]
fn config_problems_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keymap.toml"), "[keys]\nbogus = \"x\"\n").unwrap();
    std::fs::write(dir.path().join("theme.toml"), "accent = \"not-a-colour\"\n").unwrap();
    let (_, _, problems) = drover::tui::load_user_config(dir.path(), ColorDepth::None);
    let problems: Vec<String> = problems
        .iter()
        .map(|p| p.replace(&dir.path().display().to_string(), "[CONFIG]"))
        .collect();
    let with_problems = move || {
        let mut f = fixture();
        f.state.config_problems = problems.clone();
        drover::tui::update::show_config_problems(&mut f.state);
        f
    };
    check_with(&with_problems, "config_problems", "");
    let mut f = with_problems();
    let text = screen(&mut f, 80, 24);
    assert!(
        text.contains("keymap.toml") && text.contains("theme.toml"),
        "{text}"
    );
    assert!(text.contains("2 config problem(s)"), "{text}");
    keys(&mut f.state, "\u{1b}");
    assert!(f.state.overlay.is_none());
    keys(&mut f.state, ":problems\n");
    assert!(screen(&mut f, 80, 24).contains("Config file problems (2)"));
}

/// A screen at 80×24 must hold the panes' key content.
#[test]
fn manifest_row_visible_at_80x24() {
    let mut f = fixture();
    keys(&mut f.state, "3/libssl\n");
    let text = screen(&mut f, 80, 24);
    assert!(text.contains("libssl3"), "{text}");
    assert!(text.contains("3.0.15-1~deb12u1"), "{text}");
    assert!(!text.contains("zlib1g"), "{text}");
}

/// The log is read by window: a long log keeps at most LOG_WINDOW stored lines in memory,
/// scrolling far loads the lines around the view, and search finds lines in the store.
#[test]
fn log_window_and_search_over_the_store() {
    use drover::tui::state::LOG_WINDOW;
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("drover.db")).unwrap();
    let id = store.create_build("hello", 1).unwrap();
    let lines: Vec<LogLine> = (0..20_000)
        .map(|n| LogLine {
            seq: n,
            ts: T0.into(),
            stream: "stdout".into(),
            line: if n == 15_000 {
                "needle here".into()
            } else {
                format!("line {n}")
            },
        })
        .collect();
    store.append_logs(id, &lines).unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let mut state = State::new("[STATE]".into(), now, Keymap::default());
    state.log.build_id = Some(id);
    state.log.total = 20_000;
    state.log.height = 30;
    state.log.follow = false;
    state.log.top = 10_000;
    data::ensure_window(&mut state.log, &store).unwrap();
    assert!(state.log.window.len() <= LOG_WINDOW);
    assert_eq!(state.log.line(10_000), Some(("stdout", "line 10000")));
    assert_eq!(state.log.line(10_029), Some(("stdout", "line 10029")));
    assert_eq!(state.log.line(19_999), None, "far lines are not in memory");
    state.log.top = 19_970;
    data::ensure_window(&mut state.log, &store).unwrap();
    assert_eq!(state.log.line(19_999), Some(("stdout", "line 19999")));
    // Search forward from the top, then backward.
    data::search(&mut state, &store, "needle", 0, true).unwrap();
    assert_eq!(state.log.matched, Some(15_000));
    assert!(state.log.top <= 15_000 && 15_000 < state.log.top + 30);
    data::search(&mut state, &store, "needle", 14_999, false).unwrap();
    assert!(state.log.not_found);
    assert!(state.status.as_deref().unwrap().contains("not found above"));
}

/// Tiny and odd sizes never panic, in every pane and overlay.
#[test]
fn tiny_terminals_do_not_panic() {
    for ks in [
        "", "2", "3", "4", "5", "2F", "?", ":", "b", "J", "3j\n", "/x", "d", "R", "r", "4\n",
    ] {
        for (w, h) in [(1, 1), (10, 3), (30, 8), (79, 23), (300, 100)] {
            let mut f = if ks.len() < 2 {
                deployed_fixture()
            } else {
                fixture()
            };
            keys(&mut f.state, ks);
            let text = screen(&mut f, w, h);
            assert_eq!(text.lines().count(), h as usize, "{ks:?} at {w}x{h}");
        }
    }
}

/// The fixture plus an update check of `checked_build` with expat's 27 CVEs (the issue #3
/// trial), versions of the usual Debian length.
fn expat_fixture_of(checked_build: i64) -> Fixture {
    let mut f = fixture();
    let cves: Vec<String> = (0..27).map(|n| format!("CVE-2025-{}", 5000 + n)).collect();
    let pending = |pkg: &str| {
        pending_update(
            pkg,
            "expat",
            ("2.5.0-1+deb12u1", "2.5.0-1+deb12u2"),
            &cves,
            "medium",
        )
    };
    f.store
        .record_update_check(
            "hello",
            checked_build,
            T0,
            &[pending("libexpat1"), pending("expat")],
            &[],
            &[],
        )
        .unwrap();
    reload(&mut f);
    f
}

fn expat_fixture() -> Fixture {
    expat_fixture_of(3)
}

#[test]
fn long_update_detail_fits_and_scrolls() {
    check_with(expat_fixture, "update_detail_long", "4\n");
    check_with(expat_fixture, "update_detail_long_scrolled", "4\njjj");
    for (w, h) in [(80, 24), (120, 40)] {
        for ks in ["4\n", "4\nG", "4\njjjjj", "4\n\u{1b}"] {
            let mut f = expat_fixture();
            keys(&mut f.state, ks);
            let text = screen(&mut f, w, h);
            let rows: Vec<&str> = text.lines().collect();
            // The footer (last row) still shows keys, the header the clock.
            assert!(
                rows[h as usize - 1].contains("esc") || ks.ends_with('\u{1b}'),
                "{text}"
            );
            assert!(rows[0].contains("2026-01-01 12:00:00"), "{text}");
            if ks.ends_with('\u{1b}') {
                assert!(!text.contains("Update of expat"), "esc closes: {text}");
                continue;
            }
            assert!(text.contains("Update of expat"), "{text}");
            if ks.ends_with('G') {
                assert!(
                    text.contains("CVE-2025-5026"),
                    "G shows the last CVE: {text}"
                );
                assert!(h > 24 || !text.contains("source      expat"), "{text}");
            }
            if h == 24 {
                // 27 CVEs do not fit in 24 rows: a position hint `a-b of n` (the last
                // two rows, a blank and the key that applies it, wrap to three at 80).
                assert!(text.contains(" of 36 "), "{text}");
            }
        }
    }
    // Position after five j at 80x24: rows 6.. shown.
    let mut f = expat_fixture();
    keys(&mut f.state, "4\njjjjj");
    let text = screen(&mut f, 80, 24);
    assert!(text.contains(" 6-25 of 36 "), "{text}");
}

/// Snapshots of a fresh fixture after the keys `ks` at each of `sizes` (the issue #13
/// polish snapshots are at 80×24 and 200×60).
fn check_sizes(fixture: impl Fn() -> Fixture, name: &str, ks: &str, sizes: &[(u16, u16)]) {
    for &(w, h) in sizes {
        let mut f = fixture();
        keys(&mut f.state, ks);
        let text = screen(&mut f, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

/// The fixture plus a check of build #3 with a high-urgency tzdata update whose changelog
/// (parsed by the check's own parser, then cached) names no CVE.
fn tzdata_fixture() -> Fixture {
    let mut f = fixture();
    let (from, to) = ("2024a-0+deb12u1", "2025b-0+deb12u1");
    f.store
        .record_update_check(
            "hello",
            3,
            T0,
            &[pending_update("tzdata", "tzdata", (from, to), &[], "high")],
            &[],
            &[],
        )
        .unwrap();
    let changelog = "\
tzdata (2025b-0+deb12u1) bookworm-security; urgency=high

  * New upstream release, affecting the following future timestamps:
    - Paraguay adopts permanent -03 starting spring 2024.
    - Improve historical data for Mexico, Mongolia, and Portugal.

 -- Maint <m@example.org>  Mon, 01 Sep 2025 10:00:00 +0000

tzdata (2024a-0+deb12u1) bookworm; urgency=medium

  * New upstream release.

 -- Maint <m@example.org>  Mon, 01 Jan 2024 10:00:00 +0000
";
    let entries = drover::debian::changelog::parse(changelog);
    f.store.put_changelog("tzdata", to, &entries).unwrap();
    reload(&mut f);
    f
}

/// Issue #13 polish: the detail of a high-urgency update that names no CVE shows the
/// changelog entry's text (what the update fixes), the tracker links and the key.
#[test]
fn update_detail_of_a_high_urgency_entry_without_cves_shows_its_text() {
    check_sizes(
        tzdata_fixture,
        "update_detail_high_no_cve",
        "4\n",
        &[(80, 24), (200, 60)],
    );
    let mut f = tzdata_fixture();
    keys(&mut f.state, "4\n");
    let text = screen(&mut f, 200, 60);
    assert!(text.contains("Paraguay adopts permanent -03"), "{text}");
    assert!(
        text.contains("no CVE named in the changelog entry"),
        "{text}"
    );
}

/// Issue #13 polish: a footer message longer than the terminal is wide wraps (the footer
/// grows, the panes give way); one longer than a third of the screen ends with where the
/// whole text is (`:message`).
#[test]
fn long_footer_messages_wrap_and_point_to_the_whole_text() {
    const LONG: &str = "deploy of hello failed: release #3 never became healthy within 30 s: \
         the last health check GET /up answered 500 Internal Server Error with the body \
         `database connection refused (postgres at 10.0.0.5:5432)`; instance hello-r3-1 \
         printed 14 lines (J, enter: details)";
    let with = |msg: String| {
        move || {
            let mut f = fixture();
            f.state.status = Some(msg.clone());
            f
        }
    };
    let sizes = [(80, 24), (200, 60)];
    check_sizes(with(LONG.into()), "footer_message_wrapped", "", &sizes);
    check_sizes(
        with(format!("{LONG} ").repeat(40)),
        "footer_message_cut",
        "",
        &sizes,
    );
    for (w, h) in sizes {
        let mut f = with(LONG.into())();
        let text = screen(&mut f, w, h);
        assert!(text.contains("(J, enter: details)"), "{text}");
        let mut f = with(format!("{LONG} ").repeat(40))();
        let text = screen(&mut f, w, h);
        let last = text.lines().last().unwrap();
        assert!(last.contains("… :message shows it all"), "{text}");
    }
}

/// Issue #13 polish: build #3's recorded lock moved two packages from build #1's (an
/// `--apply-updates` build): the Builds pane marks it `applied 2`.
#[test]
fn builds_mark_the_build_that_applied_updates() {
    use drover::lock::{Lock, LockedPackage, LockedRepo};
    let lock = |libc: &str, tz: &str| {
        let pkg = |name: &str, version: &str| LockedPackage {
            name: name.into(),
            arch: "amd64".into(),
            version: version.into(),
            source: name.into(),
            source_version: version.into(),
            mirror: "http://deb.debian.org/debian".into(),
            suite: "bookworm".into(),
            sha256: "0".repeat(64),
            size: 1000,
        };
        Lock {
            version: drover::lock::LOCK_VERSION,
            stack: "hello".into(),
            arch: "amd64".into(),
            variant: "apt".into(),
            inputs: "ab".repeat(32),
            include: vec![],
            repositories: vec![LockedRepo {
                mirror: "http://deb.debian.org/debian".into(),
                suite: "bookworm".into(),
                components: vec!["main".into()],
                date: String::new(),
            }],
            packages: vec![pkg("libc6", libc), pkg("tzdata", tz)],
        }
        .to_toml()
    };
    let applied = || {
        let mut f = fixture();
        f.store
            .set_build_lock(1, &lock("2.36-9+deb12u9", "2024a-0+deb12u1"))
            .unwrap();
        f.store
            .set_build_lock(3, &lock("2.36-9+deb12u10", "2025b-0+deb12u1"))
            .unwrap();
        reload(&mut f);
        f
    };
    check_sizes(
        applied,
        "builds_applied_updates",
        "l",
        &[(80, 24), (200, 60)],
    );
    let mut f = applied();
    keys(&mut f.state, "l");
    let text = screen(&mut f, 200, 60);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.contains(&format!("│{id} ")))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string()
    };
    assert!(row("#3").contains("applied 2 · 333333333333"), "{text}");
    assert!(!row("#1").contains("applied"), "{text}");
}

/// Issue #13 polish: the palette completes a command's arguments from what the console
/// holds: release numbers for `rollback STACK`, build ids for `deploy STACK`.
#[test]
fn palette_completes_releases_and_builds() {
    let sizes = [(80, 24), (200, 60)];
    check_sizes(
        deployed_fixture,
        "palette_rollback_releases",
        ":rollback hello r",
        &sizes,
    );
    check_sizes(
        deployed_fixture,
        "palette_deploy_builds",
        ":deploy hello ",
        &sizes,
    );
}

/// The Stacks list and the Builds pane count AGE from the same moment: the build's start.
#[test]
fn stacks_and_builds_age_both_count_from_the_start() {
    let mut f = fixture();
    keys(&mut f.state, "1");
    for b in f.state.builds.iter_mut().chain(
        f.state
            .stacks
            .iter_mut()
            .filter_map(|s| s.last_build.as_mut()),
    ) {
        // Started two days ago, finished a minute ago.
        b.started_at = "2025-12-30T12:00:00Z".into();
        b.finished_at = Some("2026-01-01T11:59:00Z".into());
    }
    let theme = Theme::new(ColorDepth::None);
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    term.draw(|fr| {
        viewport::fit(&mut f.state, fr.area());
        render::draw(fr, &f.state, &theme)
    })
    .unwrap();
    let text = term.backend().to_string();
    let stack_row = text.lines().find(|l| l.contains("│hello ")).unwrap();
    assert!(stack_row.contains(" 2d "), "{text}");
    let build_row = text.lines().find(|l| l.contains("#3 ")).unwrap();
    assert!(build_row.contains(" 2d "), "{text}");
}

/// At 80 columns the candidate version is never cut, whichever side has the focus.
#[test]
fn update_candidates_are_whole_at_80_columns() {
    check_with(expat_fixture, "updates_long_versions", "4");
    for ks in ["4", "4h"] {
        let mut f = expat_fixture();
        keys(&mut f.state, ks);
        let text = screen(&mut f, 80, 24);
        let row = text.lines().find(|l| l.contains("expat")).unwrap();
        assert!(row.contains(" -> 2.5.0-1+deb12u2 "), "{ks:?}: {text}");
        assert!(row.contains(" 27 "), "{ks:?}: {text}");
    }
}

/// The Stacks list shows the pending updates (count, highest urgency) and the live release
/// at 80x24 (stacks focused), 120x40 and 200x60.
#[test]
fn stacks_show_updates_and_live_release_from_80_columns() {
    for (w, h) in [(80, 24), (120, 40), (200, 60)] {
        let mut f = deployed_fixture();
        let text = screen(&mut f, w, h);
        let header = text.lines().nth(2).unwrap();
        assert!(
            header.contains("UPDATES") && header.contains("LIVE"),
            "{w}x{h}: {text}"
        );
        let row = text.lines().find(|l| l.contains("│hello ")).unwrap();
        assert!(row.contains(" 1 high "), "{w}x{h}: {text}");
        assert!(row.contains(" #2 "), "{w}x{h}: {text}");
        if w > 80 {
            assert!(header.contains("AGE") && header.contains("IMAGE"), "{text}");
        }
    }
    insta::assert_snapshot!(
        "stacks_deployed_80x24",
        screen(&mut deployed_fixture(), 80, 24)
    );
}

/// After a rebuild the newest check is of an older build: the Updates pane says so, and
/// `r` does not offer to apply that check's rows.
#[test]
fn updates_of_an_older_build_say_so() {
    let stale = || expat_fixture_of(1);
    check_with(stale, "updates_stale", "4");
    let mut f = stale();
    keys(&mut f.state, "4");
    let text = screen(&mut f, 80, 24);
    assert!(
        text.contains("checked build #1; build #3 is not checked yet: press u"),
        "{text}"
    );
    keys(&mut f.state, "r");
    assert!(f.state.overlay.is_none(), "no rebuild question");
    assert!(
        f.state
            .status
            .as_deref()
            .unwrap()
            .contains("build #3 is not checked yet"),
        "{:?}",
        f.state.status
    );
    // With the stacks focused (narrower pane) the note wraps instead of being cut.
    keys(&mut f.state, "h");
    let text = screen(&mut f, 80, 24);
    assert!(text.contains("press u"), "{text}");
    // The Stacks list does not count the old check's updates for the new build.
    let row = text.lines().find(|l| l.contains("│hello ")).unwrap();
    assert!(row.contains("succeeded ? "), "{text}");
    // A check of the newest build: no note, the count shows.
    let mut f = expat_fixture_of(3);
    keys(&mut f.state, "4h");
    let text = screen(&mut f, 80, 24);
    assert!(!text.contains("not checked yet"), "{text}");
    let row = text.lines().find(|l| l.contains("│hello ")).unwrap();
    assert!(row.contains("succeeded 1 med "), "{text}");
}

/// The deployed fixture with a runtime log: release 1 and 2 instances, their access-log
/// lines (health probes of `/up` among them) and a long line (issue #13).
fn logs_fixture() -> Fixture {
    use drover::store::runtime_logs::{is_health_line, RuntimeLine};
    let mut f = deployed_fixture();
    let mut lines = Vec::new();
    for n in 0..40 {
        let (release, instance) = if n < 20 {
            (1, "hello-r1-1")
        } else {
            (2, "hello-r2-1")
        };
        let line = match n % 4 {
            0 => r#"127.0.0.1 - - "GET /up HTTP/1.1" 200 -"#.to_string(),
            1 => format!(r#"127.0.0.1 - - "GET /items/{n} HTTP/1.1" 200 -"#),
            2 => format!("worker {n}: handled a request and then wrote a long line that goes on past the edge of an 80-column terminal"),
            _ => format!(r#"127.0.0.1 - - "POST /orders HTTP/1.1" 201 - ({n})"#),
        };
        lines.push(RuntimeLine {
            id: 0,
            stack: "hello".into(),
            release,
            instance: instance.into(),
            stream: if n % 4 == 2 { "stdout" } else { "stderr" }.into(),
            ts: format!("2026-01-01T10:{:02}:00.000Z", n),
            health: is_health_line(&line, "/up"),
            line,
        });
    }
    f.store.append_runtime_logs(&lines).unwrap();
    f
}

/// Snapshots of the Logs pane at 80×24 and 200×60 after the keys `ks`.
fn check_logs(name: &str, ks: &str) {
    for (w, h) in [(80, 24), (200, 60)] {
        let mut f = logs_fixture();
        keys(&mut f.state, ks);
        let text = screen(&mut f, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

#[test]
fn runtime_logs_pane() {
    check_logs("logs_runtime", "6");
}

#[test]
fn runtime_logs_health_hidden_release_1_wrapped() {
    check_logs("logs_runtime_filtered", "6Hvvw");
}

#[test]
fn runtime_logs_from_a_release() {
    // Releases, the older release (second row), L: its lines only (enter is its detail).
    let mut f = logs_fixture();
    keys(&mut f.state, "5jL");
    let text = screen(&mut f, 200, 60);
    assert!(text.contains("Logs hello"), "{text}");
    assert!(text.contains("[r1 follow]"), "{text}");
    assert!(
        text.contains("hello-r1-1") && !text.contains("hello-r2-"),
        "{text}"
    );
}

#[test]
fn runtime_logs_of_one_instance() {
    // i: the agent's instances of the stack in turn (hello-r2-1, hello-r2-2), then all.
    let mut f = logs_fixture();
    keys(&mut f.state, "6i");
    let text = screen(&mut f, 200, 60);
    assert!(text.contains("[hello-r2-1 follow]"), "{text}");
    assert!(!text.contains("hello-r1-1"), "{text}");
    let mut f = logs_fixture();
    keys(&mut f.state, "6ii");
    let text = screen(&mut f, 200, 60);
    assert!(text.contains("(no runtime log lines"), "{text}");
    let mut f = logs_fixture();
    keys(&mut f.state, "6iii");
    let text = screen(&mut f, 200, 60);
    assert!(text.contains("1-40 of 40"), "{text}");
}

/// A million-line runtime log: the view holds its ids, not its lines, and a window far
/// down is one keyset read.
#[test]
fn runtime_log_window_far_down_a_long_log() {
    use drover::store::runtime_logs::RuntimeLine;
    let mut f = logs_fixture();
    let lines: Vec<RuntimeLine> = (0..50_000)
        .map(|n| RuntimeLine {
            id: 0,
            stack: "hello".into(),
            release: 2,
            instance: "hello-r2-3".into(),
            stream: "stderr".into(),
            ts: T0.into(),
            health: false,
            line: format!("line {n}"),
        })
        .collect();
    f.store.append_runtime_logs(&lines).unwrap();
    keys(&mut f.state, "6");
    let _ = screen(&mut f, 80, 24);
    let l = &mut f.state.log;
    assert_eq!(l.total, 50_040);
    assert!(l.window.len() <= drover::tui::state::LOG_WINDOW);
    l.follow = false;
    l.top = 30_040;
    data::ensure_window(&mut f.state.log, &f.store).unwrap();
    let (_, text) = f.state.log.line(30_040).unwrap();
    assert!(text.ends_with("hello-r2-3 line 30000"), "{text}");
    assert!(
        f.state.log.line(10).is_none(),
        "far lines are not in memory"
    );
    // Search finds a line by its row.
    data::search(&mut f.state, &f.store, "line 45000", 30_040, true).unwrap();
    assert_eq!(f.state.log.matched, Some(45_040));
}

/// Lines stored while the Logs pane is open are appended at the next sync (following the
/// end); with health lines hidden, only the others.
#[test]
fn runtime_logs_pick_up_new_lines() {
    use drover::store::runtime_logs::RuntimeLine;
    let mut f = logs_fixture();
    keys(&mut f.state, "6H");
    let _ = screen(&mut f, 80, 24);
    assert_eq!(f.state.log.total, 30);
    let mk = |health: bool, line: &str| RuntimeLine {
        id: 0,
        stack: "hello".into(),
        release: 2,
        instance: "hello-r2-1".into(),
        stream: "stderr".into(),
        ts: T0.into(),
        health,
        line: line.into(),
    };
    f.store
        .append_runtime_logs(&[
            mk(true, "\"GET /up HTTP/1.1\" 200"),
            mk(false, "fresh line"),
        ])
        .unwrap();
    let text = screen(&mut f, 80, 24);
    assert_eq!(f.state.log.total, 31);
    assert!(text.contains("fresh line"), "{text}");
    f.store
        .append_runtime_logs(&[mk(true, "\"GET /up HTTP/1.1\" 200")])
        .unwrap();
    let _ = screen(&mut f, 80, 24);
    assert_eq!(f.state.log.total, 31);
}
