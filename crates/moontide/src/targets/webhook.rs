//! `webhook`: drive an HTTP API, the guide's "cloud provider".
//!
//! Two modes:
//! - `set_count`: one request carrying the desired count, in the URL or the
//!   body template (`{count}`, `{current}`, `{policy}` and `{key}` are substituted).
//! - `step`: `scale_up_url` or `scale_down_url` called once per replica of change.
//!
//! In a cluster, every request also carries `Moontide-Fencing-Token`: the
//! owner's token, which grows with each change of owner, so a receiver that
//! refuses a token lower than the highest it has seen shuts out an old owner.
//!
//! Every request carries an `Idempotency-Key` header, the same across retries
//! of one request. Timeouts, connection errors, 5xx and 429 are retried with
//! exponential backoff and jitter (429 and 503 honour `Retry-After`); other
//! 4xx are not. A token bucket per target (`rate_limit`) paces every request,
//! retries included. With `status_url`, the current count is read from the
//! API; without it, Moontide counts what it set and says so.

use crate::secret::{Secret, SecretRef};
use crate::sources::http_json::{describe, pick};
use crate::targets::{ScaleError, Status};
use governor::{Quota, RateLimiter};
use moontide_core::Actuation;
use moontide_core::duration::{format as fmt_d, serde_text};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// How the API is told the new count.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One request with the count.
    #[default]
    SetCount,
    /// One request per replica added or removed.
    Step,
}

/// The client-side request budget.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second (may be fractional, like 0.5).
    pub per_second: f64,
    /// Requests allowed back to back (default 1).
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

