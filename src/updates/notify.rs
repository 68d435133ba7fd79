//! Notifications of new security updates (`[notify]` in `drover.toml`): a command run with
//! the JSON on stdin and/or a webhook the JSON is POSTed to.
//!
//! Each channel announces each (stack, source package, candidate source version) once: a
//! delivered notification is remembered in the store (`update_actions`, action
//! `notify-command` / `notify-webhook`); a failed one is reported and retried at the next
//! check. "Security update" is [`super::is_security`].
//!
//! The JSON document ([`Notification`]):
//! ```json
//! {"stack": "hello", "build_id": 7, "checked_at": "2026-11-29T10:00:00.000Z",
//!  "updates": [{"source": "openssl", "source_installed": "3.0.14-1~deb12u2",
//!               "source_candidate": "3.0.15-1~deb12u1", "suite": "bookworm-security",
//!               "urgency": "medium", "cves": ["CVE-2024-5535"], "feed_cves": [],
//!               "packages": ["libssl3", "openssl"]}]}
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{is_security, CheckReport};
use crate::config::Notify;
use crate::store::Store;

/// How long a notify command or webhook may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One security update of a source package, as announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityUpdate {
    /// Source package.
    pub source: String,
    /// Installed source version.
    pub source_installed: String,
    /// Candidate source version.
    pub source_candidate: String,
    /// Suite of the candidate.
    pub suite: String,
    /// Highest changelog urgency, if the changelog was read.
    pub urgency: Option<String>,
    /// CVE ids named by the changelog.
    pub cves: Vec<String>,
    /// CVE ids the feeds say the update fixes (not named by the changelog).
    pub feed_cves: Vec<String>,
    /// Binary packages of the image the update replaces, sorted.
    pub packages: Vec<String>,
}

/// The document sent to every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Stack name.
    pub stack: String,
    /// The checked build.
    pub build_id: i64,
    /// RFC 3339 UTC time of the check.
    pub checked_at: String,
    /// The new security updates, riskiest first.
    pub updates: Vec<SecurityUpdate>,
}

/// The security updates of a check, one per source package, in the check's (risk) order.
pub fn security_updates(report: &CheckReport) -> Vec<SecurityUpdate> {
    let mut order: Vec<String> = Vec::new();
    let mut by_source: BTreeMap<String, SecurityUpdate> = BTreeMap::new();
    for u in report.updates.iter().filter(|u| is_security(u)) {
        let e = by_source.entry(u.source.clone()).or_insert_with(|| {
            order.push(u.source.clone());
            SecurityUpdate {
                source: u.source.clone(),
                source_installed: u.source_installed.clone(),
                source_candidate: u.source_candidate.clone(),
                suite: u.suite.clone(),
                urgency: u.urgency.clone(),
                cves: u.cves.clone(),
                feed_cves: u.feed_cves.iter().map(|c| c.id.clone()).collect(),
                packages: Vec::new(),
            }
        });
        e.packages.push(u.package.clone());
    }
    order
        .into_iter()
        .filter_map(|s| by_source.remove(&s))
        .map(|mut u| {
            u.packages.sort();
            u.packages.dedup();
            u
        })
        .collect()
}

/// Run `argv` (no shell) with `json` on stdin; exit 0 within [`TIMEOUT`] is success.
///
/// Errors: the program cannot start, exits non-zero (its stderr's end is included) or
/// takes longer than [`TIMEOUT`] (it is killed).
pub fn send_command(argv: &[String], json: &[u8]) -> Result<()> {
    let (prog, args) = argv.split_first().context("empty notify command")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the notify command `{prog}`"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let body = json.to_vec();
    // Writer and reader threads: a command that does not read its stdin, or writes much to
    // stderr, must not block us.
    let writer = std::thread::spawn(move || {
        // One-shot CLI commands restore SIGPIPE's default action (die); a command that
        // exits without reading must give this write EPIPE, not kill drover. Blocking the
        // signal in this thread only does that: the signal a pipe write raises goes to the
        // writing thread, and is dropped with it.
        // SAFETY: sigemptyset/sigaddset on a local set; pthread_sigmask on this thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let _ = stdin.write_all(&body);
    });
    let (etx, erx) = std::sync::mpsc::channel();
    if let Some(mut e) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut e, &mut v);
            let _ = etx.send(v);
        });
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the notify command `{prog}` took longer than {} s and was stopped",
                TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    if !status.success() {
        // A child of the command may hold stderr open: wait a little, not forever.
        let err = erx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        let err = String::from_utf8_lossy(&err);
        let err = err.trim();
        let tail = &err[err.floor_char_boundary(err.len().saturating_sub(300))..];
        bail!("the notify command `{prog}` failed ({status}): {tail}");
    }
    Ok(())
}

