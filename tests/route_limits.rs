//! The route bounds its clients (issue #12 §2), without root: the router of
//! `drover::deploy::proxy` on a loopback listener with short [`ProxyLimits`], in front of a
//! tiny hyper backend in this process. A silent connection and one sending its headers
//! slowly are closed after the header-read timeout, a kept-alive one after the keep-alive
//! timeout (and not before); slow bodies, small and streamed, get `408`; an oversized
//! body `413`, an oversized head `431`; over the connection cap the longest-waiting idle connection makes room and,
//! when none waits, a new connection gets `503` with `Retry-After` at once; a large body
//! is streamed intact, and still retried on another instance when the first refuses.
//! (`tests/route_hostile.rs` measures memory under 3,000 hostile connections.)

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover::deploy::proxy::{serve_with, ProxyLimits};
use drover::deploy::route::{empty_table, Backend, RouteTable, SharedTable};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A backend answering `NAME LEN SHA256` of the request body it read in full.
async fn backend(name: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let mut body = req.into_body();
                        let (mut len, mut h) = (0usize, Sha256::new());
                        while let Some(f) = body.frame().await {
                            if let Ok(d) = f?.into_data() {
                                len += d.len();
                                h.update(&d);
                            }
                        }
                        let text = format!("{name} {len} {}", hex::encode(h.finalize()));
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(text))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

fn healthy(id: &str, port: u16) -> Arc<Backend> {
    let b = Backend::new(id, 1, port);
    b.set_healthy(true);
    b
}

/// The router with `limits` in front of `backends`; its port.
async fn route(limits: ProxyLimits, backends: Vec<Arc<Backend>>) -> (u16, SharedTable) {
    let table = empty_table();
    table.store(Arc::new(RouteTable::new(1, backends)));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(serve_with(l, "s".into(), table.clone(), limits));
    (port, table)
}

