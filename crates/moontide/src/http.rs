//! The one way Moontide builds HTTP clients: rustls, a timeout, its own
//! User-Agent.

use std::time::Duration;

/// A client whose every request times out after `timeout`.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout).build().map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The same, but never following redirects (a redirect is returned as it is):
/// for requests whose destination is checked against an allow list.
pub fn client_without_redirects(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The common settings, for clients that need more (CA files, client certificates).
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(timeout).user_agent(concat!("moontide/", env!("CARGO_PKG_VERSION")))
}
