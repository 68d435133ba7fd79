//! The router: an HTTP/1.1 reverse proxy (hyper 1 + hyper-util) on a stack's stable route
//! port, balancing round-robin over the healthy instances of the live release in the
//! stack's [`SharedTable`].
//!
//! Anyone who reaches the route may be hostile, so every client is bounded in time and
//! memory ([`ProxyLimits`], defaults in the constants below):
//! - **connections**: at most [`MAX_CONNECTIONS`] per route. At the cap the connection
//!   that has waited longest with nothing of a request received (new, or kept alive
//!   between requests) is closed to make room, as nginx does with its "reusable"
//!   connections; when every connection has a request under way, a new one is answered
//!   `503 Service Unavailable` with `Retry-After` at once, without reading its request
//!   (envoy's overload manager and nginx's `limit_conn` answer `503` likewise).
//! - **headers**: a request head must be complete [`HEADER_READ_TIMEOUT`] after the
//!   connection was accepted (or, on a kept-alive connection, after its first byte) and
//!   fit in [`MAX_HEAD`] bytes (else `431`); a connection that sends nothing is closed
//!   after the same time.
//! - **keep-alive**: a connection idle between requests is closed after
//!   [`KEEP_ALIVE_TIMEOUT`].
//! - **bodies**: no wait for the next body byte may exceed [`BODY_READ_TIMEOUT`], and a
//!   client may fall at most that far behind [`BODY_MIN_RATE`] (a token bucket of waiting
//!   time, so bytes sent early buy no long stall later), else `408`; at most [`MAX_BODY`]
//!   bytes (else `413`). Bodies are not buffered: one of at
//!   most [`RETRY_BUFFER`] bytes (by `Content-Length`, or read up to that) is read whole
//!   first, so a request the instance could not take (connection refused, or an idempotent
//!   request whose connection broke) is sent again to another instance; a larger body is
//!   streamed to the instance over a new connection, opened before any byte of the body
//!   is sent, so a refused connection is still retried on another instance, but a failure
//!   after that is a `502`.
//!
//! Responses stream back. Each proxied request holds an [`InFlight`] guard until its
//! response body ends, which is what draining waits for. `X-Forwarded-For`/`-Proto` are
//! set. `503` when the route has no instance, `502` when the instance failed mid-request.
//! Not bounded yet: the time a client takes to read a response (a slow reader holds its
//! connection, and the instance's while the response streams, with fixed-size buffers),
//! and the time an instance takes to answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::metrics::RouteMetrics;
use super::route::{InFlight, SharedTable};
use body::{body_error, BodyError, Upload};
use conn::{Admitted, Conns, RequestGuard, Watched};

mod body;
mod conn;
pub mod tcp;
mod upstream;

/// Largest request body the router accepts (bytes); a larger one is answered `413`
/// (at once when its `Content-Length` says so).
pub const MAX_BODY: u64 = 16 << 20;

