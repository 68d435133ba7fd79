//! Shared by the real tests that run the drover binary: a temporary root holding `config/`,
//! `state/` and a private copy of the binary, and helpers to run it and other commands.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary root with `config/` and `state/` and a private copy of the drover binary
/// (the real tests run for minutes, and a shared cargo target directory may be rebuilt
/// meanwhile).
pub struct Env {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub bin: PathBuf,
}

impl Env {
    /// A fresh root with a copy of `bin` (pass `env!("CARGO_BIN_EXE_drover")`).
    pub fn new(bin: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let copy = root.join("drover");
        std::fs::copy(bin, &copy).unwrap();
        Env {
            _tmp: tmp,
            root,
            bin: copy,
        }
    }

    /// Run `drover --config ROOT/config --state ROOT/state ARGS`.
    pub fn drover(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(self.root.join("config"))
            .arg("--state")
            .arg(self.root.join("state"))
            .args(args)
            .output()
            .expect("run drover")
    }

    /// Run drover, require success and parse its stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.drover(args);
        assert!(
            out.status.success(),
            "drover {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

/// Copy the directory tree `from` to `to` (created), files and directories only.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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

/// Run `cmd`, require success, return its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run .ci/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
