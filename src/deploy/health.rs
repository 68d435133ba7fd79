//! Active health checks: one `GET [health].path` on an instance (inside its network
//! namespace, through [`Backend::connect`]), its status and the start of its body; or, for
//! a `protocol = "tcp"` stack without a `[health] command`, one TCP connect. (A `command`
//! check runs in a sandbox: [`crate::deploy::instance::check_command`].)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::route::Backend;

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// HTTP status, if a response came back.
    pub status: Option<u16>,
    /// What happened: the body's first 200 characters, the command's exit and last
    /// line, or the connection error.
    pub detail: String,
    /// Whether the check passed (HTTP: 2xx within the timeout).
    passed: bool,
}

impl CheckResult {
    /// A passed check that is not HTTP (a command, a TCP connect).
    pub fn passed(detail: String) -> CheckResult {
        CheckResult {
            status: None,
            detail,
            passed: true,
        }
    }

    /// A failed check: an HTTP `status` that is not 2xx, or none (with what happened).
    pub fn failed(status: Option<u16>, detail: String) -> CheckResult {
        CheckResult {
            status,
            detail,
            passed: false,
        }
    }

    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.passed
    }
}

impl std::fmt::Display for CheckResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}, body {:?}", self.detail),
            None if self.passed => write!(f, "passed: {}", self.detail),
            None => write!(f, "no response: {}", self.detail),
        }
    }
}

/// One TCP check: a connection to the backend's `127.0.0.1:port` (inside its network
/// namespace) opens within `timeout`, and is closed again at once.
pub async fn check_tcp(backend: &Backend, timeout: Duration) -> CheckResult {
    match tokio::time::timeout(timeout, backend.connect()).await {
        Err(_) => CheckResult::failed(None, format!("connect timed out after {timeout:?}")),
        Ok(Err(e)) => CheckResult::failed(None, e.to_string()),
        Ok(Ok(_)) => CheckResult::passed(format!("TCP port {} accepts", backend.port)),
    }
}

/// One active health check: `GET path` on the backend's `127.0.0.1:port` (inside its
/// network namespace) with `timeout`.
pub async fn check(backend: &Backend, path: &str, timeout: Duration) -> CheckResult {
    let port = backend.port;
    let fut = async {
        let mut s = backend.connect().await?;
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: drover-health\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(65536).read_to_end(&mut buf).await?;
        Ok::<Vec<u8>, std::io::Error>(buf)
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => CheckResult::failed(None, format!("timed out after {timeout:?}")),
        Ok(Err(e)) => CheckResult::failed(None, e.to_string()),
        Ok(Ok(buf)) => {
            let text = String::from_utf8_lossy(&buf);
            let status = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok());
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            CheckResult {
                status,
                detail: body.trim().chars().take(200).collect(),
                passed: status.is_some_and(|s| (200..300).contains(&s)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_report_status_body_and_refusals() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\nnot ready")
                .await
                .unwrap();
        });
        let b = Backend::new("b", 1, port);
        let r = check(&b, "/up", Duration::from_secs(2)).await;
        assert_eq!(r.status, Some(503));
        assert_eq!(r.detail, "not ready");
        assert!(!r.ok());
        let dead = Backend::new("d", 1, crate::deploy::instance::free_port().unwrap());
        let r = check(&dead, "/up", Duration::from_secs(2)).await;
        assert_eq!(r.status, None);
        assert!(!r.ok());
        assert!(!check_tcp(&dead, Duration::from_secs(2)).await.ok());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = Backend::new("o", 1, l.local_addr().unwrap().port());
        let r = check_tcp(&open, Duration::from_secs(2)).await;
        assert!(r.ok(), "{r}");
    }
}
