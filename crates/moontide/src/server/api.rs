//! The HTTP API under `/api/v1`: policies and their state, decision
//! history, a live stream of decisions, and the operator's controls (pause,
//! resume, hold a count until a time, dry-run). Every request needs an API
//! token; changes need the `operator` role. Errors are JSON
//! `{"error": "..."}` with the status that fits. The OpenAPI document is at
//! `/api/v1/openapi.json`.

// A refusal here is the HTTP response itself, built once per request.
#![allow(clippy::result_large_err)]

use super::auth::{Caller, Identity, Role, identify};
use super::{ApiState, Live, ReloadRequest, State, error};
use crate::engine::control::{Control, Hold, Pause, wall};
use crate::store::{AuditEntry, Query};
use axum::body::Bytes;
use axum::extract::{Path, Query as Params, State as Shared};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use moontide_core::{Decision, Outcome, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most decisions one page holds.
const PAGE_MAX: usize = 1000;
/// Longest a hold may last.
const HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The API's routes.
pub fn routes() -> axum::Router<Arc<State>> {
    axum::Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/policies", get(list))
        .route("/api/v1/policies/{name}", get(one))
        .route("/api/v1/policies/{name}/decisions", get(decisions))
        .route("/api/v1/policies/{name}/pause", post(pause))
        .route("/api/v1/policies/{name}/resume", post(resume))
        .route("/api/v1/policies/{name}/override", post(set_override).delete(clear_override))
        .route("/api/v1/policies/{name}/dry-run", post(dry_run))
        .route("/api/v1/events", get(events))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/reload", post(reload))
        .route("/metrics", get(metrics))
}

/// The API's part of the server state, or 404 when the server runs without it.
fn api(state: &State) -> Result<&ApiState, Response> {
    state.api.as_ref().ok_or_else(|| error(StatusCode::NOT_FOUND, "no API here"))
}

pub(super) fn record(
    api: &ApiState,
    who: &str,
    method: &Method,
    uri: &Uri,
    status: StatusCode,
    detail: impl Into<String>,
) {
    let entry = AuditEntry {
        at: api.clock.now(),
        who: who.to_string(),
        action: format!("{method} {}", uri.path()),
        status: status.as_u16(),
        detail: detail.into(),
    };
    tracing::info!(target: "moontide::audit", who = %entry.who, action = %entry.action, status = entry.status, "{}", entry.detail);
    if let Err(e) = api.store.audit(&entry) {
        tracing::error!("cannot write the audit log: {e}");
    }
}

/// The caller, if their token is known and has `need`; otherwise the 401 or 403 to send (and an audit line).
fn authorize(
    api: &ApiState,
    live: &Live,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    need: Role,
) -> Result<Caller, Response> {
    let bearer = super::auth::bearer(headers);
    let identity = match bearer {
        Some(b) => identify(&live.tokens, b, std::time::SystemTime::now()),
        None => Identity::Unknown,
    };
    let caller = match identity {
        Identity::Known(c) => Some(c),
        Identity::Expired(name) => {
            record(api, &name, method, uri, StatusCode::UNAUTHORIZED, "expired token");
            let mut r = error(StatusCode::UNAUTHORIZED, format!("token `{name}` has expired"));
            r.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            return Err(r);
        }
        Identity::Unknown => None,
    };
    let Some(caller) = caller else {
        let why = if bearer.is_none() { "no bearer token" } else { "unknown token" };
        record(api, "-", method, uri, StatusCode::UNAUTHORIZED, why);
        let message = if live.tokens.is_empty() {
            "no API tokens are configured: add [[server.tokens]] to the config (moontide token new NAME --role ROLE)"
                .to_string()
        } else {
            format!("{why}: send Authorization: Bearer TOKEN")
        };
        let mut r = error(StatusCode::UNAUTHORIZED, message);
        r.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        return Err(r);
    };
    if caller.role < need {
        record(
            api,
            &caller.name,
            method,
            uri,
            StatusCode::FORBIDDEN,
            format!("role {} needs {}", caller.role.name(), need.name()),
        );
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("token `{}` has the {} role; this needs {}", caller.name, caller.role.name(), need.name()),
        ));
    }
    Ok(caller)
}

/// The API, the config's live part and the caller, or the response that refuses the request.
fn enter<'a>(
    state: &'a State,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    need: Role,
) -> Result<(&'a ApiState, Live, Caller), Response> {
    let api = api(state)?;
    let live = state.live();
    let caller = authorize(api, &live, headers, method, uri, need)?;
    Ok((api, live, caller))
}

