//! The post-check path end to end (`updates::run_check`, the function the CLI, the agent
//! and the console share): a tracked repository served on 127.0.0.1 by this test, a
//! Security Tracker feed file, a notify command writing its stdin to a file and a webhook
//! served here; a second check does not notify again, a failed webhook is retried, a broken
//! feed keeps the repository results.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drover::config::Config;
use drover::jobs::CancelToken;
use drover::manifest::Component;
use drover::paths::Paths;
use drover::store::builds::Success;
use drover::store::Store;
use drover::updates::{run_check, CheckOptions};
use sha2::{Digest, Sha256};

/// Static files under `www` for GET; POST bodies recorded, answered with the queued
/// statuses (200 once the queue is empty).
struct Http {
    url: String,
    posts: Arc<Mutex<Vec<String>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

fn serve(www: PathBuf) -> Http {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}",
        server.server_addr().to_ip().unwrap().port()
    );
    let posts = Arc::new(Mutex::new(Vec::new()));
    let statuses: Arc<Mutex<Vec<u16>>> = Arc::new(Mutex::new(Vec::new()));
    let (p, st) = (posts.clone(), statuses.clone());
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            if *req.method() == tiny_http::Method::Post {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                p.lock().unwrap().push(body);
                let code = st.lock().unwrap().pop().unwrap_or(200);
                let _ = req.respond(tiny_http::Response::empty(code));
                continue;
            }
            let path = www.join(req.url().trim_start_matches('/'));
            let _ = match std::fs::read(&path) {
                Ok(d) => req.respond(tiny_http::Response::from_data(d)),
                Err(_) => req.respond(tiny_http::Response::empty(404)),
            };
        }
    });
    Http {
        url,
        posts,
        statuses,
    }
}

/// An unsigned (so `trusted = true`) `bookworm-security` suite offering foo 1.0-3.
fn publish_repo(www: &Path) {
    let packages = "Package: foo\nVersion: 1.0-3\nArchitecture: amd64\n\
                    Filename: pool/foo_1.0-3_amd64.deb\nSize: 10\nSHA256: 00\n\n\
                    Package: qux\nVersion: 2.0-1\nArchitecture: amd64\n\
                    Filename: pool/qux_2.0-1_amd64.deb\nSize: 10\nSHA256: 00\n\n";
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut xz, packages.as_bytes()).unwrap();
    let data = xz.finish().unwrap();
    let dists = www.join("debian/dists/bookworm-security");
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    std::fs::write(dists.join("main/binary-amd64/Packages.xz"), &data).unwrap();
    let until = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%a, %d %b %Y %H:%M:%S UTC")
        .to_string();
    let release = format!(
        "Origin: Debian\nLabel: Debian-Security\nSuite: stable-security\n\
         Codename: bookworm-security\nDate: Sat, 09 Nov 2024 10:12:34 UTC\n\
         Valid-Until: {until}\nArchitectures: amd64\nComponents: main\nSHA256:\n {} {} \
         main/binary-amd64/Packages.xz\n",
        hex::encode(Sha256::digest(&data)),
        data.len()
    );
    std::fs::write(dists.join("InRelease"), release).unwrap();
}

struct Setup {
    _tmp: tempfile::TempDir,
    paths: Paths,
    http: Http,
    out: PathBuf,
}

