//! `POST /push/{source}`: values for a `push` source.

use super::{State, error};
use crate::sources::push::Refused;
use axum::body::Bytes;
use axum::extract::{Path, State as Shared};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use moontide_core::Timestamp;
use std::sync::Arc;

/// Largest push body.
pub const BODY_LIMIT: usize = 64 * 1024;

pub(super) async fn receive(
    Shared(state): Shared<Arc<State>>,
    Path(source): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = take(&state, &source, &headers, &body);
    // a refused push goes to the audit log, as a refused API request does
    if let Some(api) = &state.api
        && response.status() != StatusCode::OK
    {
        // a bad body came with the source's token: its pusher is named after the source
        let who = if response.status() == StatusCode::BAD_REQUEST { format!("push:{source}") } else { "-".into() };
        let why = match response.status() {
            StatusCode::UNAUTHORIZED => "refused: missing or wrong bearer token".to_string(),
            StatusCode::NOT_FOUND => format!("refused: no push source named `{source}`"),
            _ => format!("refused: {}", refusal(&response).unwrap_or("bad body")),
        };
        super::api::record(api, &who, &method, &uri, response.status(), why);
    }
    response
}

/// The message a refusal carries (set by `take`).
fn refusal(r: &Response) -> Option<&str> {
    r.extensions().get::<Why>().map(|w| w.0.as_str())
}

#[derive(Clone)]
struct Why(String);

fn take(state: &State, source: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(push) = state.live().pushes.get(source).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no push source named `{source}`"));
    };
    let token = super::auth::bearer(headers);
    let now = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
    );
    match push.accept(token, body, now) {
        Ok(n) => (StatusCode::OK, axum::Json(serde_json::json!({ "accepted": n }))).into_response(),
        Err(Refused::Unauthorized) => {
            tracing::warn!(target: "moontide::server", source = %source, "push refused: missing or wrong token");
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            r
        }
        Err(Refused::BadBody(e)) => {
            let mut r = error(StatusCode::BAD_REQUEST, e.clone());
            r.extensions_mut().insert(Why(e));
            r
        }
    }
}
