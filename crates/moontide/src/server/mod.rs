//! Moontide's own HTTP server, run by `moontide run`: the API (see
//! [`api`]), and the endpoint `push` sources receive values on.
//!
//! It listens on 127.0.0.1:9464 unless `[server] listen` says otherwise. It
//! serves other hosts only over TLS and with at least one API token: bearer
//! tokens must not cross a network in clear text, and an open API must not
//! be reachable from it.

pub mod api;
pub mod auth;
mod openapi;
mod push;
pub mod tls;

use crate::sources::push::Push;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port (default 127.0.0.1:9464).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// API tokens, by hash.
    #[serde(default)]
    pub tokens: Vec<auth::TokenConfig>,
    /// TLS (needed to listen on anything but loopback).
    #[serde(default)]
    pub tls: Option<tls::TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: default_listen(), tokens: Vec::new(), tls: None }
    }
}

impl ServerConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs: Vec<String> = self.tokens.iter().flat_map(|t| t.validate()).collect();
        let mut names = std::collections::BTreeSet::new();
        for t in &self.tokens {
            if !names.insert(&t.name) {
                errs.push(format!("tokens: the name `{}` is used twice", t.name));
            }
        }
        errs.extend(self.validate_listen());
        if let Some(t) = &self.tls
            && let Err(e) = t.server_config()
        {
            errs.push(format!("tls: {e}"));
        }
        errs
    }

    fn validate_listen(&self) -> Vec<String> {
        match self.listen.parse::<SocketAddr>() {
            Err(_) => vec![format!("listen: `{}` is not an address and port, like \"127.0.0.1:9464\"", self.listen)],
            Ok(a) if !a.ip().is_loopback() && (self.tls.is_none() || self.tokens.is_empty()) => vec![format!(
                "listen: `{}` is not a loopback address: Moontide serves other hosts only with [server.tls] \
                 (tokens must not cross the network in clear text) and at least one [[server.tokens]] \
                 (an open API must not be reachable from it)",
                self.listen
            )],
            Ok(_) => Vec::new(),
        }
    }

    /// The address (checked by `validate`).
    pub fn addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| format!("`{}` is not an address and port", self.listen))
    }
}

/// What a config declares that the server serves; swapped whole on a config reload.
#[derive(Clone, Default)]
pub struct Live {
    /// `push` sources by name.
    pub pushes: BTreeMap<String, Arc<Push>>,
    /// Each policy's control, by name.
    pub controls: BTreeMap<String, Arc<crate::engine::control::Control>>,
    /// The API tokens.
    pub tokens: Vec<auth::TokenConfig>,
    /// In a cluster: where operators' changes are shared with the other instances.
    pub shared_controls: Option<Arc<dyn crate::engine::shared::SharedControls>>,
}

/// A config reload asked for through the API: the reply is a summary, or the new config's problems.
pub struct ReloadRequest {
    /// Who asked (a token's name).
    pub by: String,
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Result<String, Vec<String>>>,
}

/// What the API works on besides the live part.
#[derive(Clone)]
pub struct ApiState {
    /// Decisions and the audit log.
    pub store: crate::store::Store,
    /// Every decision as it is made (for the event stream; kept across reloads).
    pub decisions: tokio::sync::broadcast::Sender<moontide_core::Decision>,
    /// The engine's clock.
    pub clock: Arc<dyn moontide_core::Clock>,
    /// Where reload requests go (absent: reloading is not offered).
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
}

/// What the server serves.
pub struct State {
    /// The config's part, swapped on reload.
    pub live: std::sync::RwLock<Live>,
    /// The API (absent: only pushes are served).
    pub api: Option<ApiState>,
    /// Refused pushes audited lately, by source and status (see `push::receive`).
    push_refusals: std::sync::Mutex<push::Refusals>,
}

impl State {
    /// A server state.
    pub fn new(live: Live, api: Option<ApiState>) -> Arc<State> {
        Arc::new(State { live: std::sync::RwLock::new(live), api, push_refusals: Default::default() })
    }

    /// A copy of the live part.
    pub fn live(&self) -> Live {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the live part (after a reload).
    pub fn swap(&self, live: Live) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = live;
    }
}

/// The routes.
pub fn router(state: Arc<State>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(dashboard))
        .merge(api::routes())
        .route("/push/{source}", axum::routing::post(push::receive))
        .layer(axum::extract::DefaultBodyLimit::max(push::BODY_LIMIT))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Errors axum answers itself (no route, a wrong method, a body over the
/// limit) come as plain text or empty: they are sent as JSON
/// `{"error": "..."}` like the API's own.
async fn json_errors(resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    let status = resp.status();
    let json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such path: the API's paths are listed in /api/v1/openapi.json".to_string(),
        // axum sends no Allow header to list them
        StatusCode::METHOD_NOT_ALLOWED => {
            "method not allowed here: /api/v1/openapi.json lists each path's methods".to_string()
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!("the body is over the limit of {} KiB", push::BODY_LIMIT / 1024),
        _ => {
            let text = axum::body::to_bytes(resp.into_body(), push::BODY_LIMIT).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text).trim().to_string();
            if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text }
        }
    };
    error(status, message)
}

/// Binds `addr` and serves (over TLS when `tls` is given) until `shutdown`
/// turns true; returns the bound address.
pub async fn start(
    addr: SocketAddr,
    state: Arc<State>,
    tls: Option<&tls::TlsConfig>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let app = router(state);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Some(tls) = tls {
        let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config()?);
        let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let handle = axum_server::Handle::new();
        let server =
            axum_server::from_tcp_rustls(listener, config).map_err(|e| format!("cannot serve on {bound}: {e}"))?;
        let h = handle.clone();
        let task = tokio::spawn(async move {
            tokio::spawn(async move {
                stop.await;
                h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            if let Err(e) = server.handle(handle).serve(app.into_make_service()).await {
                tracing::error!(target: "moontide::server", "server stopped: {e}");
            }
        });
        tracing::info!(target: "moontide::server", %bound, "serving over TLS");
        return Ok((bound, task));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(target: "moontide::server", "server stopped: {e}");
        }
    });
    tracing::info!(target: "moontide::server", %bound, "serving");
    Ok((bound, task))
}

/// The dashboard: one page, embedded in the binary, that fetches nothing
/// but this server's API (its content security policy says so).
async fn dashboard() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ],
        include_str!("dashboard.html"),
    )
        .into_response()
}

/// A JSON error reply.
pub(crate) fn error(status: axum::http::StatusCode, message: impl Into<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}