fn setup(tracker: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    publish_repo(&www);
    let http = serve(www);
    let mirror = format!("{}/debian", http.url);
    let config = tmp.path().join("config");
    std::fs::create_dir_all(config.join("stacks")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/feeds")
            .join(tracker),
        config.join("tracker.json"),
    )
    .unwrap();
    let out = tmp.path().join("notified.jsonl");
    std::fs::write(
        config.join("drover.toml"),
        format!(
            "[feeds]\nsecurity_tracker = \"tracker.json\"\n[notify]\n\
             command = [\"sh\", \"-c\", \"cat >> {0}; echo >> {0}\"]\n\
             webhook = \"{1}/hook\"\n",
            out.display(),
            http.url
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("stacks/demo.toml"),
        format!(
            "name = \"demo\"\n[base]\ndistro = \"debian\"\nsuite = \"bookworm\"\n\
             mirror = \"{mirror}\"\n[track]\n\
             apt = [{{ mirror = \"{mirror}\", suite = \"bookworm-security\", trusted = true }}]\n"
        ),
    )
    .unwrap();
    let paths = Paths::resolve(Some(config), Some(tmp.path().join("state"))).unwrap();
    paths.ensure_state().unwrap();
    let mut store = Store::open(&paths.database()).unwrap();
    let id = store.create_build("demo", std::process::id()).unwrap();
    let comp = |name: &str, version: &str| Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: name.into(),
        source_version: version.into(),
        suite: "bookworm".into(),
        origin: mirror.clone(),
        installed_size_kib: None,
    };
    store
        .finish_build_success(
            id,
            &Success {
                image_digest: "sha256:00",
                image_path: "/nonexistent.oci.tar",
                components: &[
                    comp("foo", "1.0-1"),
                    comp("qux", "2.0-1"),
                    // From a vendor's repository: Debian's feeds say nothing about it (the
                    // tracker has an open CVE for a Debian source of this name).
                    Component {
                        origin: "http://vendor.example/apt".into(),
                        ..comp("notinstalled", "0.1")
                    },
                ],
            },
        )
        .unwrap();
    Setup {
        _tmp: tmp,
        paths,
        http,
        out,
    }
}

/// [`setup`] with `check_interval = "1h"`.
fn setup_hourly() -> Setup {
    let s = setup("tracker.json");
    let file = s.paths.config_file();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("[updates]\ncheck_interval = \"1h\"\n{text}")).unwrap();
    s
}

fn check(s: &Setup) -> drover::updates::RunReport {
    check_with(s, &CancelToken::new())
}

fn check_with(s: &Setup, cancel: &CancelToken) -> drover::updates::RunReport {
    let config: Config = drover::config::load_text(&s.paths.config_file()).unwrap();
    let stack = drover::stack::load_named(&s.paths.config, "demo").unwrap();
    let store = Store::open(&s.paths.database()).unwrap();
    // Changelogs are not read (the fixture has no .debs): the feed and the suite make it a
    // security update.
    let opts = CheckOptions {
        refresh: true,
        cves: false,
    };
    run_check(&s.paths, &store, &config, &stack, opts, cancel).unwrap()
}

