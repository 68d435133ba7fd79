//! The TCP route of a `protocol = "tcp"` stack (a database, a cache): every client
//! connection is piped byte for byte to one instance of the live release, picked
//! round-robin among the healthy ones like the HTTP router's, and held there (with its
//! [`InFlight`] guard, so a deploy drains it) until either side closes.
//!
//! Bounds per route, since anyone who reaches it may be hostile ([`TcpLimits`]): at most
//! `max_connections` at once (a connection over the cap is closed at once, nothing read);
//! an instance must accept within `connect_timeout` (else the next one is tried, at most
//! three in all); a connection with no byte in either direction for `idle_timeout` is
//! closed; memory is tokio's two copy buffers per connection. A stopped stack or one with
//! no instance closes new connections at once (TCP has no place for a 503 body).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::deploy::route::SharedTable;

/// How the TCP route bounds its clients; [`Default`] gives the documented values.
#[derive(Debug, Clone)]
pub struct TcpLimits {
    /// Connections open at once (default 1024).
    pub max_connections: usize,
    /// Longest wait for an instance to accept (default 5 s).
    pub connect_timeout: Duration,
    /// Longest time with no byte either way before the connection is closed (default
    /// 1 h: connection pools hold idle database connections for minutes).
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 1024,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// Instances tried for one client connection before it is closed.
const TRIES: usize = 3;

/// Serve the TCP route on `listener` with `limits` until the task is dropped; connections
/// already piped keep going (each in its own task).
pub async fn serve_tcp(listener: tokio::net::TcpListener, table: SharedTable, limits: TcpLimits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (client, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors, mostly: let connections end before the next try.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(client);
            continue;
        };
        let (table, limits) = (table.clone(), limits.clone());
        tokio::spawn(async move {
            let _slot = slot;
            pipe_one(client, &table, &limits).await;
        });
    }
}

/// Pipe every connection accepted on `listener` to `target` (a linked stack's route, see
/// [`crate::deploy::links`]) with the same bounds as [`serve_tcp`], until the task is
/// dropped (it is, with the instance whose namespace `listener` lives in).
pub async fn forward(listener: tokio::net::TcpListener, target: SocketAddr, limits: TcpLimits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let client = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((client, _)) = client else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let limits = limits.clone();
        // In the set, so dropping this task (the instance is gone) ends its connections.
        conns.spawn(async move {
            let _slot = slot;
            let _ = client.set_nodelay(true);
            let up = tokio::time::timeout(limits.connect_timeout, TcpStream::connect(target)).await;
            if let Ok(Ok(up)) = up {
                let _ = up.set_nodelay(true);
                let _ = copy_with_idle(client, up, limits.idle_timeout).await;
            }
        });
    }
}

/// One client: connect to an instance, then copy both ways until the end or the idle
/// timeout.
async fn pipe_one(client: TcpStream, table: &SharedTable, limits: &TcpLimits) {
    let _ = client.set_nodelay(true);
    let mut tried: Vec<String> = Vec::new();
    let (upstream, _guard) = loop {
        let t = table.load();
        if t.stopped.is_some() || tried.len() >= TRIES {
            return;
        }
        let Some(b) = t.pick(&tried) else { return };
        let guard = b.begin();
        match tokio::time::timeout(limits.connect_timeout, b.connect()).await {
            Ok(Ok(s)) => break (s, guard),
            _ => tried.push(b.instance.clone()),
        }
    };
    let _ = copy_with_idle(client, upstream, limits.idle_timeout).await;
}

/// `tokio::io::copy_bidirectional` with an idle timeout: ends when both directions are
/// done, or when no byte moved during one whole `idle` period (checked once a period, so
/// a silent connection is closed after between one and two periods).
async fn copy_with_idle<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let moved = AtomicU64::new(0);
    let both = async {
        let (x, y) = tokio::join!(
            one_way(&mut ar, &mut bw, &moved),
            one_way(&mut br, &mut aw, &moved)
        );
        x.and(y)
    };
    let watchdog = async {
        let mut last = 0;
        loop {
            tokio::time::sleep(idle).await;
            let now = moved.load(Ordering::Relaxed);
            if now == last {
                return;
            }
            last = now;
        }
    };
    tokio::select! {
        r = both => r,
        _ = watchdog => Ok(()),
    }
}

/// Copy `r` to `w` until the end of `r` (then shut `w` down), counting bytes into `moved`.
async fn one_way<R, W>(r: &mut R, w: &mut W, moved: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::route::{Backend, RouteTable};

    /// An echo server; returns its port.
    async fn echo() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        port
    }

    async fn route(table: SharedTable, limits: TcpLimits) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(serve_tcp(l, table, limits));
        port
    }

    #[tokio::test]
    async fn pipes_to_a_live_backend_skipping_a_dead_one_and_bounds_clients() {
        let dead = Backend::new("dead", 1, crate::deploy::instance::free_port().unwrap());
        dead.set_healthy(true);
        let live = Backend::new("live", 1, echo().await);
        live.set_healthy(true);
        let table = crate::deploy::route::empty_table();
        table.store(Arc::new(RouteTable::new(1, vec![dead, live.clone()])));
        let limits = TcpLimits {
            max_connections: 2,
            idle_timeout: Duration::from_millis(300),
            ..TcpLimits::default()
        };
        let port = route(table.clone(), limits).await;
        for _ in 0..3 {
            let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            c.write_all(b"select 1").await.unwrap();
            let mut got = [0u8; 8];
            c.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"select 1");
        }
        // The idle timeout closes a silent connection; while it is open it is in flight.
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await.unwrap();
        assert_eq!(live.in_flight(), 1);
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut rest))
            .await
            .expect("the idle connection was not closed")
            .unwrap();
        assert_eq!(n, 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(live.in_flight(), 0);
        // Over the cap: closed at once, nothing answered.
        let a = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let b = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut over = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        over.write_all(b"y").await.unwrap();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(2), over.read_to_end(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
        drop((a, b));
        // A stopped stack closes new connections.
        table.store(Arc::new(RouteTable::stopped(1, "by test".into())));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    }
}