fn default_rate() -> RateLimit {
    RateLimit { per_second: 5.0, burst: 5 }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_retries() -> u32 {
    3
}

fn default_backoff() -> Duration {
    Duration::from_millis(500)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

fn default_method() -> String {
    "POST".into()
}

/// `type = "webhook"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `set_count` (default) or `step`.
    #[serde(default)]
    pub mode: Mode,
    /// `set_count`: the URL (templated).
    #[serde(default)]
    pub url: Option<String>,
    /// `step`: called once per replica added.
    #[serde(default)]
    pub scale_up_url: Option<String>,
    /// `step`: called once per replica removed.
    #[serde(default)]
    pub scale_down_url: Option<String>,
    /// HTTP method for scale requests: GET, POST, PUT, PATCH or DELETE, in any case (default POST).
    #[serde(default = "default_method")]
    pub method: String,
    /// Body template; sent with `Content-Type: application/json` unless `content_type` says otherwise.
    #[serde(default)]
    pub body: Option<String>,
    /// Content type of the body (default application/json).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Extra headers on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// GET this for the current count.
    #[serde(default)]
    pub status_url: Option<String>,
    /// JSON pointer to the current count in the status response (default "/replicas").
    #[serde(default)]
    pub status_pointer: Option<String>,
    /// JSON pointer to the ready count (default: ready = current).
    #[serde(default)]
    pub ready_pointer: Option<String>,
    /// Without `status_url`: the count running when Moontide first starts.
    #[serde(default)]
    pub initial: Option<u32>,
    /// Environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding a bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Per-request timeout (default 10s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// Retries after the first attempt (default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff (default 500ms), doubled each retry, with jitter.
    #[serde(default = "default_backoff", with = "serde_text")]
    pub backoff: Duration,
    /// Longest wait between attempts, Retry-After included (default 30s); a
    /// longer Retry-After fails the actuation instead of waiting.
    #[serde(default = "default_max_backoff", with = "serde_text")]
    pub max_backoff: Duration,
    /// Requests per second and burst (default 5/s, burst 5).
    #[serde(default = "default_rate")]
    pub rate_limit: RateLimit,
    /// Environment variable holding the secret that signs every request (HMAC-SHA256).
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// File holding the secret that signs every request (HMAC-SHA256).
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
}

fn check_url(field: &str, url: &str, errs: &mut Vec<String>) {
    // Templates are checked with a count substituted.
    let probe = url.replace("{count}", "1").replace("{current}", "1").replace("{policy}", "p").replace("{key}", "k");
    errs.extend(crate::http::check_url_credentials(field, &probe, "a token with token_env or token_file"));
}

impl WebhookConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match self.mode {
            Mode::SetCount => match &self.url {
                Some(u) => check_url("url", u, &mut errs),
                None => errs.push("mode \"set_count\" needs `url`".into()),
            },
            Mode::Step => {
                for (field, v) in [("scale_up_url", &self.scale_up_url), ("scale_down_url", &self.scale_down_url)] {
                    match v {
                        Some(u) => check_url(field, u, &mut errs),
                        None => errs.push(format!("mode \"step\" needs `{field}`")),
                    }
                }
            }
        }
        if let Some(u) = &self.status_url {
            check_url("status_url", u, &mut errs);
            for t in ["{count}", "{current}", "{key}"] {
                if u.contains(t) {
                    errs.push(format!(
                        "status_url: `{t}` has no value when the count is read; only `{{policy}}` is filled in there"
                    ));
                }
            }
        } else if self.initial.is_none() {
            errs.push(
                "give `status_url` (where Moontide reads the current count) or `initial` (the count running now; Moontide then counts what it sets)".into(),
            );
        }
        for (field, p) in [("status_pointer", &self.status_pointer), ("ready_pointer", &self.ready_pointer)] {
            if let Some(p) = p
                && let Err(e) = crate::sources::http_json::check_query(p)
            {
                errs.push(format!("{field}: {e}"));
            }
        }
        // any case; sent upper-cased
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&self.method.to_ascii_uppercase().as_str()) {
            errs.push(format!("method `{}` is not one of GET, POST, PUT, PATCH, DELETE", self.method));
        }
        if self.token_env.is_some() && self.token_file.is_some() {
            errs.push("give either token_env or token_file, not both".into());
        }
        if self.timeout.is_zero() {
            errs.push("timeout must be longer than 0s".into());
        }
        if !(self.rate_limit.per_second.is_finite() && self.rate_limit.per_second > 0.0) {
            errs.push("rate_limit.per_second must be a positive number".into());
        } else if self.rate_limit.per_second > 1_000_000.0 {
            errs.push("rate_limit.per_second above 1,000,000 is not a limit; remove rate_limit or lower it".into());
        }
        if self.max_backoff.is_zero() || self.backoff > self.max_backoff {
            errs.push(format!(
                "backoff ({}) must be positive and no longer than max_backoff ({})",
                fmt_d(self.backoff),
                fmt_d(self.max_backoff)
            ));
        }
        errs.extend(crate::http::check_headers(&self.headers));
        if self.rate_limit.burst == 0 {
            errs.push("rate_limit.burst must be at least 1".into());
        }
        if self.signing_secret_env.is_some() && self.signing_secret_file.is_some() {
            errs.push("give either signing_secret_env or signing_secret_file, not both".into());
        }
        errs
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// A live webhook target.
pub struct Webhook {
    name: String,
    /// The policy that drives it, for `{policy}` (set by the engine; the target's name until then).
    policy: String,
    cfg: WebhookConfig,
    client: reqwest::Client,
    token: Option<Secret>,
    limiter: Limiter,
    tracked: Mutex<u32>,
    signing: Option<Secret>,
    /// The owner's fencing token in a cluster (0: none), sent with every request.
    fence: std::sync::atomic::AtomicI64,
}