fn notified_lines(s: &Setup) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&s.out)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn new_security_updates_are_notified_once_with_feed_cves() {
    let s = setup("tracker.json");
    // The webhook fails the first time: reported, retried at the next check.
    s.http.statuses.lock().unwrap().push(500);
    let r = check(&s);
    let foo = &r.check.updates[0];
    assert_eq!(
        (foo.package.as_str(), foo.candidate.as_str()),
        ("foo", "1.0-3")
    );
    let feed: Vec<&str> = foo.feed_cves.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(feed, vec!["CVE-2026-0001", "CVE-2026-0100"]);
    let open: Vec<&str> = r.check.open_cves.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        open,
        vec![
            "CVE-2026-0101",
            "CVE-2026-0103",
            "CVE-2026-0200",
            "TEMP-0000001-ABCDEF"
        ]
    );
    assert!(r.check.feed_errors.is_empty(), "{:?}", r.check.feed_errors);
    assert!(r.rebuild.is_none(), "auto_rebuild defaults to off");

    // The command got the JSON once; the webhook failed and says so.
    let lines = notified_lines(&s);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["stack"], "demo");
    assert_eq!(lines[0]["updates"][0]["source"], "foo");
    assert_eq!(lines[0]["updates"][0]["source_candidate"], "1.0-3");
    assert_eq!(
        lines[0]["updates"][0]["feed_cves"],
        serde_json::json!(["CVE-2026-0001", "CVE-2026-0100"])
    );
    assert_eq!(r.notify.sent.len(), 1, "{:?}", r.notify);
    assert!(
        r.notify.errors.len() == 1
            && r.notify.errors[0].contains("webhook")
            && r.notify.errors[0].contains("500"),
        "{:?}",
        r.notify.errors
    );
    assert_eq!(s.http.posts.lock().unwrap().len(), 1);

    // Second check: the command is not run again; the webhook is retried and succeeds.
    let r2 = check(&s);
    assert_eq!(notified_lines(&s).len(), 1);
    assert!(r2.notify.errors.is_empty(), "{:?}", r2.notify.errors);
    assert_eq!(r2.notify.sent.len(), 1);
    let posts = s.http.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&posts[1]).unwrap();
    assert_eq!(body["updates"][0]["packages"], serde_json::json!(["foo"]));

    // Third check: nothing new anywhere.
    let r3 = check(&s);
    assert!(r3.notify.sent.is_empty() && r3.notify.errors.is_empty());
    assert_eq!(s.http.posts.lock().unwrap().len(), 2);

    // The stored check carries the feed results.
    let store = Store::open(&s.paths.database()).unwrap();
    let (_, stored, open) = store.latest_update_check_full("demo").unwrap().unwrap();
    assert_eq!(stored[0].feed_cves, r3.check.updates[0].feed_cves);
    assert_eq!(open, r3.check.open_cves);
}

#[test]
fn a_broken_feed_keeps_the_repository_results() {
    let s = setup("tracker-broken.json");
    let r = check(&s);
    assert_eq!(r.check.updates.len(), 1);
    assert_eq!(r.check.updates[0].package, "foo");
    assert!(r.check.updates[0].feed_cves.is_empty());
    assert_eq!(r.check.feed_errors.len(), 1);
    assert!(
        r.check.feed_errors[0].contains("tracker.json:5:"),
        "{:?}",
        r.check.feed_errors
    );
    // Still a security update (from the security suite): notified.
    assert_eq!(notified_lines(&s).len(), 1);
}

#[test]
fn the_scheduler_runs_due_checks_once_per_interval() {
    let s = setup_hourly();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    type Batch = Result<Vec<String>, String>;
    let batches: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let b = batches.clone();
    rt.block_on(async {
        let task = tokio::spawn(drover::updates::schedule::scheduler(
            s.paths.clone(),
            std::time::Duration::from_millis(100),
            CancelToken::new(),
            move |r| b.lock().unwrap().push(r),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        task.abort();
    });
    // The first tick checks the never-checked stack; later ticks find it not due.
    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "{batches:?}");
    let lines = batches[0].as_ref().unwrap();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(
            "demo: build #1, 1 pending update(s) from 1 source package(s), 1 security, 4 open CVEs"
        ) && lines[0].contains("notified command: 1 new security update (foo)"),
        "{}",
        lines[0]
    );
    assert_eq!(notified_lines(&s).len(), 1);
    // Due again once the interval has passed since the stored check.
    let store = Store::open(&s.paths.database()).unwrap();
    let at = store.last_update_check_at("demo").unwrap().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(&at)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let later = drover::updates::schedule::run_due(
        &s.paths,
        at + chrono::Duration::minutes(61),
        &CancelToken::new(),
    );
    assert_eq!(later.unwrap().len(), 1);
    let soon =
        drover::updates::schedule::run_due(&s.paths, chrono::Utc::now(), &CancelToken::new());
    assert!(soon.unwrap().is_empty());
}

