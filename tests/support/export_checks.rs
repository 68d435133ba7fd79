//! Checks shared by the export tests: the official validators (kubernetes-validate,
//! cfn-lint, python-hcl2, helm), each failing the test with the command that installs it.

// Each test crate uses its own subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How to install the Python validators.
pub const PIP: &str = "pip install kubernetes-validate cfn-lint python-hcl2";

pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

pub fn need(bin: &str, install: &str) {
    assert!(
        on_path(bin),
        "`{bin}` is not installed; install it with `{install}`"
    );
}

pub fn python_module(module: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python module `{module}` is missing; install it with `{PIP}`"
    );
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}\n{}", text(&o));
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn kubernetes_validate(paths: &[PathBuf]) {
    need("kubernetes-validate", PIP);
    let out = run_ok(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg("--quiet")
            .args(paths),
    );
    assert!(!out.contains("ERROR"), "{out}");
}

/// `helm template` of each of the chart's `templates` (`--show-only`, e.g.
/// `deployment.yaml`) into `out/NAME`, the `---` and `# Source:` lines helm puts first
/// taken off; `set` are `--set` arguments.
pub fn helm_template(chart: &Path, out: &Path, templates: &[&str], set: &[&str]) {
    need("helm", "bash .ci/setup");
    fs::create_dir_all(out).unwrap();
    for f in templates {
        let o = Command::new("helm")
            .args(["template", "release"])
            .arg(chart)
            .args(["--show-only", &format!("templates/{f}")])
            .args(set.iter().flat_map(|s| ["--set", s]))
            .output()
            .unwrap();
        assert!(o.status.success(), "helm template {f}: {}", text(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        let body = text
            .strip_prefix("---\n# Source: ")
            .and_then(|rest| rest.split_once('\n'))
            .filter(|(source, _)| source.ends_with(&format!("/templates/{f}")))
            .map(|(_, body)| body)
            .unwrap_or_else(|| panic!("helm template output for {f} starts otherwise:\n{text}"));
        fs::write(out.join(f), body).unwrap();
    }
}

/// Record in the store at `state` (a state directory) one succeeded build of `stack` with
/// image `digest` (the archive itself is not needed to export); returns its id.
pub fn fake_build(state: &Path, stack: &str, digest: &str) -> i64 {
    let mut store = drover::store::Store::open(&state.join("drover.db")).unwrap();
    let id = store.create_build(stack, std::process::id()).unwrap();
    store
        .finish_build_success(
            id,
            &drover::store::builds::Success {
                image_digest: digest,
                image_path: "/nonexistent.oci.tar",
                components: &[],
            },
        )
        .unwrap();
    id
}