fn control<'a>(live: &'a Live, name: &str) -> Result<&'a Arc<Control>, Response> {
    live.controls.get(name).ok_or_else(|| {
        let names: Vec<&str> = live.controls.keys().map(String::as_str).collect();
        error(StatusCode::NOT_FOUND, format!("no policy named `{name}` (policies: {})", names.join(", ")))
    })
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, Response> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { &bytes[..] };
    serde_json::from_slice(text).map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

fn outcome_error(d: &Decision) -> Option<String> {
    match &d.outcome {
        Outcome::Failed { error, .. } => Some(error.clone()),
        Outcome::Skipped { reason } => Some(reason.clone()),
        _ => d.inputs.iter().find_map(|i| i.error.as_ref().map(|e| format!("{}: {e}", i.metric))),
    }
}

/// A policy as the API shows it.
fn view(c: &Control) -> Value {
    let st = c.state();
    let last = st.last.as_ref();
    json!({
        "name": c.policy,
        "target": c.target,
        "interval_ms": c.interval.as_millis() as u64,
        "min": c.min,
        "max": c.max,
        "current": last.map(|d| d.current),
        "ready": last.map(|d| d.ready),
        "desired": last.map(|d| d.desired),
        "last_decision": last.map(|d| json!({"at": d.at, "outcome": d.outcome.kind(), "reason": d.reason})),
        "next_tick": st.next_tick,
        "paused": st.operator.paused,
        "dry_run": c.dry_run(),
        "hold": st.operator.hold,
        "error": last.and_then(outcome_error),
    })
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], super::openapi::DOCUMENT).into_response()
}

async fn list(Shared(state): Shared<Arc<State>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let (_, live, _) = match enter(&state, &headers, &method, &uri, Role::Viewer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let all: Vec<Value> = live.controls.values().map(|c| view(c)).collect();
    axum::Json(json!({ "policies": all })).into_response()
}

async fn one(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (_, live, _) = match enter(&state, &headers, &method, &uri, Role::Viewer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match control(&live, &name) {
        Ok(c) => {
            let mut v = view(c);
            v["last"] = serde_json::to_value(c.state().last).unwrap_or(Value::Null);
            axum::Json(v).into_response()
        }
        Err(r) => r,
    }
}

/// A time in a query: RFC 3339 or Unix milliseconds.
fn time_param(field: &str, v: &str) -> Result<Timestamp, Response> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Timestamp::from_millis(ms));
    }
    humantime::parse_rfc3339_weak(v)
        .map(|t| {
            Timestamp::from_millis(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
        })
        .map_err(|_| {
            error(StatusCode::BAD_REQUEST, format!("{field}: `{v}` is not an RFC 3339 time or Unix milliseconds"))
        })
}