impl Webhook {
    /// Builds the client and reads the token.
    pub fn new(name: &str, cfg: &WebhookConfig) -> Result<Self, String> {
        let token = SecretRef::new(cfg.token_env.clone(), cfg.token_file.clone())
            .load()
            .map_err(|e| format!("target `{name}`: {e}"))?;
        let client = crate::http::client(cfg.timeout).map_err(|e| format!("target `{name}`: {e}"))?;
        let burst = NonZeroU32::new(cfg.rate_limit.burst).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(1.0 / cfg.rate_limit.per_second.max(1e-6));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        Ok(Webhook {
            name: name.to_string(),
            policy: name.to_string(),
            cfg: cfg.clone(),
            client,
            token,
            limiter: RateLimiter::direct(quota),
            signing: SecretRef::new(cfg.signing_secret_env.clone(), cfg.signing_secret_file.clone())
                .load()
                .map_err(|e| format!("target `{name}`: signing secret: {}", e.replace("token", "secret")))?,
            tracked: Mutex::new(cfg.initial.unwrap_or(0)),
            fence: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// The longest one request may take: a wait for the rate limit's next
    /// token, then the request's timeout.
    pub fn request_time(&self) -> Duration {
        self.cfg.timeout + Duration::from_secs_f64((1.0 / self.cfg.rate_limit.per_second.max(1e-6)).min(86_400.0))
    }

    fn tracked(&self) -> u32 {
        *self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_tracked(&self, n: u32) {
        *self.tracked.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }

    /// Names the policy that drives this target, for `{policy}` in URLs and the body.
    pub fn for_policy(mut self, policy: &str) -> Self {
        self.policy = policy.to_string();
        self
    }

    /// Sends `token` as `Moontide-Fencing-Token` from now on (high availability).
    pub fn set_fence(&self, token: i64) {
        self.fence.store(token, std::sync::atomic::Ordering::SeqCst);
    }

    /// After a restart: the count Moontide last set.
    pub fn restore(&self, last_set: u32) {
        if self.cfg.status_url.is_none() {
            self.set_tracked(last_set);
        }
    }

    /// Reads the count from `status_url`, or reports Moontide's own count.
    pub async fn status(&self) -> Result<Status, String> {
        let Some(template) = &self.cfg.status_url else {
            let n = self.tracked();
            return Ok(Status {
                current: n,
                ready: n,
                note: Some("no status_url: count tracked by Moontide, not read from the API".into()),
            });
        };
        let url = &template.replace("{policy}", &self.policy);
        let (code, body, _) = self
            .send_once(reqwest::Method::GET, url, None, None)
            .await
            .map_err(|e| format!("status from {url}: {e}"))?;
        if !(200..300).contains(&code) {
            return Err(format!("status from {url}: HTTP {code}"));
        }
        let doc: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("status from {url}: malformed JSON: {e}"))?;
        let count = |p: &str| -> Result<u32, String> {
            let v = pick(&doc, p).map_err(|e| format!("status from {url}: {e}"))?;
            if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f64 {
                return Err(format!("status from {url}: {p} is {v}, not a replica count"));
            }
            Ok(v as u32)
        };
        let current = count(self.cfg.status_pointer.as_deref().unwrap_or("/replicas"))?;
        let ready = match &self.cfg.ready_pointer {
            Some(p) => count(p)?,
            None => current,
        };
        Ok(Status { current, ready, note: None })
    }

    /// Sets the count: one request (set_count) or one per replica of change (step).
    pub async fn scale(&self, current: u32, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
        let mut act = Actuation { key: key.to_string(), attempts: 0, detail: String::new() };
        // validate() allows any case; the wire gets the standard one
        let method = self.cfg.method.to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let fill = |t: &str, k: &str| {
            t.replace("{count}", &desired.to_string())
                .replace("{current}", &current.to_string())
                .replace("{policy}", &self.policy)
                .replace("{key}", k)
        };
        match self.cfg.mode {
            Mode::SetCount => {
                let url = fill(self.cfg.url.as_deref().unwrap_or_default(), key);
                let body = self.cfg.body.as_deref().map(|b| fill(b, key));
                match self.send(&method, &url, body, key, &mut act.attempts).await {
                    Ok(code) => {
                        self.set_tracked(desired);
                        act.detail = format!("HTTP {code}");
                        Ok(act)
                    }
                    Err(message) => Err(ScaleError { message, reached: None, actuation: act }),
                }
            }
            Mode::Step => {
                let up = desired > current;
                let url_t = if up { &self.cfg.scale_up_url } else { &self.cfg.scale_down_url };
                let steps = desired.abs_diff(current);
                for i in 1..=steps {
                    let step_key = format!("{key}-{i}");
                    let url = fill(url_t.as_deref().unwrap_or_default(), &step_key);
                    let body = self.cfg.body.as_deref().map(|b| fill(b, &step_key));
                    if let Err(e) = self.send(&method, &url, body, &step_key, &mut act.attempts).await {
                        let done = i - 1;
                        let reached = if up { current + done } else { current - done };
                        self.set_tracked(reached);
                        act.detail = format!("{done} of {steps} steps done");
                        return Err(ScaleError {
                            message: format!("step {i} of {steps}: {e}"),
                            reached: (done > 0).then_some(reached),
                            actuation: act,
                        });
                    }
                }
                self.set_tracked(desired);
                act.detail = format!("{steps} {} call(s)", if up { "scale-up" } else { "scale-down" });
                Ok(act)
            }
        }
    }

    /// One logical request with retries; every attempt waits for the rate limiter.
    async fn send(
        &self,
        method: &reqwest::Method,
        url: &str,
        body: Option<String>,
        key: &str,
        attempts: &mut u32,
    ) -> Result<u16, String> {
        let mut backoff = self.cfg.backoff;
        let mut last_error = String::new();
        for attempt in 0..=self.cfg.retries {
            if attempt > 0 {
                tracing::debug!(target: "moontide::webhook", target_name = %self.name, attempt, "retrying: {last_error}");
            }
            *attempts += 1;
            let outcome = self.send_once(method.clone(), url, body.clone(), Some(key)).await;
            let retry_after = match outcome {
                Ok((code, _, _)) if (200..300).contains(&code) => return Ok(code),
                Ok((code, body, retry_after)) if code == 429 || code >= 500 => {
                    last_error = format!("HTTP {code}{}", brief(&body));
                    retry_after
                }
                Ok((code, body, _)) => return Err(format!("HTTP {code}{} (not retried)", brief(&body))),
                Err(e) => {
                    last_error = e;
                    None
                }
            };
            if attempt == self.cfg.retries {
                break;
            }
            let jittered = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
            let wait = match retry_after {
                Some(ra) if ra > self.cfg.max_backoff => {
                    return Err(format!(
                        "{last_error}: Retry-After {} is longer than max_backoff {}",
                        fmt_d(ra),
                        fmt_d(self.cfg.max_backoff)
                    ));
                }
                Some(ra) => ra.max(jittered),
                None => jittered.min(self.cfg.max_backoff),
            };
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
        Err(format!("{last_error} after {} attempt(s)", self.cfg.retries + 1))
    }

    /// One HTTP exchange, paced by the rate limiter: (status, body, Retry-After).
    async fn send_once(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<String>,
        key: Option<&str>,
    ) -> Result<(u16, String, Option<Duration>), String> {
        let waited = std::time::Instant::now();
        self.limiter.until_ready().await;
        crate::metrics::get()
            .rate_limit_wait
            .get_or_create(&crate::metrics::label("target", &self.name))
            .inc_by(waited.elapsed().as_secs_f64());
        let mut req = crate::sources::with_token(self.client.request(method, url), self.token.as_ref());
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let fence = self.fence.load(std::sync::atomic::Ordering::SeqCst);
        if fence > 0 {
            req = req.header(FENCING_HEADER, fence.to_string());
        }
        if let Some(secret) = &self.signing {
            let at =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            req = req.header(SIGNATURE_HEADER, sign(secret.expose().as_bytes(), at, body.as_deref().unwrap_or("")));
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, self.cfg.content_type.as_deref().unwrap_or("application/json"))
                .body(b);
        }
        let resp = req.send().await.map_err(|e| describe(&e, self.cfg.timeout))?;
        let code = resp.status().as_u16();
        let retry_after =
            resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let text = resp.text().await.unwrap_or_default();
        Ok((code, text, retry_after))
    }
}

/// The header carrying a signed request's time and signature.
pub const SIGNATURE_HEADER: &str = "Moontide-Signature";
/// The header carrying the owner's fencing token in a cluster.
pub const FENCING_HEADER: &str = "Moontide-Fencing-Token";

/// `t=UNIX_SECONDS,v1=HEX`, where HEX is HMAC-SHA256(secret, "UNIX_SECONDS." + body): a
/// receiver recomputes it, compares in constant time, and rejects old times (replays).
pub fn sign(secret: &[u8], at: u64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{at}.").as_bytes());
    mac.update(body.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={at},v1={hex}")
}

/// `Retry-After` is either whole seconds or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn brief(body: &str) -> String {
    let b = body.trim();
    if b.is_empty() {
        String::new()
    } else {
        let cut: String = b.chars().take(120).collect();
        format!(": {cut}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
