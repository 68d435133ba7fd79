//! Route throughput with and without the route metrics (issue #13: recording must cost
//! less than 5 % of the route's throughput). One process: a hyper backend answering
//! `200 ok`, the router in front of it (`proxy::serve` vs `proxy::serve_recorded`), and
//! 16 keep-alive client connections sending `GET /` back to back for 3 s per round.
//! Rounds alternate (plain, recorded, plain, recorded, …) so drift hits both alike; the
//! medians and their ratio are printed. `cargo bench --bench route`.

// Benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover::deploy::metrics::RouteMetrics;
use drover::deploy::proxy;
use drover::deploy::route::{empty_table, Backend, RouteTable};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;

const CONNECTIONS: usize = 16;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;

async fn backend() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok\n"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

/// Requests per second through a route on `port` over [`ROUND`].
async fn round(port: u16) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let _ = s.set_nodelay(true);
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let req = hyper::Request::get("/")
                    .header("host", "bench")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = tx.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(ROUND).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = backend().await;
        let route = |recorded: bool| async move {
            let table = empty_table();
            let be = Backend::new("i", 1, b);
            be.set_healthy(true);
            table.store(Arc::new(RouteTable::new(1, vec![be])));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let metrics = Arc::new(RouteMetrics::default());
            if recorded {
                tokio::spawn(proxy::serve_recorded(
                    l,
                    "bench".into(),
                    table,
                    metrics.clone(),
                ));
            } else {
                tokio::spawn(proxy::serve(l, "bench".into(), table));
            }
            (port, metrics)
        };
        let (plain, _) = route(false).await;
        let (recorded, metrics) = route(true).await;
        // Warm both (connections, pools).
        round(plain).await;
        round(recorded).await;
        metrics.take();
        let (mut p, mut r) = (Vec::new(), Vec::new());
        let mut counted = 0;
        for i in 0..ROUNDS {
            p.push(round(plain).await);
            r.push(round(recorded).await);
            counted += metrics
                .take()
                .iter()
                .map(|(_, _, b)| b.requests)
                .sum::<u64>();
            println!(
                "round {}: plain {:.0} req/s, recorded {:.0} req/s",
                i + 1,
                p[i],
                r[i]
            );
        }
        let (mp, mr) = (median(p), median(r));
        println!(
            "route throughput, {CONNECTIONS} keep-alive connections, {ROUNDS} rounds of {ROUND:?}: \
             plain {mp:.0} req/s, recorded {mr:.0} req/s (median), recording costs {:+.1} % \
             ({counted} requests counted)",
            (mp - mr) / mp * 100.0
        );
    });
}