async fn decisions(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    Params(params): Params<BTreeMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (api, live, _) = match enter(&state, &headers, &method, &uri, Role::Viewer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = control(&live, &name) {
        return r;
    }
    let mut q = Query { policy: Some(name), limit: 100, ..Default::default() };
    for (k, v) in &params {
        match k.as_str() {
            "since" => match time_param(k, v) {
                Ok(t) => q.since = Some(t),
                Err(r) => return r,
            },
            "until" => match time_param(k, v) {
                Ok(t) => q.until = Some(t),
                Err(r) => return r,
            },
            "outcome" => {
                const KINDS: [&str; 6] = ["hold", "scaled", "dry_run", "deferred", "skipped", "failed"];
                if !KINDS.contains(&v.as_str()) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("outcome: `{v}` is not one of {}", KINDS.join(", ")),
                    );
                }
                q.outcome = Some(v.clone());
            }
            "limit" => match limit_param(v) {
                Ok(n) => q.limit = n,
                Err(r) => return r,
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter `{other}` (since, until, outcome, limit)"),
                );
            }
        }
    }
    match api.store.list(&q) {
        Ok(list) => {
            // the next page: everything before the oldest decision here
            let next = if list.len() == q.limit { list.last().map(|d| d.at) } else { None };
            axum::Json(json!({ "decisions": list, "next_until": next })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    replicas: u32,
    reason: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunBody {
    /// Required: true, false, or null for the config's setting (an empty
    /// body must not quietly mean "as configured").
    #[serde(deserialize_with = "nullable")]
    enabled: Option<bool>,
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Option::deserialize(d)
}

/// Runs an operator's change: authorize, parse, apply, audit.
async fn change(
    state: &State,
    name: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    apply: impl FnOnce(&ApiState, &Control, &Caller) -> Result<String, Response>,
) -> Response {
    let (api, live, caller) = match enter(state, headers, method, uri, Role::Operator) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let c = match control(&live, name) {
        Ok(c) => c,
        Err(r) => {
            record(api, &caller.name, method, uri, r.status(), "no such policy");
            return r;
        }
    };
    // in a cluster the change starts from the settings etcd holds, so that one
    // made meanwhile through another instance is not undone
    let revision = match &live.shared_controls {
        Some(shared) => match shared.refresh(name.to_string()).await {
            Ok(r) => Some(r),
            Err(e) => {
                let why = format!("cannot read this policy's settings from etcd ({e}); nothing was changed");
                record(api, &caller.name, method, uri, StatusCode::SERVICE_UNAVAILABLE, why.clone());
                return error(StatusCode::SERVICE_UNAVAILABLE, why);
            }
        },
        None => None,
    };
    let before = c.operator();
    match apply(api, c, &caller) {
        Ok(mut done) => {
            if let (Some(shared), Some(revision)) = (&live.shared_controls, revision) {
                match shared.publish(name.to_string(), c.operator(), revision).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let why = "the policy's settings were changed through another instance meanwhile; \
                                   they stand (GET the policy to see them): send the change again";
                        record(api, &caller.name, method, uri, StatusCode::CONFLICT, why);
                        return error(StatusCode::CONFLICT, why.to_string());
                    }
                    Err(e) => {
                        // not shared, so undone here too: no instance keeps a change the owner never saw
                        c.update(|s| s.operator = before);
                        let why = format!("cannot share this change through etcd ({e}); nothing was changed");
                        tracing::error!(policy = %name, "{why}");
                        record(api, &caller.name, method, uri, StatusCode::SERVICE_UNAVAILABLE, why.clone());
                        return error(StatusCode::SERVICE_UNAVAILABLE, why);
                    }
                }
            }
            if let Err(e) = c.operator().save(&api.store, name, api.clock.now()) {
                tracing::error!(policy = %name, "cannot save what the operator set: {e}");
                done.push_str(&format!(" (not saved: {e}; a restart or a reload would forget it)"));
            }
            record(api, &caller.name, method, uri, StatusCode::OK, done.clone());
            let mut v = view(c);
            v["done"] = json!(done);
            axum::Json(v).into_response()
        }
        Err(r) => {
            // the audit line says why, as the caller was told
            let (parts, body) = r.into_parts();
            let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
            let why = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| "bad request".into());
            record(api, &caller.name, method, uri, parts.status, format!("refused: {why}"));
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
    }
}

async fn pause(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    change(&state, &name, &method, &uri, &headers, |api, c, caller| {
        let b: PauseBody = body(&bytes)?;
        let reason = b.reason.unwrap_or_default().trim().to_string();
        let reason = if reason.is_empty() { "no reason given".to_string() } else { reason };
        let since = api.clock.now();
        c.update(|s| s.operator.paused = Some(Pause { by: caller.name.clone(), reason: reason.clone(), since }));
        Ok(format!("paused: {reason}"))
    })
    .await
}

async fn resume(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    change(&state, &name, &method, &uri, &headers, |_, c, _| {
        let was = c.operator().paused.is_some();
        c.update(|s| s.operator.paused = None);
        Ok(if was { "resumed".into() } else { "was not paused".into() })
    })
    .await
}

async fn set_override(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    change(&state, &name, &method, &uri, &headers, |api, c, caller| {
        let b: OverrideBody = body(&bytes)?;
        let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
        let reason = b.reason.trim().to_string();
        if reason.is_empty() || reason.len() > 500 {
            return Err(bad("reason: say why, in 1 to 500 characters".into()));
        }
        if b.replicas < c.min || b.replicas > c.max {
            return Err(bad(format!("replicas: {} is outside the policy's bounds {}..={}", b.replicas, c.min, c.max)));
        }
        let now = api.clock.now();
        let until = match (&b.until, &b.for_) {
            (Some(u), None) => time_param("until", u)?,
            (None, Some(f)) => now.plus(moontide_core::duration::parse(f).map_err(|e| bad(format!("for: {e}")))?),
            _ => return Err(bad("give either `until` (an RFC 3339 time) or `for` (a duration like \"30m\")".into())),
        };
        if until <= now {
            let field = if b.until.is_some() { "until" } else { "for" };
            return Err(bad(format!("{field}: the hold would end at {}, which is not in the future", wall(until))));
        }
        if until.since(now) > HOLD_MAX {
            return Err(bad("a hold lasts at most 7 days".into()));
        }
        let hold = Hold { replicas: b.replicas, until, by: caller.name.clone(), reason: reason.clone() };
        c.update(|s| s.operator.hold = Some(hold));
        Ok(format!("hold at {} until {}: {reason}", b.replicas, wall(until)))
    })
    .await
}

async fn clear_override(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    change(&state, &name, &method, &uri, &headers, |_, c, _| {
        let was = c.operator().hold.is_some();
        c.update(|s| s.operator.hold = None);
        Ok(if was { "hold removed".into() } else { "no hold to remove".into() })
    })
    .await
}

async fn dry_run(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    change(&state, &name, &method, &uri, &headers, |_, c, _| {
        let b: DryRunBody = body(&bytes)?;
        if c.dry_run_forced() && b.enabled != Some(true) {
            return Err(error(
                StatusCode::CONFLICT,
                "this daemon runs with --dry-run: every policy stays in dry-run until it is started without it",
            ));
        }
        c.update(|s| s.operator.dry_run = b.enabled);
        Ok(match b.enabled {
            Some(true) => "dry-run on".into(),
            Some(false) => "dry-run off".into(),
            None => format!("dry-run as configured ({})", if c.config_dry_run { "on" } else { "off" }),
        })
    })
    .await
}

async fn events(
    Shared(state): Shared<Arc<State>>,
    Params(params): Params<BTreeMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (api, live, _) = match enter(&state, &headers, &method, &uri, Role::Viewer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = only_params(&params, &["policy"]) {
        return r;
    }
    let only = params.get("policy").cloned();
    if let Some(p) = &only
        && let Err(r) = control(&live, p)
    {
        return r;
    }
    let rx = api.decisions.subscribe();
    let stream = futures_util::stream::unfold((rx, only), |(mut rx, only)| async move {
        loop {
            match rx.recv().await {
                Ok(d) if only.as_ref().is_none_or(|p| *p == d.policy) => {
                    let ev = Event::default().event("decision").json_data(&d).unwrap_or_default();
                    return Some((Ok::<_, std::convert::Infallible>(ev), (rx, only)));
                }
                Ok(_) => continue,
                // a slow reader misses some decisions; it stays connected
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A page size, from 1 to [`PAGE_MAX`].
fn limit_param(v: &str) -> Result<usize, Response> {
    match v.parse::<usize>() {
        Ok(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        _ => Err(error(StatusCode::BAD_REQUEST, format!("limit: `{v}` is not a number from 1 to {PAGE_MAX}"))),
    }
}

/// A 400 naming the first parameter not in `known`.
fn only_params(params: &BTreeMap<String, String>, known: &[&str]) -> Result<(), Response> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(error(StatusCode::BAD_REQUEST, format!("unknown parameter `{k}` ({})", known.join(", ")))),
        None => Ok(()),
    }
}

async fn audit(
    Shared(state): Shared<Arc<State>>,
    Params(params): Params<BTreeMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (api, _, _) = match enter(&state, &headers, &method, &uri, Role::Operator) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = only_params(&params, &["limit"]) {
        return r;
    }
    let limit = match params.get("limit").map(|v| limit_param(v)) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(r)) => return r,
    };
    match api.store.audit_log(limit) {
        Ok(entries) => axum::Json(json!({ "entries": entries })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(Shared(state): Shared<Arc<State>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let (_, _, _) = match enter(&state, &headers, &method, &uri, Role::Viewer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::get().render(),
    )
        .into_response()
}

async fn reload(Shared(state): Shared<Arc<State>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let (api, _, caller) = match enter(&state, &headers, &method, &uri, Role::Operator) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(tx) = &api.reload else {
        return error(StatusCode::NOT_FOUND, "this server does not reload configs");
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if tx.send(ReloadRequest { by: caller.name.clone(), reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Moontide is stopping");
    }
    match answer.await {
        Ok(Ok(done)) => {
            record(api, &caller.name, &method, &uri, StatusCode::OK, done.clone());
            axum::Json(json!({ "done": done })).into_response()
        }
        Ok(Err(problems)) => {
            record(
                api,
                &caller.name,
                &method,
                &uri,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("refused: {}", problems.join("; ")),
            );
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(
                    json!({ "error": "the new config is refused; the running one stays", "problems": problems }),
                ),
            )
                .into_response()
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "Moontide is stopping"),
    }
}
