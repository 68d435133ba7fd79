//! A request body on its way from the client to an instance ([`Upload`]): read under the
//! body deadlines ([`ProxyLimits::body_read_timeout`], [`ProxyLimits::body_min_rate`]) and
//! the size limit ([`ProxyLimits::max_body`]), either buffered whole when it is small (so
//! a refused request can be sent again) or streamed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::ProxyLimits;

/// Why a request body could not be read.
#[derive(Debug)]
pub(super) enum BodyError {
    /// The client sent too slowly: no byte for [`ProxyLimits::body_read_timeout`], or
    /// less than [`ProxyLimits::body_min_rate`] on average.
    TimedOut,
    /// More than [`ProxyLimits::max_body`] bytes.
    TooLarge,
    /// The client's connection failed (reset, or the body ended before its length).
    Client(hyper::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TimedOut => write!(f, "the request body arrived too slowly"),
            BodyError::TooLarge => write!(f, "the request body is too large"),
            BodyError::Client(e) => write!(f, "the request body is unreadable: {e}"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Client(e) => Some(e),
            _ => None,
        }
    }
}

/// The [`BodyError`] somewhere in `e`'s chain of causes (an upstream request that failed
/// because its body, the client's upload, failed).
pub(super) fn body_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<BodyError>() {
            return Some(b);
        }
        cur = e.source();
    }
    None
}

/// The client's request body: what was already read (`prefix`), then the rest of the
/// client's stream, under a token bucket of waiting time: the client starts with
/// `body_read_timeout` of it, every wait for its next bytes uses it up, every byte earns
/// `1 / body_min_rate` s back, and at most `body_read_timeout` can be banked. So no wait
/// lasts longer than `body_read_timeout`, and a client below `body_min_rate` on average
/// runs out (one at half the rate after `2 × body_read_timeout`), however much it sent
/// before. Only the time spent waiting for the client counts, not the time the instance
/// takes to accept what was sent.
pub(super) struct Upload {
    prefix: Option<Bytes>,
    rest: Option<Incoming>,
    received: u64,
    max: u64,
    read_timeout: Duration,
    min_rate: u64,
    waiting_since: Option<Instant>,
    /// Waiting time left (at most `read_timeout`).
    balance: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Upload {
    pub(super) fn new(body: Incoming, limits: &ProxyLimits) -> Upload {
        Upload {
            prefix: None,
            rest: Some(body),
            received: 0,
            max: limits.max_body,
            read_timeout: limits.body_read_timeout,
            min_rate: limits.body_min_rate,
            waiting_since: None,
            balance: limits.body_read_timeout,
            sleep: None,
        }
    }

    /// Read up to `limit` bytes (plus at most one frame) into memory. `Ok(Some(bytes))`:
    /// that was the whole body. `Ok(None)`: the body is longer; what was read stays at
    /// the front of this upload, which is then streamed.
    pub(super) async fn buffer(&mut self, limit: usize) -> Result<Option<Bytes>, BodyError> {
        let mut buf = BytesMut::new();
        while buf.len() <= limit {
            match self.frame().await {
                None => {
                    self.rest = None;
                    return Ok(Some(buf.freeze()));
                }
                Some(frame) => {
                    // Trailers of a small body are dropped (as the buffered path always did).
                    if let Ok(data) = frame?.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
            }
        }
        self.prefix = Some(buf.freeze());
        Ok(None)
    }

    /// Settle the bucket after a wait of `waited` that brought `bytes`.
    fn settle(&mut self, waited: Duration, bytes: u64) {
        // No rate rule (0): every wait gets the whole timeout back.
        let earned = bytes
            .saturating_mul(1_000_000)
            .checked_div(self.min_rate)
            .map_or(Duration::MAX, Duration::from_micros);
        self.balance = self
            .balance
            .saturating_sub(waited)
            .saturating_add(earned)
            .min(self.read_timeout);
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let start = *this.waiting_since.get_or_insert_with(Instant::now);
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(r) => {
                this.waiting_since = None;
                let bytes = match &r {
                    Some(Ok(f)) => f.data_ref().map_or(0, |d| d.len() as u64),
                    _ => 0,
                };
                this.settle(start.elapsed(), bytes);
                match r {
                    None => {
                        this.rest = None;
                        Poll::Ready(None)
                    }
                    Some(Err(e)) => {
                        this.rest = None;
                        Poll::Ready(Some(Err(BodyError::Client(e))))
                    }
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            this.received = this.received.saturating_add(d.len() as u64);
                            if this.received > this.max {
                                this.rest = None;
                                return Poll::Ready(Some(Err(BodyError::TooLarge)));
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::from_std(start + this.balance);
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.rest = None;
                        Poll::Ready(Some(Err(BodyError::TimedOut)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.as_ref().is_none_or(|p| p.is_empty())
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = SizeHint::with_exact(self.prefix.as_ref().map_or(0, |p| p.len() as u64));
        match &self.rest {
            Some(r) => prefix + r.size_hint(),
            None => prefix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_time_is_a_bucket_refilled_by_bytes_and_capped_at_one_wait() {
        let limits = ProxyLimits {
            body_read_timeout: Duration::from_secs(10),
            body_min_rate: 1000,
            ..ProxyLimits::default()
        };
        let mut u = Upload {
            prefix: None,
            rest: None,
            received: 0,
            max: limits.max_body,
            read_timeout: limits.body_read_timeout,
            min_rate: limits.body_min_rate,
            waiting_since: None,
            balance: limits.body_read_timeout,
            sleep: None,
        };
        // 4 s waited for 2,000 bytes: 10 - 4 + 2 = 8 s left.
        u.settle(Duration::from_secs(4), 2000);
        assert_eq!(u.balance, Duration::from_secs(8));
        // A burst earns no more than one full wait: 16 MiB sent fast, then a stall, is cut
        // after 10 s, not after hours.
        u.settle(Duration::from_millis(1), 16 << 20);
        assert_eq!(u.balance, Duration::from_secs(10));
        // Half the rate drains the bucket: 1 s waited per 500 bytes loses 0.5 s each time.
        for _ in 0..19 {
            u.settle(Duration::from_secs(1), 500);
        }
        assert_eq!(u.balance, Duration::from_millis(500));
        u.settle(Duration::from_millis(500), 0);
        assert_eq!(u.balance, Duration::ZERO, "the timer fires here");
        // No rate rule: each wait gets the full timeout again.
        u.min_rate = 0;
        u.settle(Duration::from_secs(9), 1);
        assert_eq!(u.balance, Duration::from_secs(10));
    }
}
