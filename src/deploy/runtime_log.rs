//! The central runtime log: what instances print goes to the store's `runtime_logs`
//! ([`crate::store::runtime_logs`]), tagged with stack, release, instance, stream and time,
//! and kept after the instances are gone.
//!
//! The pipes of an instance are never blocked by the database: [`LogSink::line`] only
//! `try_send`s to a bounded channel ([`QUEUE`] lines) read by one writer thread per agent
//! ([`LogWriter`]), which commits a batch every [`BATCH_EVERY`] or [`BATCH_LINES`] lines,
//! whichever comes first. When the queue is full a line is dropped and counted; the next
//! line that gets through is preceded by a `drover` line saying how many were lost. After
//! each commit the writer deletes a stack's oldest lines once it holds 10 % more than
//! `[logs] runtime_max_lines` (so deletes come in batches), keeping the newest
//! `runtime_max_lines`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::store::runtime_logs::{is_health_line, RuntimeFilter, RuntimeLine};
use crate::store::Store;

/// Lines the channel to the writer holds before [`LogSink::line`] drops lines.
pub const QUEUE: usize = 20_000;
/// Longest a line waits in the writer before its batch is committed.
pub const BATCH_EVERY: Duration = Duration::from_millis(100);
/// Largest batch committed at once.
pub const BATCH_LINES: usize = 500;

enum Msg {
    Line(RuntimeLine),
    /// Commit what is pending, then answer the last `n` lines of one instance.
    Tail(String, String, usize, mpsc::Sender<Vec<String>>),
}

/// The agent's one writer of runtime log lines (a thread owning its own store connection).
#[derive(Clone)]
pub struct LogWriter {
    tx: SyncSender<Msg>,
}

impl LogWriter {
    /// Open the store at `database` for the writer thread and start it; each stack keeps
    /// at most `max_lines` lines (`[logs] runtime_max_lines`).
    ///
    /// Errors: the store cannot be opened.
    pub fn start(database: &Path, max_lines: u64) -> Result<LogWriter> {
        let store = Store::open(database)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("drover-runtime-log".into())
            .spawn(move || write_loop(store, rx, max_lines.max(1) as i64))?;
        Ok(LogWriter { tx })
    }

    /// Commit every line queued so far; returns when that is done (or the writer is gone,
    /// or after 10 s).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self
            .tx
            .send(Msg::Tail(String::new(), String::new(), 0, tx))
            .is_ok()
        {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    /// The sink of one stack's instances.
    pub fn sink(&self, stack: &str) -> LogSink {
        LogSink {
            inner: Arc::new(SinkInner {
                stack: stack.to_string(),
                tx: self.tx.clone(),
                health: Mutex::new(BTreeMap::new()),
                dropped: AtomicU64::new(0),
            }),
        }
    }
}

struct SinkInner {
    stack: String,
    tx: SyncSender<Msg>,
    /// Health path per release (the newest few).
    health: Mutex<BTreeMap<i64, String>>,
    dropped: AtomicU64,
}

/// Where the instances of one stack write their output (cheap to clone).
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<SinkInner>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("stack", &self.inner.stack)
            .finish()
    }
}

/// The release an instance id `STACK-rN-SEQ[-test]` names, 0 when it names none.
pub fn release_of(stack: &str, instance: &str) -> i64 {
    instance
        .strip_prefix(stack)
        .and_then(|r| r.strip_prefix("-r"))
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl LogSink {
    /// Lines of `release` that request `path` are marked as health-check lines
    /// ([`is_health_line`]); the newest 8 releases are remembered.
    pub fn set_health_path(&self, release: i64, path: &str) {
        let mut h = self.inner.health.lock().unwrap_or_else(|e| e.into_inner());
        h.insert(release, path.to_string());
        while h.len() > 8 {
            h.pop_first();
        }
    }

    /// Record one line of `instance`'s `stream` (`stdout`, `stderr`): sanitised for a
    /// terminal (escapes removed, other control characters visible), never blocking.
    pub fn line(&self, instance: &str, stream: &str, text: &str) {
        let text = crate::text::sanitize_for_terminal(text.trim_end_matches(['\n', '\r']));
        let release = release_of(&self.inner.stack, instance);
        let health = {
            let h = self.inner.health.lock().unwrap_or_else(|e| e.into_inner());
            h.get(&release).is_some_and(|p| is_health_line(&text, p))
        };
        let ts = crate::store::now_rfc3339();
        let dropped = self.inner.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let note = RuntimeLine {
                id: 0,
                stack: self.inner.stack.clone(),
                release,
                instance: instance.to_string(),
                stream: "drover".into(),
                ts: ts.clone(),
                health: false,
                line: format!("{dropped} line(s) dropped: the runtime log writer fell behind"),
            };
            if self.inner.tx.try_send(Msg::Line(note)).is_err() {
                self.inner.dropped.fetch_add(dropped + 1, Ordering::SeqCst);
                return;
            }
        }
        let l = RuntimeLine {
            id: 0,
            stack: self.inner.stack.clone(),
            release,
            instance: instance.to_string(),
            stream: stream.to_string(),
            ts,
            health,
            line: text,
        };
        match self.inner.tx.try_send(Msg::Line(l)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.inner.dropped.fetch_add(1, Ordering::SeqCst);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The last `n` lines written by `instance` (its `-test` script's included), as
    /// `TIME INSTANCE STREAM: text`; what is still queued is committed first. Blocks the
    /// caller until the writer answers (at most a batch's commit).
    pub fn tail(&self, instance: &str, n: usize) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        let msg = Msg::Tail(self.inner.stack.clone(), instance.to_string(), n, tx);
        if self.inner.tx.send(msg).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
    }
}

fn write_loop(mut store: Store, rx: Receiver<Msg>, max_lines: i64) {
    let mut batch: Vec<RuntimeLine> = Vec::with_capacity(BATCH_LINES);
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let msg = match deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match msg {
            Ok(Msg::Line(l)) => {
                batch.push(l);
                deadline.get_or_insert_with(|| Instant::now() + BATCH_EVERY);
                if batch.len() < BATCH_LINES {
                    continue;
                }
            }
            Ok(Msg::Tail(stack, instance, n, reply)) => {
                commit(&mut store, &mut batch, &mut counts, max_lines);
                deadline = None;
                let f = RuntimeFilter {
                    instance: Some(instance),
                    ..Default::default()
                };
                let lines = store
                    .runtime_log_tail(&stack, &f, n as i64)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| format!("{} {} {}: {}", l.ts, l.instance, l.stream, l.line))
                    .collect();
                let _ = reply.send(lines);
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                commit(&mut store, &mut batch, &mut counts, max_lines);
                return;
            }
        }
        commit(&mut store, &mut batch, &mut counts, max_lines);
        deadline = None;
    }
}

