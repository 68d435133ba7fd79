//! End-to-end: the console in a real terminal (tmux). Builds the demo stack once with the
//! real pipeline (cold build: 30-70 s from the live Debian mirror), then drives `drover`
//! through keys: Manifest filter, a build streaming live while `j`/`k` move the selection,
//! a resize mid-build, cancelling a build with `J`/`x`, quitting cleanly; deploying the
//! demo with `d` (Releases shows the live release and a healthy instance, the route serves
//! the greeting; the Logs pane shows the request, hides the health probes with `H` and
//! follows a new request; `+`, `X`, `O`, `-` scale, stop and start it with the route's
//! answers checked; the agent is stopped at the end); and `NO_COLOR`.
//! Needs root, network to the Debian mirror, and `.ci/setup`'s packages (tmux).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test; `DROVER_TEST_BIN` overrides it (a private copy when several
/// worktrees share one target directory).
fn bin() -> String {
    std::env::var("DROVER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_drover").into())
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    socket: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        // A deploy started the agent: nothing keeps running after the test.
        let _ = self.drover(&["agent", "stop"]);
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

impl Env {
    fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn drover(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--config")
            .arg(self.config())
            .arg("--state")
            .arg(self.state())
            .args(args)
            .output()
            .expect("run drover")
    }
    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux (run .ci/setup)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Start drover in a new session `name` of `w`×`h`; after it exits the pane prints its
    /// exit code and the terminal mode, then stays open.
    fn start(&self, name: &str, w: u16, h: u16, env: &str) {
        let cmd = format!(
            "{env} {} --config {} --state {}; echo EXITED $?; stty -a | tr ' ' '\\n' | grep -x -- '-*icanon'; sleep 600",
            bin(),
            self.config().display(),
            self.state().display()
        );
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            "-e",
            "XDG_CONFIG_HOME=/nonexistent",
            &cmd,
        ]);
        let _ = self.tmux(&["set-option", "-g", "escape-time", "0"]);
    }
    fn keys(&self, name: &str, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", name, k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    fn screen(&self, name: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-t", name])
    }
    fn screen_escapes(&self, name: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", name])
    }
    fn wait_for(&self, name: &str, what: &str, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen(name);
            if pred(&s) {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn setup() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("config"), &root.join("config"));
    copy_dir(
        &repo.join("assets/demo/hello"),
        &root.join("assets/demo/hello"),
    );
    // Same base inputs as the demo (reuses its cached base); a build script that prints a
    // line every 50 ms for a few seconds, so the log visibly streams.
    let base = r#"
packages = ["python3-minimal", "ca-certificates"]
[base]
distro = "debian"
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
components = ["main"]
variant = "apt"
"#;
    std::fs::write(
        root.join("config/stacks/ticker.toml"),
        format!(
            "name = \"ticker\"\n{base}\n[scripts]\nbuild = \"\"\"\nfor i in $(seq 1 160); do echo \"tick $i\"; sleep 0.05; done\n\"\"\"\n"
        ),
    )
    .unwrap();
    Env {
        _tmp: tmp,
        root,
        socket: format!("drover-test-{}", std::process::id()),
    }
}

