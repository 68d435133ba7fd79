//! The router's connector for its pooled client: a URI names a backend
//! ([`Backend::authority`], `bKEY.invalid:PORT`), and a connection to it is made the way the
//! backend says ([`Backend::connect`]: inside the instance's network namespace). The pool
//! keys connections by that authority, so two instances listening on the same port in
//! their own namespaces never share one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;

use super::CONNECT_TIMEOUT;
use crate::deploy::route::SharedTable;

/// A `tower_service::Service<Uri>` for `hyper_util`'s legacy client: finds the backend of
/// the URI's host in the route's current table and connects to it within
/// [`CONNECT_TIMEOUT`].
#[derive(Clone)]
pub(super) struct Upstream {
    pub(super) table: SharedTable,
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<tokio::net::TcpStream>>> + Send>>;

impl tower_service::Service<hyper::Uri> for Upstream {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let host = uri.host().unwrap_or("").to_string();
        let backend = self
            .table
            .load()
            .backends
            .iter()
            .find(|b| b.is_host(&host))
            .cloned();
        Box::pin(async move {
            let Some(b) = backend else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the instance left the route",
                ));
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, b.connect()).await {
                Ok(r) => r.map(TokioIo::new),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )),
            }
        })
    }
}
