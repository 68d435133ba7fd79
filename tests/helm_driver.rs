//! The Helm driver against a stub `helm` on PATH that records its arguments and answers
//! `helm version --short` and `helm history -o json` (no cluster is available here).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use drover::export::helm::{parse_version, rollback_args, upgrade_args, HelmTarget};
use drover::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_drover");
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

const STUB: &str = r#"#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >> "$HELM_STUB_LOG"
echo "----" >> "$HELM_STUB_LOG"
case "$1" in
  version) echo "$HELM_STUB_VERSION" ;;
  history) echo '[{"revision":1,"updated":"2026-01-01","status":"superseded","chart":"hello-0.1.1","app_version":"x","description":"Install complete"},{"revision":2,"updated":"2026-01-02","status":"deployed","chart":"hello-0.1.1","app_version":"x","description":"Upgrade complete"}]' ;;
  upgrade)
    if [ -n "$HELM_STUB_FAIL" ]; then
      echo "Error: UPGRADE FAILED: release hello failed, and has been rolled back due to atomic being set: context deadline exceeded" >&2
      exit 1
    fi ;;
esac
exit 0
"#;

struct Env {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    log: PathBuf,
    kubeconfig: PathBuf,
    state: PathBuf,
}

fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let helm = bin.join("helm");
    fs::write(&helm, STUB).unwrap();
    fs::set_permissions(&helm, fs::Permissions::from_mode(0o755)).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: test-ctx\nusers: []\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let mut store = Store::open(&state.join("drover.db")).unwrap();
    let id = store.create_build("hello", 1).unwrap();
    store
        .finish_build_success(
            id,
            &drover::store::builds::Success {
                image_digest: DIGEST,
                image_path: "/nonexistent.oci.tar",
                components: &[],
            },
        )
        .unwrap();
    Env {
        log: dir.path().join("helm.log"),
        bin,
        kubeconfig,
        state,
        _dir: dir,
    }
}

