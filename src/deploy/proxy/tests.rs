//! The router against tiny backends: balancing, retries, the atomic switch, metrics.

use super::*;
use crate::deploy::route::{empty_table, Backend, RouteTable};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny HTTP backend answering every request with `name` after `delay`.
async fn backend(name: &'static str, delay: Duration) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                            name.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    port
}

async fn get(port: u16) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /x?y=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

fn healthy(id: &str, release: i64, port: u16) -> Arc<Backend> {
    let b = Backend::new(id, release, port);
    b.set_healthy(true);
    b
}

#[tokio::test]
async fn router_balances_retries_refused_instances_and_switches_atomically() {
    let table = empty_table();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = l.local_addr().unwrap().port();
    tokio::spawn(serve(l, "s".into(), table.clone()));

    // No live release yet: 503 naming the fix.
    let (status, body) = get(route).await;
    assert_eq!(status, 503);
    assert!(body.contains("drover deploy s"), "{body}");

    // Two healthy instances of release 1, plus one whose port refuses connections.
    let (a, b) = (
        backend("a", Duration::ZERO).await,
        backend("b", Duration::ZERO).await,
    );
    let dead = crate::deploy::instance::free_port().unwrap();
    table.store(Arc::new(RouteTable::new(
        1,
        vec![
            healthy("a", 1, a),
            healthy("dead", 1, dead),
            healthy("b", 1, b),
        ],
    )));
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (status, body) = get(route).await;
        assert_eq!(status, 200, "a refused instance is retried on another");
        seen.push(body);
    }
    assert!(
        seen.contains(&"a".into()) && seen.contains(&"b".into()),
        "{seen:?}"
    );

    // A slow request on release 1 keeps its in-flight guard across the switch.
    let slow = backend("slow-old", Duration::from_millis(400)).await;
    let old = healthy("old", 1, slow);
    table.store(Arc::new(RouteTable::new(1, vec![old.clone()])));
    let pending = tokio::spawn(get(route));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(old.in_flight(), 1);
    table.store(Arc::new(RouteTable::new(2, vec![healthy("a", 2, a)])));
    assert_eq!(
        get(route).await.1,
        "a",
        "new requests go to the new release"
    );
    assert_eq!(pending.await.unwrap(), (200, "slow-old".to_string()));
    assert_eq!(old.in_flight(), 0, "drained");
}

#[tokio::test]
async fn the_recorded_router_counts_answers_by_release_and_who_made_them() {
    let table = empty_table();
    let metrics = Arc::new(RouteMetrics::default());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = l.local_addr().unwrap().port();
    tokio::spawn(serve_recorded(
        l,
        "s".into(),
        table.clone(),
        metrics.clone(),
    ));
    assert_eq!(get(route).await.0, 503, "no live release");
    let a = backend("a", Duration::ZERO).await;
    table.store(Arc::new(RouteTable::new(4, vec![healthy("a", 4, a)])));
    for _ in 0..3 {
        assert_eq!(get(route).await.0, 200);
    }
    let mut taken = metrics.take();
    taken.sort_by_key(|(r, _, _)| *r);
    assert_eq!(taken.len(), 2, "{taken:?}");
    let (none, four) = (&taken[0], &taken[1]);
    assert_eq!((none.0, none.2.requests, none.2.upstream_errors), (0, 1, 1));
    assert_eq!(none.2.server_errors(), 1);
    assert_eq!((four.0, four.2.requests, four.2.by_class[1]), (4, 3, 3));
    assert_eq!(four.2.upstream_errors, 0);
    assert!(four.2.latency_ms(0.5).is_some());
}