/// Time from accepting a connection (or from the first byte of a later request on a
/// kept-alive connection) until its request head must be complete; also how long a new
/// connection may stay silent. Then it is closed. nginx's `client_header_timeout` is 60 s,
/// hyper's default 30 s; a route on this machine's network needs far less.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay open between requests (keep-alive) before it is closed
/// (nginx: 75 s, Apache: 5 s).
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for the next bytes of a request body (nginx's `client_body_timeout`,
/// 60 s); then `408`.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Slowest rate a request body may arrive at (bytes per second of waiting for the
/// client; Apache `mod_reqtimeout`'s `MinRate`, there 500). A token bucket of waiting
/// time: a request starts with [`BODY_READ_TIMEOUT`] of it, each wait for the client uses
/// it up, each byte earns `1 / BODY_MIN_RATE` s back, at most `BODY_READ_TIMEOUT` can be
/// banked; empty means `408`. A client at half this rate is cut after
/// `2 × BODY_READ_TIMEOUT`, one that stalls after `BODY_READ_TIMEOUT`, however much it
/// sent before (unlike `mod_reqtimeout`, whose credit grows without bound).
pub const BODY_MIN_RATE: u64 = 1024;

/// Most client connections one route holds at once (each costs a socket, and up to
/// [`MAX_HEAD`] bytes of buffers when it is sending; a streamed upload also a connection
/// to its instance). The agent raises its open-file limit to the hard limit at start.
pub const MAX_CONNECTIONS: usize = 4096;

/// Request bodies up to this size (bytes) are read whole before they are sent, so that
/// they can be sent again to another instance; larger ones are streamed.
pub const RETRY_BUFFER: usize = 64 << 10;

/// Largest request head (request line and headers, bytes); over it the client gets `431`.
/// Also the most hyper buffers per connection while reading. nginx allows 4 × 8 KiB.
pub const MAX_HEAD: usize = 32 << 10;

/// Longest wait for a TCP connection to an instance (on loopback it is refused or
/// accepted at once unless the instance's backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Read buffer of a connection to an instance (bytes).
const UPSTREAM_BUF: usize = 64 << 10;

/// Idle kept-alive connections to one instance the router keeps for reuse.
const UPSTREAM_IDLE: usize = 64;

/// How the router bounds its clients; [`Default`] gives the constants of this module.
/// Tests shorten the times.
#[derive(Debug, Clone)]
pub struct ProxyLimits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`KEEP_ALIVE_TIMEOUT`].
    pub keep_alive_timeout: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// See [`BODY_MIN_RATE`] (bytes per second; 0 disables the rate rule).
    pub body_min_rate: u64,
    /// See [`MAX_BODY`] (bytes).
    pub max_body: u64,
    /// See [`RETRY_BUFFER`] (bytes).
    pub retry_buffer: usize,
    /// See [`MAX_CONNECTIONS`] (at least 1).
    pub max_connections: usize,
    /// See [`MAX_HEAD`] (bytes, at least 8192: hyper's smallest buffer).
    pub max_head: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            body_min_rate: BODY_MIN_RATE,
            max_body: MAX_BODY,
            retry_buffer: RETRY_BUFFER,
            max_connections: MAX_CONNECTIONS,
            max_head: MAX_HEAD,
        }
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Who made an answer, for the route metrics.
enum Origin {
    /// An instance of this release.
    Instance(i64),
    /// The router, because no instance could (a `502`/`503`; the release of the instance
    /// that failed, when one did).
    Upstream(Option<i64>),
    /// The router, because of the client's request (`400`/`408`/`413`) or because the
    /// stack is stopped (`503`, not an upstream error).
    Router,
}
type HttpClient = Client<upstream::Upstream, Full<Bytes>>;

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

/// `text`, and the connection is closed after it (the rest of the request is unread).
fn closing(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut r = text(status, msg);
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// Serve the route on `listener` with the default [`ProxyLimits`] until the task is
/// dropped, recording nothing.
pub async fn serve(listener: tokio::net::TcpListener, stack: String, table: SharedTable) {
    serve_with(listener, stack, table, ProxyLimits::default()).await
}

/// Serve the route as [`serve`] does, counting every answer into `metrics` (the agent's
/// router: its release, class, whether the router made it, and the time to its head).
pub async fn serve_recorded(
    listener: tokio::net::TcpListener,
    stack: String,
    table: SharedTable,
    metrics: Arc<RouteMetrics>,
) {
    serve_route(
        listener,
        stack,
        table,
        ProxyLimits::default(),
        Some(metrics),
    )
    .await
}

/// One route: what every connection and request of it needs.
struct Route {
    stack: String,
    table: SharedTable,
    client: HttpClient,
    limits: ProxyLimits,
    conns: Arc<Conns>,
    http: hyper::server::conn::http1::Builder,
    metrics: Option<Arc<RouteMetrics>>,
}

/// Serve the route on `listener` with `limits` until the task is dropped. Connections
/// already accepted keep being served (each in its own task) after it is dropped.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    stack: String,
    table: SharedTable,
    limits: ProxyLimits,
) {
    serve_route(listener, stack, table, limits, None).await
}

