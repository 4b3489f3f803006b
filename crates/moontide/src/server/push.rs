//! `POST /push/{source}`: values for a `push` source.

use super::{State, error};
use crate::sources::push::Refused;
use axum::body::Bytes;
use axum::extract::{Path, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use moontide_core::Timestamp;
use std::sync::Arc;

/// Largest push body.
pub const BODY_LIMIT: usize = 64 * 1024;

pub(super) async fn receive(
    Shared(state): Shared<Arc<State>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(push) = state.live().pushes.get(&source).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no push source named `{source}`"));
    };
    let token = super::auth::bearer(&headers);
    let now = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
    );
    match push.accept(token, &body, now) {
        Ok(n) => (StatusCode::OK, axum::Json(serde_json::json!({ "accepted": n }))).into_response(),
        Err(Refused::Unauthorized) => {
            tracing::warn!(target: "moontide::server", source = %source, "push refused: missing or wrong token");
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            r
        }
        Err(Refused::BadBody(e)) => error(StatusCode::BAD_REQUEST, e),
    }
}
