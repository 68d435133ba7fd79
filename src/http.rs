//! The one HTTP client setup for drover's outgoing requests (apt repositories, vulnerability
//! feeds, language registries, webhooks): `drover/VERSION` as the user agent, a per-use
//! total timeout, and TLS by rustls with the system's native roots (the `reqwest` features
//! in Cargo.toml).

use std::time::Duration;

/// The `User-Agent` drover sends: `drover/` and the crate version.
pub const USER_AGENT: &str = concat!("drover/", env!("CARGO_PKG_VERSION"));

/// A blocking client builder with drover's user agent and a total per-request `timeout`
/// (connect, send and read the whole answer). Callers add what only they need (e.g. a
/// connect timeout) and call `build()`, which fails only when TLS cannot be set up.
pub fn client_builder(timeout: Duration) -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
}