async fn serve_route(
    listener: tokio::net::TcpListener,
    stack: String,
    table: SharedTable,
    limits: ProxyLimits,
    metrics: Option<Arc<RouteMetrics>>,
) {
    let connector = upstream::Upstream {
        table: table.clone(),
    };
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(UPSTREAM_IDLE)
        .http1_max_buf_size(UPSTREAM_BUF)
        .build(connector);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(limits.max_head.max(8192));
    let route = Arc::new(Route {
        stack,
        table,
        client,
        conns: Conns::new(limits.max_connections),
        limits,
        http,
        metrics,
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors, mostly: let connections end before the next try.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(admitted) = route.conns.admit() else {
            conn::reject(&route.conns, stream, &route.stack, &route.limits);
            continue;
        };
        tokio::spawn(route.clone().serve_conn(stream, peer, admitted));
    }
}

impl Route {
    /// One client connection, from its first byte to its close (by either side, or by
    /// the watchdog: header or keep-alive timeout, eviction).
    async fn serve_conn(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        admitted: Admitted,
    ) {
        let conn = admitted.conn.clone();
        let mut stream = stream;
        let Some(head) = conn::first_head(&mut stream, &conn, &self.limits).await else {
            return;
        };
        let route = self.clone();
        let c = conn.clone();
        let svc = hyper::service::service_fn(move |req| {
            c.begin_request();
            let guard = RequestGuard(c.clone());
            let route = route.clone();
            async move {
                let t0 = std::time::Instant::now();
                let (resp, origin) = route.proxy(req, peer).await;
                if let Some(m) = &route.metrics {
                    let (release, upstream) = match origin {
                        Origin::Instance(r) => (r, false),
                        Origin::Upstream(r) => {
                            (r.unwrap_or_else(|| route.table.load().release), true)
                        }
                        Origin::Router => (route.table.load().release, false),
                    };
                    m.record(release, resp.status().as_u16(), upstream, t0.elapsed());
                }
                let (p, b) = resp.into_parts();
                let b = b
                    .map_frame(move |f| {
                        let _ends_the_request = &guard;
                        f
                    })
                    .boxed();
                Ok::<_, Infallible>(Response::from_parts(p, b))
            }
        });
        let io = TokioIo::new(Watched {
            stream,
            conn: conn.clone(),
            rewind: head,
            rewound: 0,
        });
        conn::watch(self.http.serve_connection(io, svc), &conn, &self.limits).await;
        drop(admitted);
    }

    /// The answer to `req` and who made it.
    async fn proxy(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> (Response<ProxyBody>, Origin) {
        let (parts, body) = req.into_parts();
        let limits = &self.limits;
        let hint = body.size_hint();
        if hint.lower() > limits.max_body {
            return (
                closing(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {} bytes", limits.max_body),
                ),
                Origin::Router,
            );
        }
        let mut upload = Upload::new(body, limits);
        let whole = if hint.lower() > limits.retry_buffer as u64 {
            None
        } else {
            match upload.buffer(limits.retry_buffer).await {
                Ok(b) => b,
                Err(e) => return (self.body_failed(&e), Origin::Router),
            }
        };
        match whole {
            Some(bytes) => self.forward_buffered(&parts, bytes, peer).await,
            None => self.forward_streamed(&parts, upload, peer).await,
        }
    }

    /// The answer when reading the client's body failed.
    fn body_failed(&self, e: &BodyError) -> Response<ProxyBody> {
        let l = &self.limits;
        match e {
            BodyError::TimedOut => closing(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body too slow (nothing for {} s, or under {} bytes/s)",
                    l.body_read_timeout.as_secs_f64(),
                    l.body_min_rate
                ),
            ),
            BodyError::TooLarge => closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {} bytes", l.max_body),
            ),
            BodyError::Client(e) => closing(
                StatusCode::BAD_REQUEST,
                format!("request body unreadable: {e}"),
            ),
        }
    }

    /// The request to an instance: `parts` with hop-by-hop headers dropped and the
    /// forwarding headers set.
    fn outgoing(
        parts: &hyper::http::request::Parts,
        peer: std::net::SocketAddr,
        backend: &super::route::Backend,
    ) -> hyper::http::request::Builder {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut out = Request::builder()
            .method(parts.method.clone())
            .uri(format!("http://{}{pq}", backend.authority()));
        if !parts.headers.contains_key(hyper::header::HOST) {
            // Else the client would send the pool's name for the backend.
            out = out.header(hyper::header::HOST, format!("127.0.0.1:{}", backend.port));
        }
        let mut forwarded_for = peer.ip().to_string();
        for (k, v) in parts.headers.iter() {
            if k == "x-forwarded-for" {
                forwarded_for = format!("{}, {forwarded_for}", v.to_str().unwrap_or(""));
            } else if !HOP_BY_HOP.contains(&k.as_str()) && k != "x-forwarded-proto" {
                out = out.header(k, v);
            }
        }
        out.header("x-forwarded-for", forwarded_for)
            .header("x-forwarded-proto", "http")
    }

    /// The instance's response, hop-by-hop headers dropped, holding `guard` (in flight)
    /// until its body ends.
    fn respond(resp: Response<Incoming>, guard: InFlight) -> Response<ProxyBody> {
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
        Response::from_parts(p, b)
    }

    /// `503` for nothing (left) to send the request to, and who made it: the router on
    /// purpose when the stack is stopped, else an upstream error.
    fn no_instance(&self, last_error: &str) -> (Response<ProxyBody>, Origin) {
        let origin = if self.table.load().stopped.is_some() {
            Origin::Router
        } else {
            Origin::Upstream(None)
        };
        (self.unavailable(last_error), origin)
    }

    /// `503`: nothing (left) to send the request to.
    fn unavailable(&self, last_error: &str) -> Response<ProxyBody> {
        let stack = &self.stack;
        let table = self.table.load();
        let release = table.release;
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            if let Some(note) = &table.stopped {
                format!(
                    "stack {stack} is stopped ({note}); release {release} starts again with \
                     `drover start {stack}`"
                )
            } else if release == 0 {
                format!("stack {stack} has no live release yet: run `drover deploy {stack}`")
            } else if last_error.is_empty() {
                format!("no instance of {stack} release {release} is available")
            } else {
                format!("no instance of {stack} release {release} answered ({last_error})")
            },
        )
    }

    /// A request whose whole body is in memory: sent again to another instance when the
    /// connection is refused (or, idempotent, when it broke), up to 4 tries.
    async fn forward_buffered(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
        peer: std::net::SocketAddr,
    ) -> (Response<ProxyBody>, Origin) {
        let idempotent = matches!(
            parts.method,
            hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
        );
        let mut tried: Vec<String> = Vec::new();
        let mut last_error = String::new();
        for _ in 0..4 {
            let t = self.table.load();
            let Some(backend) = t.pick(&tried) else {
                break;
            };
            let guard = backend.begin();
            let out = match Self::outgoing(parts, peer, &backend).body(Full::new(body.clone())) {
                Ok(r) => r,
                Err(e) => {
                    return (
                        text(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
                        Origin::Router,
                    )
                }
            };
            match self.client.request(out).await {
                Ok(resp) => {
                    return (
                        Self::respond(resp, guard),
                        Origin::Instance(backend.release),
                    )
                }
                Err(e) if e.is_connect() || idempotent => {
                    last_error = format!("instance {}: {e}", backend.instance);
                    tried.push(backend.instance.clone());
                }
                Err(e) => {
                    return (
                        text(
                            StatusCode::BAD_GATEWAY,
                            format!("instance {} failed: {e}", backend.instance),
                        ),
                        Origin::Upstream(Some(backend.release)),
                    )
                }
            }
        }
        self.no_instance(&last_error)
    }

    /// A request whose body is streamed: a new connection to an instance (another one
    /// when it is refused, up to 4 tries), then the body as it arrives; no retry after
    /// the first byte was sent.
    async fn forward_streamed(
        &self,
        parts: &hyper::http::request::Parts,
        upload: Upload,
        peer: std::net::SocketAddr,
    ) -> (Response<ProxyBody>, Origin) {
        let mut tried: Vec<String> = Vec::new();
        let mut last_error = String::new();
        let mut upload = Some(upload);
        for _ in 0..4 {
            let t = self.table.load();
            let Some(backend) = t.pick(&tried) else {
                break;
            };
            let guard = backend.begin();
            let connect = backend.connect();
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    last_error = format!("instance {}: {e}", backend.instance);
                    tried.push(backend.instance.clone());
                    continue;
                }
                Err(_) => {
                    last_error = format!("instance {}: connect timed out", backend.instance);
                    tried.push(backend.instance.clone());
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handshake = hyper::client::conn::http1::Builder::new()
                .max_buf_size(UPSTREAM_BUF)
                .handshake(TokioIo::new(stream))
                .await;
            let (mut sender, connection) = match handshake {
                Ok(h) => h,
                Err(e) => {
                    return (
                        text(
                            StatusCode::BAD_GATEWAY,
                            format!("instance {} failed: {e}", backend.instance),
                        ),
                        Origin::Upstream(Some(backend.release)),
                    )
                }
            };
            // Ends once the response is over (the sender is dropped below).
            tokio::spawn(async move {
                let _ = connection.await;
            });
            // Boxed: hyper queues the request in a channel block of 32 such slots.
            let Some(body) = upload.take().map(Box::new) else {
                break;
            };
            let out = match Self::outgoing(parts, peer, &backend).body(body) {
                Ok(r) => r,
                Err(e) => {
                    return (
                        text(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
                        Origin::Router,
                    )
                }
            };
            return match sender.send_request(out).await {
                Ok(resp) => (
                    Self::respond(resp, guard),
                    Origin::Instance(backend.release),
                ),
                Err(e) => match body_error(&e) {
                    Some(b) => (self.body_failed(b), Origin::Router),
                    None => (
                        text(
                            StatusCode::BAD_GATEWAY,
                            format!("instance {} failed: {e}", backend.instance),
                        ),
                        Origin::Upstream(Some(backend.release)),
                    ),
                },
            };
        }
        self.no_instance(&last_error)
    }
}

#[cfg(test)]
mod tests;
