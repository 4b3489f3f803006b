//! `http_json`: GET a URL, decode the JSON body, pick numbers by JSON pointer
//! (RFC 6901), for example `/cpuUsage` in the guide's `{"cpuUsage": 42, "memoryUsage": 61}`.

use super::{QueryResult, Value, with_token};
use crate::secret::{Secret, SecretRef};
use moontide_core::Timestamp;
use moontide_core::duration::{serde_text, serde_text_opt};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `type = "http_json"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpJsonConfig {
    /// The URL to GET.
    pub url: String,
    /// Whole-request timeout (default 5s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// Environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding a bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON pointer to a Unix timestamp (seconds) of when the payload was measured.
    #[serde(default)]
    pub time_pointer: Option<String>,
    /// With `time_pointer`: readings older than this are stale (default 60s).
    #[serde(default, with = "serde_text_opt")]
    pub max_age: Option<Duration>,
}

impl HttpJsonConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        errs.extend(crate::http::check_url_credentials("url", &self.url, "a token with token_env or token_file"));
        errs.extend(super::check_timeout(self.timeout));
        if self.token_env.is_some() && self.token_file.is_some() {
            errs.push("give either token_env or token_file, not both".into());
        }
        if let Some(p) = &self.time_pointer
            && let Err(e) = check_query(p)
        {
            errs.push(format!("time_pointer: {e}"));
        }
        if self.max_age.is_some() && self.time_pointer.is_none() {
            errs.push("max_age needs time_pointer (where the payload says when it was measured)".into());
        }
        if self.max_age.is_some_and(|a| a.is_zero()) {
            errs.push("max_age must be longer than 0s".into());
        }
        errs.extend(crate::http::check_headers(&self.headers));
        errs
    }
}

/// A query must be a JSON pointer: empty (the whole document) or starting with `/`.
pub fn check_query(q: &str) -> Result<(), String> {
    if q.is_empty() || q.starts_with('/') {
        Ok(())
    } else {
        Err(format!("`{q}` is not a JSON pointer; write it like \"/cpuUsage\" or \"/data/0/value\""))
    }
}

/// A live `http_json` source.
pub struct HttpJson {
    config: HttpJsonConfig,
    client: reqwest::Client,
    token: Option<Secret>,
}

impl HttpJson {
    /// Builds the client and reads the token.
    pub fn new(name: &str, config: &HttpJsonConfig) -> Result<Self, String> {
        let token = SecretRef::new(config.token_env.clone(), config.token_file.clone())
            .load()
            .map_err(|e| format!("source `{name}`: {e}"))?;
        let client = crate::http::client(config.timeout).map_err(|e| format!("source `{name}`: {e}"))?;
        Ok(HttpJson { config: config.clone(), client, token })
    }

    /// Staleness limit when the payload carries its measurement time.
    pub fn max_age(&self) -> Option<Duration> {
        self.config.time_pointer.as_ref().map(|_| self.config.max_age.unwrap_or(Duration::from_secs(60)))
    }

    /// One GET, then each pointer.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        match self.fetch().await {
            Ok(doc) => {
                let measured_at =
                    self.config.time_pointer.as_ref().and_then(|p| doc.pointer(p)).and_then(|v| v.as_f64());
                queries
                    .iter()
                    .map(|q| pick(&doc, q).map(|v| Value { value: v, measured_at: measured_at.map(secs_to_ts) }))
                    .collect()
            }
            Err(e) => queries.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// The whole document, for script-mode requests mapped to this source.
    pub async fn document(&self) -> Result<serde_json::Value, String> {
        self.fetch().await
    }

    async fn fetch(&self) -> Result<serde_json::Value, String> {
        let mut req = with_token(self.client.get(&self.config.url), self.token.as_ref());
        for (k, v) in &self.config.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| describe(&e, self.config.timeout))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {status} from {}", self.config.url));
        }
        let body = super::read_body(resp, self.config.timeout, &self.config.url).await?;
        serde_json::from_slice(&body).map_err(|e| format!("malformed JSON from {}: {e}", self.config.url))
    }
}

fn secs_to_ts(s: f64) -> Timestamp {
    Timestamp::from_millis((s * 1000.0) as i64)
}

/// Picks a number at `pointer`; numeric strings ("42.5") are accepted, nothing else.
pub fn pick(doc: &serde_json::Value, pointer: &str) -> Result<f64, String> {
    let v = doc.pointer(pointer).ok_or_else(|| format!("no value at {pointer}"))?;
    let n = match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() => Ok(n),
        _ => Err(format!("value at {pointer} is not a number: {}", truncate(&v.to_string(), 60))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

/// A transport error in a few words.
pub(crate) fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {}", moontide_core::duration::format(timeout))
    } else if e.is_connect() {
        format!("cannot connect: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_numbers_by_pointer() {
        let doc = json!({"cpuUsage": 82.5, "memoryUsage": "61", "nested": {"list": [1, 2]}, "flag": true, "big": null});
        assert_eq!(pick(&doc, "/cpuUsage"), Ok(82.5));
        assert_eq!(pick(&doc, "/memoryUsage"), Ok(61.0));
        assert_eq!(pick(&doc, "/nested/list/1"), Ok(2.0));
        assert!(pick(&doc, "/missing").unwrap_err().contains("no value at /missing"));
        assert!(pick(&doc, "/flag").unwrap_err().contains("not a number"));
        assert!(pick(&doc, "/big").unwrap_err().contains("not a number"));
        assert!(pick(&doc, "/nested").unwrap_err().contains("not a number"));
    }

    #[test]
    fn settings_are_checked() {
        let config = |url: &str| HttpJsonConfig {
            url: url.into(),
            timeout: Duration::from_secs(5),
            token_env: None,
            token_file: None,
            headers: BTreeMap::new(),
            time_pointer: Some("/at".into()),
            max_age: None,
        };
        assert!(config("http://127.0.0.1:9/m").validate().is_empty());
        let errs = config("http://app:hunter2@127.0.0.1:9/m").validate();
        assert!(errs.len() == 1 && errs[0].contains("token_env or token_file"), "{errs:?}");
        assert!(!errs[0].contains("hunter2"), "{errs:?}");
        let errs = HttpJsonConfig { max_age: Some(Duration::ZERO), ..config("http://127.0.0.1:9/m") }.validate();
        assert_eq!(errs, ["max_age must be longer than 0s"]);
        let errs = HttpJsonConfig { timeout: Duration::from_secs(31), ..config("http://127.0.0.1:9/m") }.validate();
        assert!(errs.len() == 1 && errs[0].contains("at most 30s"), "{errs:?}");
    }

    #[test]
    fn queries_must_be_pointers() {
        assert!(check_query("/a").is_ok());
        assert!(check_query("").is_ok());
        assert!(check_query("cpuUsage").unwrap_err().contains("/cpuUsage"));
    }
}
