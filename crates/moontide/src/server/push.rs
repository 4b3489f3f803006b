//! `POST /push/{source}`: values for a `push` source.

use super::{State, error};
use crate::engine::SystemClock;
use crate::sources::push::Refused;
use axum::body::Bytes;
use axum::extract::{Path, State as Shared};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use moontide_core::{Clock, Timestamp};
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
    let now = SystemClock.now();
    let refusal = match take(&state, &source, &headers, &body, now) {
        Ok(n) => return (StatusCode::OK, axum::Json(serde_json::json!({ "accepted": n }))).into_response(),
        Err(r) => r,
    };
    // a refused push goes to the audit log, as a refused API request does, at
    // most once a minute per source and status (a misconfigured gateway pushes
    // every second, and must not crowd out the API's refusals)
    let status = refusal.status;
    if let Some(api) = &state.api
        // every unknown source counts as one: their names are the caller's
        && let Some(more) = state.push_refusals.lock().unwrap_or_else(|p| p.into_inner()).due(
            if status == StatusCode::NOT_FOUND { "" } else { &source },
            status.as_u16(),
            now,
        )
    {
        let why = match more {
            0 => format!("refused: {}", refusal.why),
            n => format!("refused: {} (and {n} more like it in the minute before)", refusal.why),
        };
        super::api::record(api, &refusal.who, &method, &uri, status, why);
    }
    let mut response = error(status, refusal.why);
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
    }
    response
}

/// A refused push: its status, and who sent it (`-` for a caller not known
/// by a token) and why, for the reply and the audit log.
struct Refusal {
    status: StatusCode,
    who: String,
    why: String,
}

impl Refusal {
    fn new(status: StatusCode, who: impl Into<String>, why: String) -> Refusal {
        Refusal { status, who: who.into(), why }
    }
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

/// Takes a push: how many values, or why not.
fn take(state: &State, source: &str, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<usize, Refusal> {
    let Some(push) = state.live().pushes.get(source).cloned() else {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "-", format!("no push source named `{source}`")));
    };
    let token = super::auth::bearer(headers);
    match push.accept(token, body, now) {
        Ok(n) => Ok(n),
        Err(Refused::Unauthorized) => {
            tracing::warn!(target: "moontide::server", source = %source, "push refused: missing or wrong token");
            Err(Refusal::new(StatusCode::UNAUTHORIZED, "-", "missing or wrong bearer token".into()))
        }
        // a bad body came with the source's token: its pusher is named after the source
        Err(Refused::BadBody(e)) => Err(Refusal::new(StatusCode::BAD_REQUEST, format!("push:{source}"), e)),
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