/// The `N` of the Log title `| a-b of N`.
fn log_total(screen: &str) -> Option<usize> {
    let i = screen.find(" of ")?;
    screen[i + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// SGR colour parameters (30-38, 40-48, 90-97, 100-107) in captured escapes.
fn colour_escapes(s: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("\u{1b}[") {
        rest = &rest[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(rest.len());
        let params = &rest[..end];
        if rest[end..].starts_with('m') {
            for p in params.split(';') {
                if let Ok(n) = p.parse::<u32>() {
                    if matches!(n, 30..=38 | 40..=48 | 90..=97 | 100..=107) {
                        found.push(format!("ESC[{params}m"));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn console_end_to_end() {
    let env = setup();
    let out = env.drover(&["build", "hello", "--json"]);
    assert!(
        out.status.success(),
        "demo build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.drover(&["build", "ticker", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --- 80x24: Manifest, filter libssl.
    let s = "main";
    env.start(s, 80, 24, "");
    env.wait_for(
        s,
        "the stacks",
        |t| t.contains("hello") && t.contains("ticker"),
        20,
    );
    env.keys(s, &["3"]);
    env.wait_for(
        s,
        "the manifest",
        |t| t.contains("PACKAGE") && t.contains("adduser"),
        10,
    );
    env.keys(s, &["/", "libssl", "Enter"]);
    let t = env.wait_for(s, "libssl3", |t| t.contains("libssl3"), 10);
    assert!(
        !t.contains("ca-certificates "),
        "the filter hides other rows:\n{t}"
    );
    assert!(t.contains("/libssl"), "the title shows the filter:\n{t}");

    // --- Build ticker from the console: confirm, the log streams, j/k still move.
    env.keys(s, &["h", "j", "1", "b"]);
    let t = env.wait_for(s, "the confirmation", |t| t.contains("Build ticker?"), 10);
    assert!(t.contains("from   image"), "{t}");
    env.keys(s, &["y"]);
    env.wait_for(s, "the running build", |t| t.contains("Log #3 running"), 30);
    let first = env
        .wait_for(s, "ticks", |t| t.contains("tick "), 30)
        .clone();
    let n0 = log_total(&first).unwrap_or(0);
    // j selects the older build (its log shows), k comes back to the running one.
    env.keys(s, &["j"]);
    env.wait_for(
        s,
        "build #2 selected",
        |t| t.contains("Log #2 succeeded"),
        5,
    );
    env.keys(s, &["k"]);
    env.wait_for(
        s,
        "build #3 selected again",
        |t| t.contains("Log #3 running"),
        5,
    );
    // Resize mid-build: nothing breaks, the log keeps growing.
    env.tmux(&["resize-window", "-t", s, "-x", "200", "-y", "60"]);
    let t = env.wait_for(
        s,
        "more lines at 200x60",
        |t| {
            t.contains("Log #3")
                && log_total(t).unwrap_or(0) > n0
                && t.lines().count() >= 60
                && t.lines().any(|l| l.chars().count() > 150)
        },
        30,
    );
    assert!(!t.contains("..."), "no missing log lines:\n{t}");
    env.wait_for(
        s,
        "the build to succeed",
        |t| t.contains("Log #3 succeeded"),
        120,
    );
    env.tmux(&["resize-window", "-t", s, "-x", "80", "-y", "24"]);

    // --- Cancel a build with J / x.
    env.keys(s, &["b", "y"]);
    env.wait_for(
        s,
        "build #4",
        |t| t.contains("Log #4 running") && t.contains("tick "),
        60,
    );
    env.keys(s, &["J"]);
    env.wait_for(
        s,
        "the jobs list",
        |t| t.contains("JOB") && t.contains("running"),
        5,
    );
    env.keys(s, &["x"]);
    env.wait_for(s, "the cancel question", |t| t.contains("Cancel job 2?"), 5);
    env.keys(s, &["y"]);
    env.wait_for(s, "the cancelled job", |t| t.contains("cancelled"), 60);
    env.keys(s, &["Escape"]);
    let out = env.drover(&["builds", "ticker", "--json"]);
    let builds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b4 = builds
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == 4)
        .expect("build 4");
    assert_eq!(b4["status"], "cancelled", "{b4}");
    assert!(b4["image_path"].is_null(), "{b4}");
    assert!(!env.state().join("images/ticker/4.oci.tar").exists());

    // --- Quit with q from the pane: back, then quit; the terminal is restored.
    env.keys(s, &["q", "q"]);
    // Wait for the stty line too: it comes a moment after EXITED (a capture in between
    // made this test flaky).
    let t = env.wait_for(
        s,
        "the exit and the terminal mode",
        |t| t.contains("EXITED") && t.lines().any(|l| l == "icanon" || l == "-icanon"),
        15,
    );
    assert!(t.contains("EXITED 0"), "{t}");
    assert!(
        t.lines().any(|l| l == "icanon"),
        "cooked mode restored:\n{t}"
    );
    assert!(!t.contains("Stacks"), "no console left on the screen:\n{t}");
    assert_eq!(
        env.tmux(&["display", "-p", "-t", s, "#{alternate_on}"])
            .trim(),
        "0"
    );
    assert_eq!(
        env.tmux(&["display", "-p", "-t", s, "#{cursor_flag}"])
            .trim(),
        "1"
    );

    // --- Deploy hello from the console: confirm from nothing to build #1; the Releases
    // pane shows the live release and a healthy instance; the route serves the greeting.
    let d = "deploy";
    env.start(d, 100, 30, "");
    env.wait_for(d, "the console", |t| t.contains("ticker"), 20);
    env.keys(d, &["5"]);
    env.wait_for(d, "no agent yet", |t| t.contains("agent not running"), 10);
    env.keys(d, &["d"]);
    let t = env.wait_for(
        d,
        "the deploy question",
        |t| t.contains("Deploy hello?"),
        10,
    );
    assert!(t.contains("from      nothing deployed"), "{t}");
    assert!(t.contains("to        build #1, "), "{t}");
    assert!(t.contains("replicas  1"), "{t}");
    env.keys(d, &["y"]);
    let t = env.wait_for(
        d,
        "the live release with a healthy instance",
        |t| t.contains("live #1  1/1 healthy") && t.contains("hello-r1-"),
        120,
    );
    assert!(
        t.contains(" healthy "),
        "an instance row in state healthy:\n{t}"
    );
    let port: u16 = t
        .split("route :")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no route port on screen:\n{t}"));
    let (status, body) = http::get(port, "/").expect("GET / on the route");
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from drover demo v1.0.0\n")
    );
    let out = env.drover(&["releases", "hello", "--json"]);
    let rel: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rel[0]["status"], "live", "{rel}");
    // --- Issue #13: the request is in the Logs pane (runtime log, fullscreen to see whole
    // lines), health probes with it; H hides them; the pane follows a new request.
    env.keys(d, &["6", "F"]);
    let t = env.wait_for(
        d,
        "the request in the Logs pane",
        |t| t.contains("\"GET / HTTP/1.1\" 200") && t.contains("Logs hello"),
        15,
    );
    assert!(t.contains("hello-r1-"), "lines name their instance:\n{t}");
    env.wait_for(
        d,
        "the health probes, shown by default",
        |t| t.contains("\"GET /up HTTP/1.1\" 200"),
        10,
    );
    env.keys(d, &["H"]);
    let t = env.wait_for(
        d,
        "health probes hidden",
        |t| t.contains("no health") && !t.contains("GET /up "),
        10,
    );
    assert!(t.contains("\"GET / HTTP/1.1\" 200"), "{t}");
    let (status, _) = http::get(port, "/not-here").expect("GET /not-here on the route");
    assert_eq!(status, 404);
    let t = env.wait_for(
        d,
        "the new request, followed",
        |t| t.contains("\"GET /not-here HTTP/1.1\" 404"),
        10,
    );
    assert!(t.contains("follow"), "{t}");
    assert!(!t.contains("GET /up "), "{t}");
    env.keys(d, &["F"]);
    // --- Issue #13, one stack's lifecycle from the console, each key confirmed first and
    // the route's answers checked: + scales to 2, X stops (503 saying so), O starts the
    // release again with its 2 instances, - scales back to 1.
    env.keys(d, &["5", "+"]);
    env.wait_for(
        d,
        "the scale confirmation",
        |t| t.contains("Scale hello to 2?"),
        10,
    );
    env.keys(d, &["y"]);
    env.wait_for(
        d,
        "two healthy instances",
        |t| t.contains("2/2 healthy"),
        40,
    );
    assert_eq!(http::get(port, "/").map(|r| r.0).ok(), Some(200));
    env.keys(d, &["X"]);
    env.wait_for(
        d,
        "the stop confirmation",
        |t| t.contains("Stop hello?"),
        10,
    );
    env.keys(d, &["y"]);
    env.wait_for(d, "the stopped stack", |t| t.contains("STOPPED by"), 40);
    let (status, body) = http::get(port, "/").expect("GET / on the stopped route");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("stack hello is stopped"), "{body}");
    env.wait_for(
        d,
        "the stop job to end",
        |t| t.contains("no jobs running"),
        30,
    );
    env.keys(d, &["O"]);
    env.wait_for(
        d,
        "the start confirmation",
        |t| t.contains("Start hello?"),
        10,
    );
    env.keys(d, &["y"]);
    env.wait_for(d, "the started stack", |t| t.contains("2/2 healthy"), 40);
    assert_eq!(http::get(port, "/").map(|r| r.0).ok(), Some(200));
    env.wait_for(
        d,
        "the start job to end",
        |t| t.contains("no jobs running"),
        30,
    );
    env.keys(d, &["-"]);
    env.wait_for(
        d,
        "the scale-down confirmation",
        |t| t.contains("Scale hello to 1?"),
        10,
    );
    env.keys(d, &["y"]);
    env.wait_for(d, "one healthy instance", |t| t.contains("1/1 healthy"), 40);
    env.wait_for(
        d,
        "the scale job to end",
        |t| t.contains("no jobs running"),
        30,
    );
    assert_eq!(http::get(port, "/").map(|r| r.0).ok(), Some(200));

    // u checks for updates as a job (no question); its summary ends in the footer and the
    // Updates pane shows the stored check.
    env.keys(d, &["4", "u"]);
    env.wait_for(
        d,
        "the update check",
        |t| t.contains("hello: build #1, ") && t.contains("pending update(s) from"),
        120,
    );
    let out = env.drover(&["updates", "hello", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let pending: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // --- Issue #11: r moves the lock to the updates and builds it; a plain b after that
    // installs the same versions (nothing goes back), and nothing is pending for it.
    // Build ids are global (the other stack's builds count too): wait for the next one.
    let newest = || -> i64 {
        let out = env.drover(&["builds", "hello", "--json"]);
        let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        b[0]["id"].as_i64().unwrap()
    };
    let build_done = |after: i64, secs: u64| -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let out = env.drover(&["builds", "hello", "--json"]);
            let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let row = &b[0];
            let id = row["id"].as_i64().unwrap();
            if id > after {
                match row["status"].as_str().unwrap_or("") {
                    "succeeded" => return id,
                    "running" => {}
                    other => panic!("build {id} {other}: {row}"),
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no build after {after}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    };
    let first = newest();
    env.keys(d, &["r"]);
    env.wait_for(
        d,
        "the rebuild confirmation",
        |t| t.contains("Rebuild hello applying updates?"),
        10,
    );
    env.keys(d, &["y"]);
    let applied = build_done(first, 300);
    // The store says succeeded a moment before the console's job ends; `b` while it
    // still runs is refused (one job per stack), so wait for the header to say so.
    env.wait_for(
        d,
        "the rebuild job to end",
        |t| t.contains("no jobs running"),
        30,
    );
    env.keys(d, &["b"]);
    env.wait_for(
        d,
        "the build confirmation",
        |t| t.contains("Build hello?"),
        10,
    );
    env.keys(d, &["y"]);
    let plain = build_done(applied, 120);
    let versions = |id: i64| -> Vec<(String, String)> {
        let out = env.drover(&[
            "manifest",
            "hello",
            "--build",
            &id.to_string(),
            "--format",
            "json",
        ]);
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        m.as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].to_string(), c["version"].to_string()))
            .collect()
    };
    assert_eq!(
        versions(plain),
        versions(applied),
        "the plain build went back"
    );
    if !pending.as_array().unwrap().is_empty() {
        assert_ne!(versions(applied), versions(first), "r applied nothing");
    }
    let out = env.drover(&["updates", "hello", "--json"]);
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for u in after.as_array().unwrap() {
        assert_eq!(u["against"], format!("build {plain}"), "{u}");
        assert!(
            !pending
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["package"] == u["package"] && p["candidate"] == u["candidate"]),
            "still pending after r and b: {u}"
        );
    }

    // --- Issue #13: the deploy confirmation says what the change does (from the diff of
    // the live release and the plain build); deploy it.
    env.keys(d, &["5", "d"]);
    let t = env.wait_for(
        d,
        "the deploy question with its changes",
        |t| t.contains("Deploy hello?") && t.contains("changes   "),
        10,
    );
    assert!(t.contains(&format!("to        build #{plain}, ")), "{t}");
    assert!(t.contains("CVE") && t.contains("undoes 0"), "{t}");
    env.keys(d, &["y"]);
    env.wait_for(
        d,
        "release #2 live",
        |t| t.contains("live #2  1/1 healthy"),
        120,
    );
    // --- A stack file broken while live: its row says so, and R still rolls back (from
    // the definition release #2 was deployed with); the route serves the rollback.
    let file = env.root.join("config/stacks/hello.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, "name = \"hello\"\n[base\n").unwrap();
    env.keys(d, &["1"]);
    env.wait_for(d, "the broken row", |t| t.contains("broken"), 15);
    env.keys(d, &["5", "R"]);
    let t = env.wait_for(
        d,
        "the rollback question",
        |t| t.contains("Roll back hello?"),
        10,
    );
    // Back to release #1's build, which undoes the fixes the plain build carried.
    assert!(t.contains("to        release #1"), "{t}");
    if versions(plain) != versions(first) {
        assert!(t.contains("DOWNGRADE"), "{t}");
    }
    env.keys(d, &["y"]);
    env.wait_for(
        d,
        "release #3 live",
        |t| t.contains("live #3  1/1 healthy"),
        120,
    );
    let out = env.drover(&["releases", "hello", "--json"]);
    let rel: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rel[0]["release"], 3, "{rel}");
    assert_eq!(rel[0]["rollback_of"], 1, "{rel}");
    assert_eq!(http::get(port, "/").map(|r| r.0).ok(), Some(200));
    std::fs::write(&file, good).unwrap();
    env.keys(d, &["q", "q"]);
    env.wait_for(d, "the exit", |t| t.contains("EXITED 0"), 15);
    let out = env.drover(&["agent", "stop"]);
    assert!(out.status.success());

    // --- Colours: present by default, absent with NO_COLOR.
    env.start("colour", 100, 30, "");
    env.wait_for("colour", "the console", |t| t.contains("ticker"), 20);
    assert!(!colour_escapes(&env.screen_escapes("colour")).is_empty());
    env.start("plain", 100, 30, "NO_COLOR=1");
    env.wait_for("plain", "the console", |t| t.contains("ticker"), 20);
    let e = env.screen_escapes("plain");
    assert_eq!(colour_escapes(&e), Vec::<String>::new(), "{e:?}");
    assert!(
        e.contains("\u{1b}[7m") || e.contains(";7m") || e.contains("[1;7"),
        "selection in reverse video: {e:?}"
    );
}
