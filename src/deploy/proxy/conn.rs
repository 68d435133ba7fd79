//! One route's client connections: the cap ([`ProxyLimits::max_connections`]) with
//! eviction of waiting connections, the per-connection watchdog that enforces the
//! header-read and keep-alive timeouts, and the `503` for a connection over the cap.
//!
//! A connection is in one [`Phase`] at a time: `Fresh` (accepted, no byte yet), `Head`
//! (bytes of a request head arrived, the head is not complete), `Busy` (a request is
//! being handled: its body and response are timed by the proxy, not here), `Idle`
//! (keep-alive: the last response ended, no byte of the next request yet). The watchdog
//! closes a `Fresh` or `Head` connection [`ProxyLimits::header_read_timeout`] after it
//! was accepted (or, for a later request on a kept-alive connection, after the first
//! byte of its head), and an `Idle` one [`ProxyLimits::keep_alive_timeout`] after its
//! last response. hyper's own `header_read_timeout` is not used: its clock starts when
//! hyper begins waiting for a head, so it would also be the keep-alive timeout.
//!
//! At the cap, as nginx does with its "reusable" connections, the connection that has
//! waited longest in `Fresh` or `Idle` (nothing of a request received) is closed to make
//! room; only when every connection has a request under way does a new one get the
//! `503`. A new connection gets no hyper state (its buffers and channels cost about
//! 30 KiB) until its first request head is complete ([`first_head`]), so one held silent
//! or sending its head slowly costs a socket, a small task and the bytes it sent.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::ProxyLimits;

/// Where a connection is in its life; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    Fresh = 0,
    Head = 1,
    Busy = 2,
    Idle = 3,
    /// Closed to make room for a new connection (at the cap).
    Evicted = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Fresh,
            1 => Phase::Head,
            2 => Phase::Busy,
            3 => Phase::Idle,
            _ => Phase::Evicted,
        }
    }
}

/// One client connection's shared state: its phase, since when (ms after the route's
/// epoch), and a wake-up for its watchdog (phase changed, or evicted).
#[derive(Debug)]
pub(super) struct Conn {
    id: u64,
    phase: AtomicU8,
    since_ms: AtomicU64,
    wake: Notify,
    epoch: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn swap_phase(&self, from: Phase, to: Phase) -> bool {
        self.phase
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Bytes arrived from the client. `Fresh` → `Head` keeps the clock (the header
    /// timeout counts from accept); `Idle` → `Head` restarts it.
    fn on_bytes(&self) {
        match self.phase() {
            Phase::Fresh => {
                self.swap_phase(Phase::Fresh, Phase::Head);
            }
            Phase::Idle => {
                self.since_ms.store(self.now_ms(), Ordering::Release);
                if self.swap_phase(Phase::Idle, Phase::Head) {
                    self.wake.notify_one();
                }
            }
            _ => {}
        }
    }

    /// A request head is complete and handed to the proxy.
    pub(super) fn begin_request(&self) {
        let _ = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (Phase::from_u8(p) != Phase::Evicted).then_some(Phase::Busy as u8)
            });
    }

    /// The response to the current request ended (its body was dropped): keep-alive.
    pub(super) fn end_request(&self) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        if self.swap_phase(Phase::Busy, Phase::Idle) {
            self.wake.notify_one();
        }
    }

    /// When the watchdog must close the connection in its current phase (`None`: not
    /// while a request is under way).
    fn deadline(&self, limits: &ProxyLimits) -> Option<Instant> {
        let since = self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        match self.phase() {
            Phase::Fresh | Phase::Head => Some(since + limits.header_read_timeout),
            Phase::Idle => Some(since + limits.keep_alive_timeout),
            Phase::Busy => None,
            Phase::Evicted => Some(self.epoch),
        }
    }
}

/// Marks the response of one request; dropping it (with the response body) is
/// [`Conn::end_request`].
pub(super) struct RequestGuard(pub(super) Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// The connections of one route, up to `max`.
#[derive(Debug)]
pub(super) struct Conns {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Connections over the cap being answered `503` right now (bounded, see [`reject`]).
    rejecting: Arc<tokio::sync::Semaphore>,
}

/// A connection's place under the cap; dropping it frees the place.
pub(super) struct Admitted {
    pub(super) conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.conns.open.lock() {
            open.remove(&self.conn.id);
        }
    }
}

/// At most this many connections over the cap are being answered `503` at once; beyond
/// it they are closed without an answer.
const MAX_REJECTING: usize = 256;

impl Conns {
    pub(super) fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            max: max.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            rejecting: Arc::new(tokio::sync::Semaphore::new(MAX_REJECTING)),
        })
    }

    /// Connections currently admitted.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Admit a new connection: under the cap, or by evicting the connection that has
    /// waited longest with nothing of a request received. `None`: every connection has a
    /// request under way (answer `503`).
    pub(super) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            // The waiting connection with the oldest clock; it may start a request while we
            // look, so the phase is swapped only if it is still the one we saw.
            let evicted = (0..3).find_map(|_| {
                let c = open
                    .values()
                    .filter(|c| matches!(c.phase(), Phase::Fresh | Phase::Idle))
                    .min_by_key(|c| c.since_ms.load(Ordering::Acquire))?;
                let p = c.phase();
                (matches!(p, Phase::Fresh | Phase::Idle) && c.swap_phase(p, Phase::Evicted))
                    .then(|| c.clone())
            })?;
            evicted.wake.notify_one();
            open.remove(&evicted.id);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            phase: AtomicU8::new(Phase::Fresh as u8),
            since_ms: AtomicU64::new(0),
            wake: Notify::new(),
            epoch: self.epoch,
        });
        conn.since_ms.store(conn.now_ms(), Ordering::Release);
        open.insert(id, conn.clone());
        Some(Admitted {
            conn,
            conns: self.clone(),
        })
    }
}

