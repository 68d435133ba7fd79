//! Deploy commands' contracts that need no image: clear errors and exit codes for bad
//! input, JSON shapes of an empty history, and the agent's lifecycle (start by `status`,
//! one agent per state dir, `agent stop`).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_drover");

fn bin() -> PathBuf {
    std::env::var_os("DROVER_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN))
}

fn drover(state: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

struct StopAgent<'a>(&'a Path);
impl Drop for StopAgent<'_> {
    fn drop(&mut self) {
        let _ = drover(self.0, &["agent", "stop"]);
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    let st = tempfile::tempdir().unwrap();
    let _stop = StopAgent(st.path());

    let out = drover(st.path(), &["releases", "hello", "--json"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    let out = drover(st.path(), &["deploy", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));

    // No build yet: rejected before the agent starts, with what to do.
    let out = drover(st.path(), &["deploy", "hello"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hello has no succeeded build: run `drover build hello` first"),
        "{err}"
    );
    let out = drover(st.path(), &["deploy", "hello", "--build", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no build 99"));
    let out = drover(st.path(), &["rollback", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live release to roll back from"));
    let out = drover(st.path(), &["deploy", "hello", "--replicas", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_deploys_and_rollbacks_fail_fast_without_starting_the_agent() {
    let st = tempfile::tempdir().unwrap();
    let _stop = StopAgent(st.path());
    for (args, want) in [
        (
            &["deploy", "hello", "--replicas", "0"][..],
            "--replicas must be 1..=64, not 0",
        ),
        (
            &["rollback", "hello"][..],
            "no live release to roll back from",
        ),
        (&["rollback", "hello", "--to", "3"][..], "no live release"),
        (&["deploy", "hello"][..], "hello has no succeeded build"),
        (
            &["deploy", "hello", "--timeout", "0"][..],
            "--timeout 0 leaves the new instances no time to pass a health check",
        ),
        (&["rollback", "hello", "--timeout", "0"][..], "at least 1"),
        // Issue #12 §5: a duration that would overflow `Instant + Duration` in the agent
        // (it panicked the deploy task and left the release `deploying`) is refused at
        // parse time.
        (
            &["deploy", "hello", "--timeout", "18446744073709551615"][..],
            "not in 0..=3600",
        ),
        (
            &["deploy", "hello", "--grace", "18446744073709551615"][..],
            "not in 0..=3600",
        ),
        (
            &["rollback", "hello", "--grace", "3601"][..],
            "not in 0..=3600",
        ),
        // One stack's lifecycle needs a live release; `scale` a count in 1-64.
        (
            &["stop", "hello"][..],
            "hello has no live release: nothing to stop (`drover deploy hello` first)",
        ),
        (&["start", "hello"][..], "nothing to start"),
        (&["restart", "hello"][..], "nothing to restart"),
        (&["scale", "hello", "2"][..], "nothing to scale"),
        (&["scale", "hello", "-1"][..], "unexpected argument '-1'"),
        (&["stop", "hello", "--grace", "3601"][..], "not in 0..=3600"),
    ] {
        let t = Instant::now();
        let out = drover(st.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("deploying") && !err.contains("rolling back"),
            "{args:?} announced a deploy it refused: {err}"
        );
        assert!(
            !st.path().join("agent.sock").exists() && !st.path().join("agent.pid").exists(),
            "{args:?} started the agent"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{args:?} was slow");
    }
}

#[test]
fn status_starts_one_agent_and_agent_stop_ends_it() {
    let st = tempfile::tempdir().unwrap();
    let _stop = StopAgent(st.path());
    let out = drover(st.path(), &["agent", "status"]);
    assert_eq!(out.status.code(), Some(1), "not running yet");

    let out = drover(st.path(), &["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.is_array());
    let out = drover(st.path(), &["agent", "status", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"], true);
    let pid = v["pid"].as_i64().unwrap() as i32;

    // A second agent on the same state dir refuses to start.
    let out = drover(st.path(), &["agent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("an agent is already running"));

    let out = drover(st.path(), &["agent", "stop"]);
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "the agent did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!st.path().join("agent.sock").exists());
    let out = drover(st.path(), &["agent", "status"]);
    assert_eq!(out.status.code(), Some(1));
}

/// Issue #11: a deploy that puts older packages live than the live release has is refused
/// (exit 2, before the agent starts) naming how many go back and the CVE fixes it undoes;
/// `--allow-downgrade` is what lets it through.
#[test]
fn a_downgrading_deploy_needs_allow_downgrade() {
    use drover::manifest::Component;
    use drover::store::builds::Success;
    use drover::store::Store;
    let st = tempfile::tempdir().unwrap();
    let _stop = StopAgent(st.path());
    // The state directory is made by drover itself (private, as it checks).
    assert!(drover(st.path(), &["builds", "hello"]).status.success());
    let mut store = Store::open(&st.path().join("drover.db")).unwrap();
    let comp = |v: &str| Component {
        name: "libexpat1".into(),
        version: v.into(),
        arch: "amd64".into(),
        source: "expat".into(),
        source_version: v.into(),
        suite: "bookworm".into(),
        origin: "http://deb.debian.org/debian".into(),
        installed_size_kib: None,
    };
    let mut ids = Vec::new();
    for v in ["2.5.0-1+deb12u2", "2.5.0-1+deb12u5"] {
        let id = store.create_build("hello", 1).unwrap();
        store
            .finish_build_success(
                id,
                &Success {
                    image_digest: &format!("sha256:{id:064}"),
                    image_path: "/nonexistent.oci.tar",
                    components: &[comp(v)],
                },
            )
            .unwrap();
        ids.push(id);
    }
    let r = store
        .create_release(
            "hello",
            ids[1],
            &format!("sha256:{:064}", ids[1]),
            1,
            "op",
            None,
        )
        .unwrap();
    store.mark_release_live("hello", r).unwrap();
    store
        .put_changelog(
            "expat",
            "2.5.0-1+deb12u5",
            &[drover::debian::changelog::Entry {
                version: "2.5.0-1+deb12u5".into(),
                distributions: "bookworm-security".into(),
                urgency: "high".into(),
                date: String::new(),
                cves: vec!["CVE-2025-59375".into()],
                advisories: vec![],
                text: String::new(),
            }],
        )
        .unwrap();
    drop(store);
    let out = drover(
        st.path(),
        &["deploy", "hello", "--build", &ids[0].to_string()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "is a downgrade",
        "1 package(s) go back",
        "undoing 1 CVE fix(es): CVE-2025-59375",
        "libexpat1 2.5.0-1+deb12u5 -> 2.5.0-1+deb12u2",
        "--allow-downgrade",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert!(!st.path().join("agent.sock").exists(), "the agent started");
}

/// `drover ARGS` on `state` as the unprivileged uid/gid 65534 (`setpriv`; we run as root).
fn drover_as_nobody(state: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_agent_socket_of_another_user_is_permission_denied_not_agent_not_running() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: dropping privileges with setpriv needs root");
        return;
    }
    // A listening socket only root may connect to (a socket needs write permission), in a
    // state directory others may enter: what an unprivileged user meets beside root's agent.
    let st = tempfile::tempdir().unwrap();
    std::fs::set_permissions(st.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = st.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o700)).unwrap();

    for args in [&["agent", "stop"][..], &["agent", "status"][..]] {
        let out = drover_as_nobody(st.path(), args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(!stdout.contains("not running"), "{args:?}: {stdout}");
        assert!(
            stderr.contains("permission denied on the agent socket")
                && stderr.contains(&sock.display().to_string())
                && stderr.contains("run drover as the agent's user"),
            "{args:?}: {stderr}"
        );
    }
}