#[test]
fn auto_rebuild_starts_one_build_per_new_update_and_audits_it() {
    let s = setup("tracker.json");
    let file = s.paths.stacks_dir().join("demo.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}auto_rebuild = \"security\"\n")).unwrap();
    // Cancelled (the console quitting, Ctrl-C): no rebuild starts, and none is remembered.
    let cancelled = CancelToken::new();
    cancelled.cancel();
    assert!(check_with(&s, &cancelled).rebuild.is_none());
    let r = check(&s);
    // The real build path runs (`build --apply-updates`); this fixture mirror has no
    // installable base, so the build fails, which is recorded and not retried.
    let b = r
        .rebuild
        .expect("a rebuild for the new security update of foo");
    assert_eq!(b.updates, vec![("foo".to_string(), "1.0-3".to_string())]);
    let id = b.build_id.expect("the build got an id");
    let store = Store::open(&s.paths.database()).unwrap();
    let build = store.build(id).unwrap().unwrap();
    assert_eq!(build.stack, "demo");
    assert_ne!(build.status, drover::store::builds::BuildStatus::Running);
    let audit = store.audit_log(10).unwrap();
    let rec = audit
        .iter()
        .find(|a| a.action == "auto-rebuild")
        .expect("audited");
    assert_eq!(rec.stack.as_deref(), Some("demo"));
    assert!(
        rec.detail.contains("auto_rebuild = security for foo 1.0-3")
            && rec.detail.contains(&format!("build {id}")),
        "{}",
        rec.detail
    );
    // The same candidate does not start another build.
    assert!(check(&s).rebuild.is_none());
    assert_eq!(
        store
            .audit_log(10)
            .unwrap()
            .iter()
            .filter(|a| a.action == "auto-rebuild")
            .count(),
        1
    );
}

fn cli(s: &Setup, args: &[&str]) -> std::process::Output {
    drover_at(&s.paths, args).output().unwrap()
}

fn drover_at(paths: &Paths, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_drover"));
    c.arg("--config")
        .arg(&paths.config)
        .arg("--state")
        .arg(&paths.state)
        .args(args);
    c
}