/// Commit `batch` and apply the cap to the stacks it touched.
fn commit(
    store: &mut Store,
    batch: &mut Vec<RuntimeLine>,
    counts: &mut HashMap<String, i64>,
    max_lines: i64,
) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append_runtime_logs(batch) {
        eprintln!(
            "drover agent: {} runtime log line(s) lost: {e:#}",
            batch.len()
        );
        batch.clear();
        return;
    }
    let mut added: BTreeMap<&str, i64> = BTreeMap::new();
    for l in batch.iter() {
        *added.entry(&l.stack).or_default() += 1;
    }
    for (stack, n) in added {
        let count = match counts.get_mut(stack) {
            Some(c) => {
                *c += n;
                c
            }
            None => counts
                .entry(stack.to_string())
                .or_insert(store.runtime_log_len(stack).unwrap_or(n)),
        };
        if *count > max_lines + max_lines / 10 {
            match store.trim_runtime_logs(stack, max_lines) {
                Ok(_) => *count = max_lines,
                Err(e) => eprintln!("drover agent: cannot trim the runtime log of {stack}: {e:#}"),
            }
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_from_instance_ids() {
        assert_eq!(release_of("web", "web-r3-2"), 3);
        assert_eq!(release_of("web", "web-r12-7-test"), 12);
        assert_eq!(release_of("my-r2", "my-r2-r5-1"), 5);
        assert_eq!(release_of("web", "other-r3-1"), 0);
        assert_eq!(release_of("web", "web-rx-1"), 0);
    }

    #[test]
    fn writer_stores_marks_health_and_caps() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let w = LogWriter::start(&db, 1000).unwrap();
        let sink = w.sink("web");
        sink.set_health_path(2, "/up");
        for i in 0..3000 {
            let text = if i % 2 == 0 {
                "\"GET /up HTTP/1.1\" 200".to_string()
            } else {
                format!("\x1b[31mrequest {i}\n")
            };
            sink.line("web-r2-1", "stderr", &text);
            if i % 500 == 0 {
                // Let the writer keep up (the queue is bounded; a burst may drop lines).
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // tail commits what is queued first.
        let tail = sink.tail("web-r2-1", 2);
        assert_eq!(tail.len(), 2);
        assert!(
            tail[1].ends_with("web-r2-1 stderr: request 2999"),
            "{tail:?}"
        );
        let store = Store::open(&db).unwrap();
        let n = store.runtime_log_len("web").unwrap();
        assert!((1000..=1100).contains(&n), "capped: {n}");
        let rows = store
            .runtime_log_tail("web", &RuntimeFilter::default(), 4)
            .unwrap();
        assert_eq!(rows[3].line, "request 2999", "escape removed");
        assert_eq!(rows[3].release, 2);
        assert!(rows[2].health && !rows[3].health);
        let hide = RuntimeFilter {
            hide_health: true,
            ..Default::default()
        };
        let shown = store.runtime_log_ids("web", &hide, 0).unwrap().len() as i64;
        assert!(shown * 2 <= n + 1 && shown * 2 >= n - 1, "{shown} of {n}");
        // flush commits what is queued (the agent's exit).
        for i in 0..3 {
            sink.line("web-r2-1", "stdout", &format!("last {i}"));
        }
        w.flush();
        let last = store
            .runtime_log_tail("web", &RuntimeFilter::default(), 1)
            .unwrap();
        assert_eq!(last[0].line, "last 2");
    }
}
