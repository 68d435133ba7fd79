//! The CLI's contracts that need no network: exit codes, diagnostics format, JSON shapes.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_drover");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn drover(state: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(repo().join("config"))
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn validate_the_demo_config_succeeds() {
    let st = tempfile::tempdir().unwrap();
    let out = drover(st.path(), &["validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok  ") && stdout.contains("drover.toml"),
        "{stdout}"
    );
}

#[test]
fn validate_names_a_missing_feed_file_in_drover_toml() {
    let st = tempfile::tempdir().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    std::fs::create_dir(cfg.path().join("stacks")).unwrap();
    std::fs::write(
        cfg.path().join("stacks/min.toml"),
        "name = \"min\"\n[base]\nsuite = \"bookworm\"\n",
    )
    .unwrap();
    std::fs::write(
        cfg.path().join("drover.toml"),
        "[feeds]\nosv = \"feeds/none\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(cfg.path())
        .arg("--state")
        .arg(st.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("drover.toml:2:7: `osv` in [feeds]") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn validate_a_broken_file_prints_file_line_col_and_exits_2() {
    let st = tempfile::tempdir().unwrap();
    let file = repo().join("tests/fixtures/stacks/invalid/multiple-errors.toml");
    let out = drover(st.path(), &["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", file.display());
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(located.len() >= 5, "{err}");
    assert!(
        err.contains(&format!(
            "{}:2:13: invalid Debian package name `Curl`",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("  hint: "), "{err}");
    // Nothing was written: validate does not create the state dir's database.
    assert!(!st.path().join("drover.db").exists());
}

#[test]
fn validate_json_reports_locations() {
    let st = tempfile::tempdir().unwrap();
    let file = repo().join("tests/fixtures/stacks/invalid/port-range.toml");
    let out = drover(st.path(), &["--json", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["ok"], false);
    assert!(v[0]["errors"][0]["line"].as_u64().unwrap() > 0);
    assert!(v[0]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("out of range"));
}

#[test]
fn validate_warns_about_risky_values_and_still_exits_0() {
    let st = tempfile::tempdir().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("w.toml");
    std::fs::write(
        &file,
        "name = \"w\"\n[base]\ndistro = \"debian\"\nsuite = \"bookworm\"\n\
         mirror = \"http://deb.debian.org/debian\"\n[env]\nAPI_TOKEN = \"abc\"\n",
    )
    .unwrap();
    let out = drover(st.path(), &["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(1 warning)"), "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:7:13: warning: `API_TOKEN` in [env]",
            file.display()
        )),
        "{err}"
    );
    let out = drover(st.path(), &["--json", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["errors"].as_array().unwrap().len(), 0);
    assert_eq!(v[0]["warnings"][0]["line"], 7);
}

#[test]
fn unknown_stack_is_bad_input_listing_the_known_ones() {
    let st = tempfile::tempdir().unwrap();
    let out = drover(st.path(), &["build", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown stack `nope`"), "{err}");
    assert!(err.contains("hello"), "{err}");
}

#[test]
fn stacks_and_builds_json_on_an_empty_state() {
    let st = tempfile::tempdir().unwrap();
    let out = drover(st.path(), &["stacks", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "hello");
    assert_eq!(v[0]["suite"], "bookworm");
    assert!(v[0]["last_build"].is_null());
    let out = drover(st.path(), &["builds", "hello", "--json"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn manifest_of_a_never_built_stack_fails_with_a_hint() {
    let st = tempfile::tempdir().unwrap();
    let out = drover(st.path(), &["manifest", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drover build hello"));
    let out = drover(st.path(), &["logs", "hello", "--build", "42"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let st = tempfile::tempdir().unwrap();
    assert_eq!(drover(st.path(), &["frobnicate"]).status.code(), Some(2));
    assert_eq!(drover(st.path(), &["--help"]).status.code(), Some(0));
}

#[test]
fn no_command_without_a_terminal_explains_and_exits_1() {
    let st = tempfile::tempdir().unwrap();
    let out = drover(st.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the console needs a terminal"), "{err}");
}

/// `drover completions SHELL` and `drover man` come from the same clap definition: the bash
/// script is valid bash and completes the subcommands; the man page renders with groff
/// without warnings and names them.
#[test]
fn completions_and_man_page() {
    let st = tempfile::tempdir().unwrap();
    let out = drover(st.path(), &["completions", "bash"]);
    assert!(out.status.success());
    let script = st.path().join("drover.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let n = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(n.status.success(), "{}", String::from_utf8_lossy(&n.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["diff", "deploy", "rollback", "lock", "completions"] {
        assert!(text.contains(sub), "bash completion lacks {sub}");
    }
    for shell in ["zsh", "fish"] {
        let o = drover(st.path(), &["completions", shell]);
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
    let bad = drover(st.path(), &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));

    let man = drover(st.path(), &["man"]);
    assert!(man.status.success());
    let page = st.path().join("drover.1");
    std::fs::write(&page, &man.stdout).unwrap();
    let r = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        r.status.success() && r.stderr.is_empty(),
        "groff: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let roff = String::from_utf8_lossy(&man.stdout);
    assert!(roff.contains(".TH drover 1"), "{roff}");
    assert!(roff.contains("diff") && roff.contains("deploy"), "{roff}");
}

/// `drover audit`: records of builds, lock changes and others, newest first, filtered by
/// stack and `--since`; bad filters are bad input.
#[test]
fn audit_lists_filters_and_refuses_bad_filters() {
    let st = tempfile::tempdir().unwrap();
    {
        let store = drover::store::Store::open(&st.path().join("drover.db")).unwrap();
        store
            .audit("build", Some("hello"), "build 1 succeeded in 900 ms")
            .unwrap();
        store
            .audit(
                "lock",
                Some("hello"),
                "hello.lock: created; 0 package(s) changed",
            )
            .unwrap();
        store.audit("prune", None, "freed 3 MB").unwrap();
    }
    let out = drover(st.path(), &["--json", "audit", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["lock", "build"]);
    assert!(rows[0]["who"].as_str().is_some_and(|w| !w.is_empty()));
    let all = drover(st.path(), &["audit", "--since", "1h"]);
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(
        text.starts_with("TIME") && text.contains("freed 3 MB") && text.contains("hello.lock"),
        "{text}"
    );
    let none = drover(st.path(), &["audit", "--since", "2999-01-01T00:00:00Z"]);
    assert!(String::from_utf8_lossy(&none.stdout).contains("no audit records"));
    for bad in [
        vec!["audit", "--since", "yesterday"],
        vec!["audit", "--limit", "0"],
    ] {
        let o = drover(st.path(), &bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
}

/// `drover logs STACK --runtime` (issue #13): the stored lines of the instances, filtered by
/// release, instance and health-check lines; `--json` is an array of the stored rows.
#[test]
fn runtime_logs_filter_and_json() {
    use drover::store::runtime_logs::{is_health_line, RuntimeLine};
    let st = tempfile::tempdir().unwrap();
    // Create the state directory and its store the way every command does.
    assert!(drover(st.path(), &["builds", "hello"]).status.success());
    let db = st.path().join("drover.db");
    let mut store = drover::store::Store::open(&db).unwrap();
    let mk = |release: i64, instance: &str, line: &str| RuntimeLine {
        id: 0,
        stack: "hello".into(),
        release,
        instance: instance.into(),
        stream: "stderr".into(),
        ts: drover::store::now_rfc3339(),
        health: is_health_line(line, "/up"),
        line: line.into(),
    };
    store
        .append_runtime_logs(&[
            mk(1, "hello-r1-1", "\"GET /up HTTP/1.1\" 200 -"),
            mk(1, "hello-r1-1", "\"GET / HTTP/1.1\" 200 -"),
            mk(2, "hello-r2-3", "\"GET /api HTTP/1.1\" 200 -"),
            mk(2, "hello-r2-3-test", "test ok"),
        ])
        .unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = vec!["logs", "hello", "--runtime", "--json"];
        a.extend_from_slice(args);
        let out = drover(st.path(), &a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let all = json(&[]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    assert_eq!(all[0]["health"], true);
    for key in [
        "id", "stack", "release", "instance", "stream", "ts", "health", "line",
    ] {
        assert!(all[0].get(key).is_some(), "{key} in {}", all[0]);
    }
    assert_eq!(json(&["--hide-health"]).as_array().unwrap().len(), 3);
    assert_eq!(json(&["--release", "2"]).as_array().unwrap().len(), 2);
    let one = json(&["--instance", "hello-r2-3"]);
    assert_eq!(
        one.as_array().unwrap().len(),
        2,
        "its test script's lines too"
    );
    assert_eq!(json(&["--since", "1h"]).as_array().unwrap().len(), 4);
    let text = drover(st.path(), &["logs", "hello", "--runtime"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("hello-r2-3 stderr \"GET /api HTTP/1.1\" 200 -"),
        "{text}"
    );
    // Bad input: exit 2, naming the option.
    let out = drover(
        st.path(),
        &["logs", "hello", "--runtime", "--since", "soon"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since `soon`"));
    let out = drover(st.path(), &["logs", "hello", "--release", "2"]);
    assert_eq!(out.status.code(), Some(2), "--release needs --runtime");
    let out = drover(st.path(), &["logs", "nosuch", "--runtime"]);
    assert_eq!(out.status.code(), Some(2));
}