/// The client's socket as hyper sees it: first the bytes [`first_head`] read, then the
/// socket; every read that brings bytes moves the connection's phase on
/// ([`Conn::on_bytes`]).
pub(super) struct Watched {
    pub(super) stream: TcpStream,
    pub(super) conn: Arc<Conn>,
    /// Read before hyper took over, and how much of it hyper has had.
    pub(super) rewind: Vec<u8>,
    pub(super) rewound: usize,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.rewound < this.rewind.len() {
            let left = this.rewind.get(this.rewound..).unwrap_or_default();
            let n = left.len().min(buf.remaining());
            buf.put_slice(left.get(..n).unwrap_or_default());
            this.rewound += n;
            if this.rewound == this.rewind.len() {
                this.rewind = Vec::new();
                this.rewound = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.on_bytes();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Read a new connection's first request head (and whatever came with it) into a small
/// buffer that grows with what arrives, before any hyper state is made for it: a
/// connection that is silent or sends its head slowly costs a socket, a small task and
/// the bytes it sent. Stops at the end of the head (an empty line) or at
/// [`ProxyLimits::max_head`] bytes (hyper then answers `431`). `None`: close it (the header
/// timeout passed, it was evicted, or the client closed or failed first).
pub(super) async fn first_head(
    stream: &mut TcpStream,
    conn: &Conn,
    limits: &ProxyLimits,
) -> Option<Vec<u8>> {
    let deadline = conn.deadline(limits)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let before = buf.len();
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    conn.on_bytes();
                    // The head ends with an empty line: "\r\n\r\n", or bare "\n\n".
                    let from = before.saturating_sub(3);
                    let tail = buf.get(from..).unwrap_or_default();
                    let ended = tail.windows(2).any(|w| w == b"\n\n")
                        || tail.windows(3).any(|w| w == b"\n\r\n");
                    if ended || buf.len() >= limits.max_head {
                        return Some(buf);
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => return None,
            _ = conn.wake.notified() => {
                if conn.phase() == Phase::Evicted {
                    return None;
                }
            }
        }
    }
}

/// Drive `served` (hyper's connection future) until it ends, or until the connection
/// outlives its phase's deadline or is evicted: then it is dropped, which closes the
/// socket. A connection with a request under way is never closed here.
pub(super) async fn watch<F: std::future::Future>(served: F, conn: &Conn, limits: &ProxyLimits) {
    tokio::pin!(served);
    loop {
        let deadline = conn.deadline(limits);
        tokio::select! {
            _ = &mut served => return,
            _ = conn.wake.notified() => {}
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                if conn.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    return;
                }
            }
        }
    }
}

/// Answer a connection over the cap: a short `503` with `Retry-After` without reading the
/// request, then a lingering close (the client's request bytes are read and dropped for
/// up to a second, so the kernel does not reset the connection before the client has read
/// the answer). At most [`MAX_REJECTING`] at once; beyond that the socket is just closed.
pub(super) fn reject(conns: &Conns, mut stream: TcpStream, stack: &str, limits: &ProxyLimits) {
    let Ok(permit) = conns.rejecting.clone().try_acquire_owned() else {
        return;
    };
    let body = format!(
        "route of {stack} is at its limit of {} connections; retry in {} s\n",
        limits.max_connections,
        RETRY_AFTER.as_secs()
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Type: text/plain; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        RETRY_AFTER.as_secs(),
        body.len()
    );
    tokio::spawn(async move {
        let _permit = permit;
        let linger = async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut left = 64usize << 10;
            while left > 0 {
                let n = stream.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            Ok::<_, io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
    });
}

/// The `Retry-After` of the `503` for a connection over the cap.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_waiting_idle_connection_makes_room() {
        let conns = Conns::new(3);
        let a = conns.admit().unwrap();
        let b = conns.admit().unwrap();
        let c = conns.admit().unwrap();
        // a: a request under way; b: heading; c: fresh (nothing received).
        a.conn.on_bytes();
        a.conn.begin_request();
        b.conn.on_bytes();
        assert_eq!(
            (a.conn.phase(), b.conn.phase(), c.conn.phase()),
            (Phase::Busy, Phase::Head, Phase::Fresh)
        );
        let d = conns.admit().expect("c is evicted for d");
        assert_eq!(c.conn.phase(), Phase::Evicted);
        assert_eq!(conns.len(), 3);
        // a's response ends: a is idle (keep-alive) and the next one to go.
        drop(RequestGuard(a.conn.clone()));
        assert_eq!(a.conn.phase(), Phase::Idle);
        d.conn.on_bytes();
        let e = conns.admit().expect("a is evicted for e");
        assert_eq!(a.conn.phase(), Phase::Evicted);
        e.conn.on_bytes();
        // Now every connection has a request under way or heading: no room.
        assert!(conns.admit().is_none());
        drop(b);
        assert!(conns.admit().is_some(), "b's place is free");
        // An evicted connection does not become busy again.
        c.conn.begin_request();
        assert_eq!(c.conn.phase(), Phase::Evicted);
    }
}
