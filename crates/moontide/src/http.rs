//! The one way Moontide builds HTTP clients: rustls, a timeout, its own
//! User-Agent.

use std::time::Duration;

/// A client whose every request times out after `timeout`.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("moontide/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}
