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
    // a refused push goes to the audit log, as a refused API request does, at
    // most once a minute per source and status (a misconfigured gateway pushes
    // every second, and must not crowd out the API's refusals)
    let status = response.status().as_u16();
    let now = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
    );
    if let Some(api) = &state.api
        && response.status() != StatusCode::OK
        // every unknown source counts as one: their names are the caller's
        && let Some(more) = state.push_refusals.lock().unwrap_or_else(|p| p.into_inner()).due(
            if status == 404 { "" } else { &source },
            status,
            now,
        )
    {
        // a bad body came with the source's token: its pusher is named after the source
        let who = if response.status() == StatusCode::BAD_REQUEST { format!("push:{source}") } else { "-".into() };
        let why = match response.status() {
            StatusCode::UNAUTHORIZED => "refused: missing or wrong bearer token".to_string(),
            StatusCode::NOT_FOUND => format!("refused: no push source named `{source}`"),
            _ => format!("refused: {}", refusal(&response).unwrap_or("bad body")),
        };
        let why = if more > 0 { format!("{why} (and {more} more like it in the minute before)") } else { why };
        super::api::record(api, &who, &method, &uri, response.status(), why);
    }
    response
}

/// Refused pushes by source and status: when each was last audited, and how
/// many were not since.
#[derive(Default)]
pub(super) struct Refusals(std::collections::BTreeMap<(String, u16), (Timestamp, u64)>);

/// How often one kind of refused push is audited.
const AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Most sources and statuses remembered (the source name is the caller's).
const REFUSALS_KEPT: usize = 1000;

impl Refusals {
    /// Whether to audit this refusal now: `Some(n)` with the `n` left out since the last.
    fn due(&mut self, source: &str, status: u16, now: Timestamp) -> Option<u64> {
        let key = (source.to_string(), status);
        match self.0.get_mut(&key) {
            Some((at, skipped)) if now.since(*at) < AUDIT_EVERY => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                let more = *skipped;
                (*at, *skipped) = (now, 0);
                Some(more)
            }
            None => {
                if self.0.len() >= REFUSALS_KEPT {
                    self.0.retain(|_, (at, _)| now.since(*at) < AUDIT_EVERY);
                }
                if self.0.len() < REFUSALS_KEPT {
                    self.0.insert(key, (now, 0));
                }
                Some(0)
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_refusal_is_audited_once_a_minute_with_a_count_of_the_rest() {
        let mut r = Refusals::default();
        let t = |s| Timestamp::from_secs(s);
        assert_eq!(r.due("gw", 401, t(0)), Some(0));
        assert_eq!(r.due("gw", 401, t(10)), None);
        assert_eq!(r.due("gw", 400, t(10)), Some(0), "another status is another kind");
        assert_eq!(r.due("gw", 401, t(59)), None);
        assert_eq!(r.due("gw", 401, t(60)), Some(2), "the two left out are counted");
        assert_eq!(r.due("gw", 401, t(61)), None);
    }
}