#[test]
fn cli_updates_shows_feed_and_open_cves() {
    let s = setup("tracker.json");
    let out = cli(&s, &["updates", "demo", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The webhook answers 200: no error, exit 0; the notification is said on stderr.
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("notified: demo: command: 1 new security update (foo)"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let foo = &v[0];
    assert_eq!(foo["against"], "build 1", "{foo}");
    // The original contract stays; the feed fields are added.
    for key in [
        "package",
        "candidate",
        "source_candidate",
        "cves",
        "urgency",
        "checked_at",
    ] {
        assert!(foo.get(key).is_some(), "missing {key}: {foo}");
    }
    assert_eq!(foo["feed_cves"][1]["id"], "CVE-2026-0100");
    assert_eq!(foo["feed_cves"][1]["urgency"], "medium");
    assert_eq!(foo["open_cves"][1]["id"], "CVE-2026-0103");
    assert_eq!(foo["open_cves"][1]["status"], "no fix planned");
    assert_eq!(foo["open_cves"][1]["note"], "Minor issue");

    let out = cli(&s, &["updates", "demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("+CVE-2026-0001 +CVE-2026-0100"), "{text}");
    assert!(
        text.contains("demo: 4 open CVEs with no fix in the tracked suites"),
        "{text}"
    );
    assert!(
        text.contains("fix not in tracked suites (fixed in 1.0-9)"),
        "{text}"
    );

    // A broken feed: the results are printed, the error names the file and position, exit 1.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds/tracker-broken.json"),
        s.paths.config.join("tracker.json"),
    )
    .unwrap();
    let out = cli(&s, &["updates", "demo", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tracker.json:5:") && stderr.contains("unknown variant"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["package"], "foo");
    // Nothing new to announce: no second notification.
    assert!(!stderr.contains("notified"), "{stderr}");
}

#[test]
fn the_agent_runs_due_checks_in_the_background() {
    let s = setup_hourly();
    let log = s.paths.state.join("agent-test.log");
    let mut agent = drover_at(&s.paths, &["agent"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // The notification is sent during the check, the log line after it: wait for both
    // (stopping the agent between the two lost the line, now and then).
    let logged = || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("drover agent: scheduled check:"))
    };
    while (notified_lines(&s).is_empty() || !logged()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // `agent stop` waits until the pid is gone: reap our child meanwhile (no zombie).
    let paths = s.paths.clone();
    let stopper =
        std::thread::spawn(move || drover_at(&paths, &["agent", "stop"]).output().unwrap());
    let status = agent.wait().unwrap();
    let stop = stopper.join().unwrap();
    assert!(
        stop.status.success() && status.success(),
        "{stop:?} {status:?}"
    );
    let lines = notified_lines(&s);
    assert_eq!(lines.len(), 1, "the agent did not notify in time");
    assert_eq!(lines[0]["updates"][0]["source"], "foo");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("drover agent: scheduled check: demo: build #1, 1 pending update(s)"),
        "{text}"
    );
    let store = Store::open(&s.paths.database()).unwrap();
    assert!(store.last_update_check_at("demo").unwrap().is_some());
}

#[test]
fn a_feed_given_by_url_is_fetched() {
    let s = setup("tracker.json");
    std::fs::copy(
        s.paths.config.join("tracker.json"),
        s._tmp.path().join("www/tracker.json"),
    )
    .unwrap();
    std::fs::remove_file(s.paths.config.join("tracker.json")).unwrap();
    let file = s.paths.config_file();
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "security_tracker = \"tracker.json\"",
        &format!("security_tracker = \"{}/tracker.json\"", s.http.url),
    );
    std::fs::write(&file, text).unwrap();
    let r = check(&s);
    assert!(r.check.feed_errors.is_empty(), "{:?}", r.check.feed_errors);
    assert_eq!(r.check.updates[0].feed_cves.len(), 2);
    assert_eq!(r.check.open_cves.len(), 4);
    // A URL that answers 404: a clear error naming it, the repository results stay.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("/tracker.json", "/missing.json");
    std::fs::write(&file, text).unwrap();
    let r = check(&s);
    assert_eq!(r.check.updates.len(), 1);
    assert!(
        r.check.feed_errors.len() == 1
            && r.check.feed_errors[0].contains("/missing.json: HTTP 404"),
        "{:?}",
        r.check.feed_errors
    );
}

#[test]
fn a_notify_command_closing_its_stdin_does_not_kill_the_cli() {
    let s = setup("tracker.json");
    let file = s.paths.config_file();
    let text = std::fs::read_to_string(&file).unwrap();
    let start = text.find("command = ").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let marker = s.paths.state.join("ran");
    let text = format!(
        "{}command = [\"sh\", \"-c\", \"exec 0<&-; sleep 0.3; touch {}\"]{}",
        &text[..start],
        marker.display(),
        &text[end..]
    );
    std::fs::write(&file, text).unwrap();
    // The one-shot CLI dies on SIGPIPE by default; writing to this command's closed stdin
    // must only fail that write.
    let out = cli(&s, &["updates", "demo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(marker.exists());
    assert!(stderr.contains("notified: demo: command"), "{stderr}");
}

/// Issue #11: pending updates are also computed against what is live. The newest build
/// already has foo's fix; the live release still runs build 1, which does not: the check
/// reports and stores both, the newest build's check staying the stack's newest.
#[test]
fn a_check_also_counts_the_updates_of_the_live_release() {
    let s = setup("tracker.json");
    let mut store = Store::open(&s.paths.database()).unwrap();
    let old = store.latest_succeeded("demo").unwrap().unwrap();
    let mut fixed = store.manifest(old.id).unwrap();
    for c in &mut fixed {
        c.version = "99.0-1".into();
        c.source_version = "99.0-1".into();
    }
    let newest = store.create_build("demo", std::process::id()).unwrap();
    store
        .finish_build_success(
            newest,
            &Success {
                image_digest: "sha256:01",
                image_path: "/nonexistent.oci.tar",
                components: &fixed,
            },
        )
        .unwrap();
    let r = store
        .create_release("demo", old.id, "sha256:00", 1, "op", None)
        .unwrap();
    store.mark_release_live("demo", r).unwrap();
    drop(store);
    let run = check(&s);
    assert_eq!(run.check.build_id, newest);
    assert!(run.check.updates.is_empty(), "{:?}", run.check.updates);
    let live = run
        .check
        .live
        .as_ref()
        .expect("the live release is checked too");
    assert_eq!((live.release, live.build_id), (r, old.id));
    assert!(live.updates.iter().any(|u| u.package == "foo"), "{live:?}");
    let store = Store::open(&s.paths.database()).unwrap();
    assert_eq!(store.latest_checked_build("demo").unwrap(), Some(newest));
    let (_, stored) = store
        .update_check_of_build("demo", old.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.len(), live.updates.len());
    let out = cli(&s, &["updates", "demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("demo: live release #{r} runs build #{}:", old.id)),
        "{text}"
    );
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_slice(&cli(&s, args).stdout).unwrap()
    };
    let newest_rows = json(&["updates", "demo", "--json"]);
    assert!(newest_rows.as_array().unwrap().is_empty(), "{newest_rows}");
    let live_rows = json(&["updates", "demo", "--json", "--live"]);
    let foo = live_rows
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["package"] == "foo")
        .unwrap_or_else(|| panic!("{live_rows}"));
    assert_eq!(foo["against"], "live");
}

/// Issue #13 polish: in a narrow terminal (`COLUMNS` < 100) `drover updates` prints one row
/// per source package, as the console's Updates pane does; a wide one and a pipe keep the
/// table of binary packages, and `--json` does not change.
#[test]
fn cli_updates_groups_by_source_in_a_narrow_terminal() {
    let s = setup("tracker.json");
    let run = |columns: Option<&str>, args: &[&str]| {
        let mut c = drover_at(&s.paths, args);
        match columns {
            Some(n) => c.env("COLUMNS", n),
            None => c.env_remove("COLUMNS"),
        };
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let narrow = run(Some("80"), &["updates", "demo"]);
    assert!(
        narrow.contains("SOURCE  VERSION         URGENCY  CVES  PACKAGES"),
        "{narrow}"
    );
    assert!(
        narrow.contains("foo     1.0-1 -> 1.0-3  high     2     foo\n"),
        "{narrow}"
    );
    assert!(
        narrow.contains("1 binary package(s) from 1 source package(s); --json or COLUMNS>=100"),
        "{narrow}"
    );
    assert!(!narrow.contains("ADVISORIES"), "{narrow}");
    // The grouped table (header to its closing line) fits the 80 columns.
    let table: Vec<&str> = narrow
        .lines()
        .skip_while(|l| !l.starts_with("SOURCE  VERSION"))
        .take_while(|l| !l.starts_with("demo: "))
        .collect();
    assert_eq!(table.len(), 3, "{narrow}");
    for l in table {
        assert!(l.chars().count() <= 80, "{l}");
    }
    for wide in [
        run(Some("120"), &["updates", "demo"]),
        run(None, &["updates", "demo"]),
    ] {
        assert!(wide.contains("PACKAGE  ARCH"), "{wide}");
        assert!(wide.contains("ADVISORIES"), "{wide}");
        assert!(!wide.contains("binary package(s) from"), "{wide}");
    }
    let json = |columns| {
        let mut v: serde_json::Value =
            serde_json::from_str(&run(Some(columns), &["updates", "demo", "--json"])).unwrap();
        for row in v.as_array_mut().unwrap() {
            row.as_object_mut().unwrap().remove("checked_at");
        }
        v
    };
    assert_eq!(json("80"), json("200"), "--json is the same at any width");
}
