//! `rabbitmq`: a queue's messages through RabbitMQ's management HTTP API
//! (the `rabbitmq_management` plugin): ready (waiting for a consumer),
//! unacked (delivered, not yet acknowledged), or both.
//!
//! The management API refreshes queue figures every few seconds
//! (`collect_statistics_interval`, 5 s by default), so a reading can lag the
//! broker by that much.

use super::{QueryResult, Value};
use crate::secret::{Secret, SecretRef};
use moontide_core::duration::serde_text;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_vhost() -> String {
    "/".into()
}

/// `type = "rabbitmq"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitmqConfig {
    /// The management API's base URL, e.g. `http://127.0.0.1:15672`.
    pub url: String,
    /// The virtual host (default `/`).
    #[serde(default = "default_vhost")]
    pub vhost: String,
    /// The management user.
    pub username: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Whole-request timeout (default 5s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

impl RabbitmqConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        errs.extend(crate::http::check_url_credentials("url", &self.url, "username and password_env or password_file"));
        match (&self.password_env, &self.password_file) {
            (None, None) => errs.push("give password_env or password_file for the management user".into()),
            (Some(_), Some(_)) => errs.push("give either password_env or password_file, not both".into()),
            _ => {}
        }
        errs.extend(super::check_timeout(self.timeout));
        errs
    }
}

/// Which count of a queue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Count {
    /// Waiting for a consumer.
    Ready,
    /// Delivered and not yet acknowledged.
    Unacked,
    /// Both.
    Total,
}

/// Parses `QUEUE` (ready + unacked), `QUEUE ready` or `QUEUE unacked`.
pub fn parse_query(q: &str) -> Result<(String, Count), String> {
    let words: Vec<&str> = q.split_whitespace().collect();
    let count = match words.get(1).copied() {
        None | Some("total") => Count::Total,
        Some("ready") => Count::Ready,
        Some("unacked") => Count::Unacked,
        Some(other) => {
            return Err(format!(
                "`{other}` is not a queue count; write \"QUEUE\", \"QUEUE ready\" or \"QUEUE unacked\""
            ));
        }
    };
    match words.as_slice() {
        [queue] | [queue, _] => Ok((queue.to_string(), count)),
        _ => Err(format!("`{q}` is not a rabbitmq query; write \"QUEUE\", \"QUEUE ready\" or \"QUEUE unacked\"")),
    }
}

/// A query must name a queue and, optionally, a count.
pub fn check_query(q: &str) -> Result<(), String> {
    parse_query(q).map(|_| ())
}

#[derive(Deserialize)]
struct QueueFigures {
    #[serde(default)]
    messages_ready: Option<f64>,
    #[serde(default)]
    messages_unacknowledged: Option<f64>,
}

/// A live `rabbitmq` source.
pub struct Rabbitmq {
    config: RabbitmqConfig,
    client: reqwest::Client,
    password: Secret,
}

impl Rabbitmq {
    /// Builds the client and reads the password.
    pub fn new(name: &str, config: &RabbitmqConfig) -> Result<Self, String> {
        let err = |e: String| format!("source `{name}`: {e}");
        let password = SecretRef::new(config.password_env.clone(), config.password_file.clone())
            .load()
            .map_err(|e| err(e.replace("token", "password")))?
            .ok_or_else(|| err("a password is needed".into()))?;
        let client = crate::http::client(config.timeout).map_err(err)?;
        Ok(Rabbitmq { config: config.clone(), client, password })
    }

    /// One request per queue asked about.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        futures_util::future::join_all(queries.iter().map(|q| self.one(q))).await
    }

    async fn one(&self, q: &str) -> QueryResult {
        let (queue, count) = parse_query(q)?;
        let mut url = reqwest::Url::parse(&self.config.url).map_err(|e| e.to_string())?;
        url.path_segments_mut().map_err(|_| "url cannot have a path".to_string())?.pop_if_empty().extend([
            "api",
            "queues",
            self.config.vhost.as_str(),
            queue.as_str(),
        ]);
        let resp = self
            .client
            .get(url)
            .basic_auth(&self.config.username, Some(self.password.expose()))
            .send()
            .await
            .map_err(|e| super::http_json::describe(&e, self.config.timeout))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(format!("no queue `{queue}` in vhost `{}`", self.config.vhost));
        }
        if !status.is_success() {
            return Err(format!("HTTP {status} from the management API"));
        }
        let body = super::read_body(resp, self.config.timeout, "the management API").await?;
        let figures: QueueFigures =
            serde_json::from_slice(&body).map_err(|e| format!("malformed reply from the management API: {e}"))?;
        let (ready, unacked) = match (figures.messages_ready, figures.messages_unacknowledged) {
            (Some(r), Some(u)) => (r, u),
            // a queue declared moments ago has no figures until the next statistics round
            _ => {
                return Err(format!(
                    "queue `{queue}` has no figures yet (the management API refreshes them every few seconds)"
                ));
            }
        };
        let value = match count {
            Count::Ready => ready,
            Count::Unacked => unacked,
            Count::Total => ready + unacked,
        };
        Ok(Value { value, measured_at: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_query("jobs"), Ok(("jobs".into(), Count::Total)));
        assert_eq!(parse_query("jobs ready"), Ok(("jobs".into(), Count::Ready)));
        assert_eq!(parse_query("jobs unacked"), Ok(("jobs".into(), Count::Unacked)));
        assert!(parse_query("jobs waiting").unwrap_err().contains("not a queue count"));
        assert!(parse_query("").unwrap_err().contains("not a rabbitmq query"));
        assert!(parse_query("a b c").is_err());
    }

    #[test]
    fn settings_are_checked() {
        let c = |url: &str| RabbitmqConfig {
            url: url.into(),
            vhost: default_vhost(),
            username: "moontide".into(),
            password_env: Some("MQ_PASSWORD".into()),
            password_file: None,
            timeout: default_timeout(),
        };
        assert!(c("http://127.0.0.1:15672").validate().is_empty());
        let errs = c("http://guest:hunter2@127.0.0.1:15672").validate();
        assert!(errs.len() == 1 && errs[0].contains("leave credentials out"), "{errs:?}");
        assert!(!errs[0].contains("hunter2"));
        let errs = RabbitmqConfig { timeout: Duration::from_secs(60), ..c("http://127.0.0.1:15672") }.validate();
        assert!(errs.len() == 1 && errs[0].contains("at most 30s"), "{errs:?}");
    }
}