/// POST `json` to `url` (`Content-Type: application/json`); a 2xx answer is success.
///
/// Errors: the request fails or times out, or the answer is not 2xx.
pub fn send_webhook(url: &str, json: &[u8]) -> Result<()> {
    let client = crate::http::client_builder(TIMEOUT).build()?;
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json.to_vec())
        .send()
        .with_context(|| format!("cannot POST to the webhook {url}"))?;
    if !resp.status().is_success() {
        bail!("the webhook {url} answered HTTP {}", resp.status());
    }
    Ok(())
}

/// What [`notify`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyOutcome {
    /// Delivered notifications, e.g. `command: 2 security updates (openssl, curl)`.
    pub sent: Vec<String>,
    /// Failed deliveries (retried at the next check), each naming the channel.
    pub errors: Vec<String>,
}

/// Announce the security updates of `report` that `channels` have not announced yet, and
/// remember the delivered ones. Never fails: problems are in the outcome's `errors`.
pub fn notify(store: &Store, channels: &Notify, report: &CheckReport) -> NotifyOutcome {
    let mut out = NotifyOutcome::default();
    let all = security_updates(report);
    type Sender<'a> = Box<dyn Fn(&[u8]) -> Result<()> + 'a>;
    let mut list: Vec<(&str, &str, Sender<'_>)> = Vec::new();
    if let Some(argv) = &channels.command {
        list.push((
            "command",
            "notify-command",
            Box::new(move |j| send_command(argv, j)),
        ));
    }
    if let Some(url) = &channels.webhook {
        list.push((
            "webhook",
            "notify-webhook",
            Box::new(move |j| send_webhook(url, j)),
        ));
    }
    for (channel, action, send) in list {
        let mut fresh = Vec::new();
        for u in &all {
            match store.update_action_done(&report.stack, &u.source, &u.source_candidate, action) {
                Ok(true) => {}
                Ok(false) => fresh.push(u.clone()),
                Err(e) => out
                    .errors
                    .push(format!("{channel}: cannot read the store: {e:#}")),
            }
        }
        if fresh.is_empty() {
            continue;
        }
        let doc = Notification {
            stack: report.stack.clone(),
            build_id: report.build_id,
            checked_at: report.checked_at.clone(),
            updates: fresh,
        };
        let names: Vec<&str> = doc.updates.iter().map(|u| u.source.as_str()).collect();
        let what = format!(
            "{} new security update{} ({})",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        let json = match serde_json::to_vec(&doc) {
            Ok(j) => j,
            Err(e) => {
                out.errors.push(format!("{channel}: {e}"));
                continue;
            }
        };
        match send(&json) {
            Ok(()) => {
                let pairs: Vec<(String, String)> = doc
                    .updates
                    .iter()
                    .map(|u| (u.source.clone(), u.source_candidate.clone()))
                    .collect();
                if let Err(e) = store.record_update_actions(&report.stack, &pairs, action, &what) {
                    out.errors.push(format!(
                        "{channel}: sent, but cannot remember it (it may repeat): {e:#}"
                    ));
                }
                let _ = store.audit(action, Some(&report.stack), &format!("sent: {what}"));
                out.sent.push(format!("{channel}: {what}"));
            }
            Err(e) => {
                let _ = store.audit(
                    action,
                    Some(&report.stack),
                    &format!("failed: {what}: {e:#}"),
                );
                out.errors.push(format!(
                    "notify {channel} failed for {what}: {e:#}; retried at the next check"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn command_gets_the_json_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let script = format!("cat > {}", out.display());
        send_command(&argv(&script), br#"{"a":1}"#).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), r#"{"a":1}"#);
        let e = send_command(&argv("echo no route to pager >&2; exit 3"), b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`sh` failed")
                && e.contains("exit status: 3")
                && e.contains("no route to pager"),
            "{e}"
        );
        // Not reading stdin is fine.
        send_command(&argv("true"), &vec![b'x'; 1 << 20]).unwrap();
        let e = send_command(&["/nonexistent/notify".to_string()], b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot run the notify command `/nonexistent/notify`"),
            "{e}"
        );
    }
}