fn short() -> ProxyLimits {
    ProxyLimits {
        header_read_timeout: Duration::from_millis(800),
        keep_alive_timeout: Duration::from_millis(2000),
        body_read_timeout: Duration::from_millis(800),
        body_min_rate: 2048,
        ..ProxyLimits::default()
    }
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Read until the server closes the connection (EOF or reset), at most `limit`: what it
/// sent and when it closed (`None`: still open at `limit`).
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), Some(Instant::now()))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request on a new connection (`Connection: close`): status and body.
async fn request(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = connect(port).await;
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let (text, closed) = until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "no answer: {text}");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split_once("\r\n\r\n").map_or("", |p| p.1).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_header_and_kept_alive_connections_are_closed_on_time() {
    let a = backend("a").await;
    let (port, _t) = route(short(), vec![healthy("a", a)]).await;

    // Silent: closed at the header-read timeout (0.8 s), counted from accept.
    let t0 = Instant::now();
    let mut silent = connect(port).await;
    // Slow headers: a byte every 100 ms never completes the head in time.
    let mut slow = connect(port).await;
    let trickle = tokio::spawn(async move {
        let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        until_closed(&mut slow, Duration::from_secs(5)).await
    });
    let (_, closed) = until_closed(&mut silent, Duration::from_secs(5)).await;
    let after = closed.expect("a silent connection stays open") - t0;
    assert!(
        after >= Duration::from_millis(700) && after < Duration::from_millis(1500),
        "silent connection closed after {after:?}"
    );
    let (sent, closed) = trickle.await.unwrap();
    let after = closed.expect("a slow-header connection stays open") - t0;
    assert!(
        after >= Duration::from_millis(700) && after < Duration::from_millis(1500),
        "slow-header connection closed after {after:?}"
    );
    assert_eq!(sent, "", "no answer to an incomplete head");

    // Kept alive: a request, then silence. Open past the header-read timeout (the idle
    // clock is the keep-alive one), closed at the keep-alive timeout (2 s) after the answer.
    let mut kept = connect(port).await;
    kept.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    let answered = Instant::now();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (_, closed) = until_closed(&mut kept, Duration::from_secs(5)).await;
    let after = closed.expect("a kept-alive connection stays open") - answered;
    assert!(
        after >= Duration::from_millis(1800) && after < Duration::from_millis(2800),
        "kept-alive connection closed {after:?} after its answer"
    );

    // A second request on a kept-alive connection restarts the header clock at its first
    // byte: 1.5 s idle, then a head in one go is answered.
    let mut again = connect(port).await;
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let n = again.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = until_closed(&mut again, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_bodies_are_refused() {
    let a = backend("a").await;
    let limits = ProxyLimits {
        max_body: 1 << 20,
        ..short()
    };
    let (port, _t) = route(limits, vec![healthy("a", a)]).await;

    // A small body (buffered) that stops: 408 after the body-read timeout.
    let mut s = connect(port).await;
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let t0 = Instant::now();
    let (text, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
    let after = closed.expect("stays open") - t0;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request body too slow"), "{text}");
    assert!(after < Duration::from_millis(1500), "{after:?}");

    // A streamed body (over the 64 KiB retry buffer) that trickles below the minimum
    // rate: 408, though bytes keep coming.
    let mut s = connect(port).await;
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'x'; 70_000]).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let t0 = Instant::now();
    let trickle = tokio::spawn(async move {
        while w.write_all(&[b'y'; 100]).await.is_ok() && t0.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut got)).await;
    let after = t0.elapsed();
    trickle.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // 70,000 bytes sent at once bank no more than one wait (0.8 s); the trickle (1,000 B/s
    // of 2,048 wanted) drains the bucket in about 0.8 / (1 - 1000/2048) = 1.6 s.
    assert!(after < Duration::from_secs(4), "{after:?}");

    // A head over 32 KiB: 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(40_000)
    );
    let (status, _) = request(port, &big, b"").await;
    assert_eq!(status, 431);

    // Oversized: 413 at once by Content-Length, without waiting for the body.
    let (status, body) = request(
        port,
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // Oversized and chunked: 413 once the limit is passed.
    let mut chunked = Vec::new();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 100_000).as_bytes());
        chunked.extend_from_slice(&[b'z'; 100_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = request(
        port,
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunked,
    )
    .await;
    assert_eq!(status, 413, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_idle_connections_make_room_then_new_ones_get_503() {
    let a = backend("a").await;
    let limits = ProxyLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(30),
        ..ProxyLimits::default()
    };
    let (port, _t) = route(limits, vec![healthy("a", a)]).await;

    // Four silent connections fill the route; a normal request still gets through, the
    // oldest silent one is closed for it.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(port).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = request(
        port,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!((status, body.split(' ').next()), (200, Some("a")), "{body}");
    let (_, closed) = until_closed(&mut silent[0], Duration::from_millis(500)).await;
    assert!(closed.is_some(), "the oldest silent connection was evicted");
    let (_, closed) = until_closed(&mut silent[1], Duration::from_millis(100)).await;
    assert!(closed.is_none(), "only one was evicted");

    // Four connections in the middle of their headers hold the route: a new connection
    // is answered 503 with Retry-After at once, without its request being read.
    let mut heading = Vec::new();
    for _ in 0..4 {
        let mut s = connect(port).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        heading.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let mut s = connect(port).await;
    let (text, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(
        closed.is_some() && t0.elapsed() < Duration::from_millis(500),
        "{text}"
    );
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nRetry-After: 1\r\n"), "{text}");
    assert!(text.contains("at its limit of 4 connections"), "{text}");
    // A client that sends its request at once still reads the 503 (lingering close).
    let (status, body) = request(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"").await;
    assert_eq!(status, 503, "{body}");
    // The held connections were not disturbed: each completes its request.
    for mut s in heading {
        s.write_all(b"Connection: close\r\n\r\n").await.unwrap();
        let (text, _) = until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    // Their places are free again.
    let (status, _) = request(
        port,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_intact_and_a_refused_instance_is_still_skipped() {
    let (a, b) = (backend("a").await, backend("b").await);
    let dead = drover::deploy::instance::free_port().unwrap();
    let (port, table) = route(
        ProxyLimits::default(),
        vec![healthy("dead", dead), healthy("a", a), healthy("b", b)],
    )
    .await;
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let want = hex::encode(Sha256::digest(&body));
    let mut seen = Vec::new();
    // Streamed (Content-Length over 64 KiB) and chunked: every try lands, even on the turn
    // of the refusing instance, and the instance got every byte.
    for i in 0..6 {
        let head = if i % 2 == 0 {
            format!(
                "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
        } else {
            "PUT /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                .to_string()
        };
        let payload = if i % 2 == 0 {
            body.clone()
        } else {
            let mut c = Vec::new();
            for part in body.chunks(100_000) {
                c.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                c.extend_from_slice(part);
                c.extend_from_slice(b"\r\n");
            }
            c.extend_from_slice(b"0\r\n\r\n");
            c
        };
        let (status, text) = request(port, &head, &payload).await;
        assert_eq!(status, 200, "{text}");
        let mut f = text.split(' ');
        let (name, len, sha) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        assert_eq!((len, sha), (body.len().to_string().as_str(), want.as_str()));
        seen.push(name.to_string());
    }
    assert!(
        seen.contains(&"a".into()) && seen.contains(&"b".into()),
        "{seen:?}"
    );
    // Small bodies (buffered) as before.
    let (status, text) = request(
        port,
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        b"hello",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        text.ends_with(&hex::encode(Sha256::digest(b"hello"))),
        "{text}"
    );
    // While a streamed upload is under way its instance counts it in flight (draining
    // waits for it).
    table.store(Arc::new(RouteTable::new(1, vec![healthy("a", a)])));
    let a_backend = table.load().backends[0].clone();
    let mut s = connect(port).await;
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    s.write_all(&[b'q'; 100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a_backend.in_flight(), 1);
    s.write_all(&[b'q'; 100_000]).await.unwrap();
    let (text, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("a 200000 "), "{text}");
    assert_eq!(a_backend.in_flight(), 0);
}
