//! Pure tests of `update`: key → state change, for every key of the console, one module
//! per pane or group of overlays; the fixtures shared by all are here.

use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::Keymap;
use super::msg::JobError;
use super::state::*;
use super::update::{update, Effect, JobMsg, Msg};
use crate::deploy::api::{AgentError, AgentStatus, DeployRequest};
use crate::jobs::{BuildEvent, Step, Stream};
use crate::manifest::Component;
use crate::store::builds::{BuildRecord, BuildStatus};
use crate::store::deploys::ReleaseRecord;

mod builds;
mod diff;
mod lifecycle;
mod log;
mod logs;
mod manifest;
mod navigation;
mod overlays;
mod releases;
mod updates;

fn key(c: char) -> Msg {
    let m = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Msg::Key(KeyEvent::new(KeyCode::Char(c), m))
}

fn code(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn build(id: i64, status: BuildStatus) -> BuildRecord {
    BuildRecord::sample(id, status)
}

fn comp(name: &str, version: &str, source: &str, suite: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        suite: suite.into(),
        origin: "http://deb.debian.org/debian".into(),
        installed_size_kib: Some(10),
    }
}

/// Two stacks, three builds of `hello`, a manifest, a 100-line log in memory.
fn state() -> State {
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
    let mut s = State::new("/state".into(), now, Keymap::default());
    s.set_stacks(vec![
        StackRow {
            name: "hello".into(),
            description: "demo".into(),
            last_build: Some(build(3, BuildStatus::Succeeded)),
            updates: None,
            updates_stale: false,
            release: None,
            strategy: crate::stack::Strategy::BlueGreen,
            last_unavailable_ms: None,
            tcp: false,
            problem: None,
        },
        StackRow {
            name: "web".into(),
            description: "web".into(),
            last_build: None,
            updates: None,
            updates_stale: false,
            release: None,
            strategy: crate::stack::Strategy::BlueGreen,
            last_unavailable_ms: None,
            tcp: false,
            problem: None,
        },
    ]);
    s.loaded_stack = Some("hello".into());
    s.set_builds(vec![
        build(3, BuildStatus::Succeeded),
        build(2, BuildStatus::Failed),
        build(1, BuildStatus::Succeeded),
    ]);
    s.set_manifest(
        Some(3),
        vec![
            comp("zlib1g", "1:1.2.13", "zlib", "bookworm"),
            comp("libssl3", "3.0.15-1", "openssl", "bookworm"),
            comp("bash", "5.2.15", "bash", "bookworm-updates"),
        ],
    );
    s.log.build_id = Some(3);
    s.log.total = 100;
    s.log.height = 10;
    s.log.window = (0..100)
        .map(|i| ("stdout".into(), format!("line {i}")))
        .collect();
    s.log.follow = false;
    s
}

fn confirm_body(s: &State) -> Vec<String> {
    match &s.overlay {
        Some(Overlay::Confirm(c)) => c.body.clone(),
        o => panic!("no confirmation: {o:?} (status {:?})", s.status),
    }
}

fn digest(build: i64) -> String {
    crate::text::short_digest(&format!("sha256:{build:064}"))
}
