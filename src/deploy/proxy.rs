//! The router: an HTTP/1.1 reverse proxy (hyper 1 + hyper-util) on a stack's stable route
//! port, balancing round-robin over the healthy instances of the live release in the
//! stack's [`SharedTable`].
//!
//! Request bodies are buffered (up to 16 MiB, else `413`) so a request that could not be
//! delivered (connection refused, or an idempotent request whose connection broke) is
//! retried on another instance; responses stream back. Each proxied request holds an
//! [`InFlight`](super::route::InFlight) guard until its response body ends, which is what
//! draining waits for. `503` when the route has no instance, `502` when the instance
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
        let (stream, _) = match listener.accept().await {
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
                async move { Ok::<_, Infallible>(proxy(req, &stack, &table, &client).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn proxy(
    req: Request<Incoming>,
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
        for (k, v) in parts.headers.iter() {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                out = out.header(k, v);
            }
        }
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
