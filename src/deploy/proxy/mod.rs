//! The router: an HTTP/1.1 reverse proxy (hyper 1 + hyper-util) on a stack's stable route
//! port, balancing round-robin over the healthy instances of the live release in the
//! stack's [`SharedTable`].
//!
//! Request bodies are buffered (up to 16 MiB, else `413`) so a request that could not be
//! delivered (connection refused, or an idempotent request whose connection broke) is
//! retried on another instance; responses stream back. Each proxied request holds an
//! [`InFlight`](super::route::InFlight) guard until its response body ends, which is what
//! draining waits for. `X-Forwarded-For`/`-Proto` are set. `503` when the route has no instance, `502` when the instance
//! failed mid-request.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::route::SharedTable;

/// Largest request body the router accepts (bytes).
pub const MAX_BODY: usize = 16 << 20;

type ProxyBody = BoxBody<Bytes, hyper::Error>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn text(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serve the route on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, stack: String, table: SharedTable) {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (table, client, stack) = (table.clone(), client.clone(), stack.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (table, client, stack) = (table.clone(), client.clone(), stack.clone());
                async move { Ok::<_, Infallible>(proxy(req, peer, &stack, &table, &client).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn proxy(
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    stack: &str,
    table: &SharedTable,
    client: &HttpClient,
) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes or unreadable"),
            )
        }
    };
    let idempotent = matches!(
        parts.method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    );
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let mut tried: Vec<String> = Vec::new();
    let mut last_error = String::new();
    for _ in 0..4 {
        let t = table.load();
        let Some(backend) = t.pick(&tried) else {
            break;
        };
        let guard = backend.begin();
        let mut out = Request::builder()
            .method(parts.method.clone())
            .uri(format!("http://127.0.0.1:{}{pq}", backend.port));
        let mut forwarded_for = peer.ip().to_string();
        for (k, v) in parts.headers.iter() {
            if k == "x-forwarded-for" {
                forwarded_for = format!("{}, {forwarded_for}", v.to_str().unwrap_or(""));
            } else if !HOP_BY_HOP.contains(&k.as_str()) && k != "x-forwarded-proto" {
                out = out.header(k, v);
            }
        }
        out = out
            .header("x-forwarded-for", forwarded_for)
            .header("x-forwarded-proto", "http");
        let out = match out.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
        };
        match client.request(out).await {
            Ok(resp) => {
                let (mut p, b) = resp.into_parts();
                for h in HOP_BY_HOP {
                    p.headers.remove(*h);
                }
                let b = b
                    .map_frame(move |f| {
                        let _keep = &guard;
                        f
                    })
                    .boxed();
                return Response::from_parts(p, b);
            }
            Err(e) if e.is_connect() || idempotent => {
                last_error = format!("instance {}: {e}", backend.instance);
                tried.push(backend.instance.clone());
            }
            Err(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("instance {} failed: {e}", backend.instance),
                )
            }
        }
    }
    let release = table.load().release;
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        if release == 0 {
            format!("stack {stack} has no live release yet: run `drover deploy {stack}`")
        } else if last_error.is_empty() {
            format!("no instance of {stack} release {release} is available")
        } else {
            format!("no instance of {stack} release {release} answered ({last_error})")
        },
    )
}

#[cfg(test)]
mod tests {
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
}