fn drover(e: &Env, version: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--state")
        .arg(&e.state)
        .args(args)
        .env("PATH", &e.bin)
        .env("KUBECONFIG", &e.kubeconfig)
        .env("HELM_STUB_LOG", &e.log)
        .env("HELM_STUB_VERSION", version)
        .env_remove("DROVER_HELM")
        .stdin(Stdio::null());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The recorded invocations, each as its argument list.
fn calls(e: &Env) -> Vec<Vec<String>> {
    let text = fs::read_to_string(&e.log).unwrap_or_default();
    text.split("----\n")
        .filter(|s| !s.is_empty())
        .map(|s| s.lines().map(str::to_string).collect())
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn deploy_runs(version: &str, undo_flag: &str) {
    let e = setup();
    let o = drover(&e, version, &["helm", "deploy", "hello", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let chart = e.state.join("helm/hello/chart");
    assert!(chart.join("Chart.yaml").is_file());
    assert!(chart.join("templates/deployment.yaml").is_file());
    let got = calls(&e);
    assert_eq!(
        got,
        vec![
            strs(&["version", "--short"]),
            strs(&[
                "upgrade",
                "--install",
                "hello",
                chart.to_str().unwrap(),
                "--namespace",
                "default",
                "--create-namespace",
                "--kube-context",
                "test-ctx",
                "--wait",
                "--timeout",
                "5m0s",
                undo_flag,
            ]),
            strs(&[
                "history",
                "hello",
                "--namespace",
                "default",
                "--kube-context",
                "test-ctx",
                "--output",
                "json"
            ]),
        ]
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["revision"], 2);
    assert_eq!(v["status"], "deployed");
    assert_eq!(v["helm"], version);
    assert_eq!(v["action"], "upgrade");
    assert_eq!(v["build_id"], 1);
    // The store's release history carries Helm's revision.
    let rows = Store::open(&e.state.join("drover.db"))
        .unwrap()
        .helm_releases("hello")
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].revision, 2);
    assert_eq!(rows[0].kube_context, "test-ctx");
    assert_eq!(
        rows[0].image.as_deref(),
        Some(format!("drover/hello@{DIGEST}").as_str())
    );
    let o = drover(&e, version, &["helm", "history", "hello", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h[0]["revision"], 2);
}

#[test]
fn helm_3_deploy_uses_atomic_and_wait() {
    deploy_runs("v3.14.2+gc309b6f", "--atomic");
}

#[test]
fn helm_4_deploy_uses_rollback_on_failure_and_wait() {
    deploy_runs("v4.0.1+g12500dd", "--rollback-on-failure");
}

#[test]
fn rollback_runs_helm_rollback_with_the_revision() {
    let e = setup();
    let o = drover(
        &e,
        "v3.15.0",
        &[
            "helm",
            "rollback",
            "hello",
            "--revision",
            "1",
            "--namespace",
            "web",
            "--kube-context",
            "prod",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = calls(&e);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[1],
        strs(&[
            "rollback",
            "hello",
            "1",
            "--namespace",
            "web",
            "--kube-context",
            "prod",
            "--wait",
            "--timeout",
            "5m0s"
        ])
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("is at revision 2"));
}

#[test]
fn missing_helm_or_cluster_says_exactly_what_is_missing() {
    let e = setup();
    // No helm on PATH.
    let empty = tempfile::tempdir().unwrap();
    let o = drover(
        &e,
        "v3.14.2",
        &["helm", "deploy", "hello"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("`helm` is not installed (not on PATH)"),
        "{}",
        text(&o)
    );
    // helm, but no kubeconfig.
    let o = drover(
        &e,
        "v3.14.2",
        &["helm", "deploy", "hello"],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no Kubernetes cluster configured"), "{err}");
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    // A kubeconfig without a current context.
    let kc = e.state.join("empty-kubeconfig");
    fs::write(&kc, "apiVersion: v1\nkind: Config\ncurrent-context: \"\"\n").unwrap();
    let o = drover(
        &e,
        "v3.14.2",
        &["helm", "deploy", "hello"],
        &[("KUBECONFIG", kc.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no Kubernetes context selected"),
        "{}",
        text(&o)
    );
    // Helm 2 is refused.
    let o = drover(&e, "v2.17.0", &["helm", "deploy", "hello"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("drives Helm 3 and 4"));
    // No upgrade ran in any of these cases.
    assert!(
        calls(&e).iter().all(|c| c[0] != "upgrade"),
        "{:?}",
        calls(&e)
    );
    // A failing upgrade: helm's own message is passed on, and nothing is recorded.
    let o = drover(
        &e,
        "v3.14.2",
        &["helm", "deploy", "hello"],
        &[("HELM_STUB_FAIL", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("UPGRADE FAILED"),
        "{}",
        text(&o)
    );
    let rows = Store::open(&e.state.join("drover.db"))
        .unwrap()
        .helm_releases("hello")
        .unwrap();
    assert!(rows.is_empty());
}

#[test]
fn command_lines_and_versions() {
    let t = HelmTarget {
        kube_context: "c".into(),
        namespace: "n".into(),
        release: "r".into(),
    };
    let v3 = parse_version("v3.14.2+gc309b6f\n").unwrap();
    let v4 = parse_version("v4.0.0").unwrap();
    assert_eq!((v3.major, v4.major), (3, 4));
    assert!(parse_version("3.1").is_err());
    assert!(parse_version("v5.0.0").is_err());
    let a3 = upgrade_args(&v3, &t, Path::new("/c"));
    let a4 = upgrade_args(&v4, &t, Path::new("/c"));
    assert!(
        a3.contains(&"--atomic".to_string()) && !a3.contains(&"--rollback-on-failure".to_string())
    );
    assert!(
        a4.contains(&"--rollback-on-failure".to_string()) && !a4.contains(&"--atomic".to_string())
    );
    assert!(a3.contains(&"--wait".to_string()) && a4.contains(&"--wait".to_string()));
    assert_eq!(rollback_args(&t, None)[..2], strs(&["rollback", "r"])[..]);
    assert_eq!(rollback_args(&t, None)[2], "--namespace");
}
