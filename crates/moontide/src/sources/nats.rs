//! `nats`: a NATS JetStream consumer's backlog: messages in its stream not
//! yet delivered to it (`pending`), delivered and not yet acknowledged
//! (`ack_pending`), or both (`total`).
//!
//! One connection is kept (the client reconnects by itself once it has
//! connected).

use super::{QueryResult, Value};
use crate::secret::{Secret, SecretRef};
use moontide_core::duration::{format as fmt_d, serde_text};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `type = "nats"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Environment variable holding an auth token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding an auth token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// User name (with password_env or password_file) instead of a token.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Longest wait for a connection or a request (default 5s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

impl NatsConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !(self.url.starts_with("nats://") || self.url.starts_with("tls://")) {
            errs.push(format!("url: `{}` is not a nats:// or tls:// URL", self.url));
        } else if reqwest::Url::parse(&self.url).is_ok_and(|u| u.password().is_some()) {
            errs.push(
                "url: leave credentials out of the URL; give token_env/token_file or username and a password".into(),
            );
        }
        if self.token_env.is_some() && self.token_file.is_some() {
            errs.push("give either token_env or token_file, not both".into());
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            errs.push("give either password_env or password_file, not both".into());
        }
        let password = self.password_env.is_some() || self.password_file.is_some();
        if self.username.is_some() != password {
            errs.push("a user needs both `username` and password_env or password_file".into());
        }
        if self.username.is_some() && (self.token_env.is_some() || self.token_file.is_some()) {
            errs.push("give either a token or a user, not both".into());
        }
        errs.extend(super::check_timeout(self.timeout));
        errs
    }
}

/// Which backlog of a consumer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backlog {
    /// In the stream, not yet delivered to the consumer.
    Pending,
    /// Delivered, not yet acknowledged.
    AckPending,
    /// Both.
    Total,
}

/// Parses `STREAM CONSUMER [pending|ack_pending|total]` (default pending).
pub fn parse_query(q: &str) -> Result<(String, String, Backlog), String> {
    let words: Vec<&str> = q.split_whitespace().collect();
    let (stream, consumer, which) = match words.as_slice() {
        [s, c] => (s, c, Backlog::Pending),
        [s, c, w] => (
            s,
            c,
            match *w {
                "pending" => Backlog::Pending,
                "ack_pending" => Backlog::AckPending,
                "total" => Backlog::Total,
                other => return Err(format!("`{other}` is not a backlog; write pending, ack_pending or total")),
            },
        ),
        _ => {
            return Err(format!(
                "`{q}` is not a nats query; write \"STREAM CONSUMER\" (optionally followed by pending, ack_pending or total)"
            ));
        }
    };
    Ok((stream.to_string(), consumer.to_string(), which))
}

/// A query must name a stream and a consumer.
pub fn check_query(q: &str) -> Result<(), String> {
    parse_query(q).map(|_| ())
}

/// A live `nats` source.
pub struct Nats {
    url: String,
    token: Option<Secret>,
    user: Option<(String, Secret)>,
    timeout: Duration,
    client: tokio::sync::Mutex<Option<async_nats::Client>>,
}

impl Nats {
    /// Reads the credentials (it connects on the first reading).
    pub fn new(name: &str, config: &NatsConfig) -> Result<Self, String> {
        let err = |e: String| format!("source `{name}`: {e}");
        let token = SecretRef::new(config.token_env.clone(), config.token_file.clone()).load().map_err(err)?;
        let password = SecretRef::new(config.password_env.clone(), config.password_file.clone())
            .load()
            .map_err(|e| err(e.replace("token", "password")))?;
        let user = config.username.clone().zip(password);
        Ok(Nats {
            url: config.url.clone(),
            token,
            user,
            timeout: config.timeout,
            client: tokio::sync::Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<async_nats::Client, String> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let mut opts = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .name("moontide");
        if let Some(t) = &self.token {
            opts = opts.token(t.expose().to_string());
        }
        if let Some((u, p)) = &self.user {
            opts = opts.user_and_password(u.clone(), p.expose().to_string());
        }
        let c = tokio::time::timeout(self.timeout, opts.connect(self.url.as_str()))
            .await
            .map_err(|_| format!("connecting timed out after {}", fmt_d(self.timeout)))?
            .map_err(|e| format!("cannot connect: {e}"))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// One consumer-info request per query.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => return queries.iter().map(|_| Err(e.clone())).collect(),
        };
        let js = async_nats::jetstream::new(client);
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            out.push(self.one(&js, q).await);
        }
        out
    }

    async fn one(&self, js: &async_nats::jetstream::Context, q: &str) -> QueryResult {
        let (stream, consumer, which) = parse_query(q)?;
        let ask = async {
            let s = js.get_stream_no_info(&stream).await.map_err(|e| format!("stream `{stream}`: {e}"))?;
            s.consumer_info(&consumer).await.map_err(|e| format!("consumer `{consumer}` of stream `{stream}`: {e}"))
        };
        let info = tokio::time::timeout(self.timeout, ask)
            .await
            .map_err(|_| format!("`{q}` timed out after {}", fmt_d(self.timeout)))??;
        let value = match which {
            Backlog::Pending => info.num_pending as f64,
            Backlog::AckPending => info.num_ack_pending as f64,
            Backlog::Total => info.num_pending as f64 + info.num_ack_pending as f64,
        };
        Ok(Value { value, measured_at: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_query("jobs workers"), Ok(("jobs".into(), "workers".into(), Backlog::Pending)));
        assert_eq!(parse_query("jobs workers ack_pending"), Ok(("jobs".into(), "workers".into(), Backlog::AckPending)));
        assert_eq!(parse_query("jobs workers total").unwrap().2, Backlog::Total);
        assert!(parse_query("jobs").unwrap_err().contains("not a nats query"));
        assert!(parse_query("jobs workers lots").unwrap_err().contains("not a backlog"));
    }

    #[test]
    fn a_timeout_longer_than_the_engine_waits_is_refused() {
        let c: NatsConfig = toml::from_str("url = \"nats://127.0.0.1:4222\"\ntimeout = \"2m\"").unwrap();
        let errs = c.validate();
        assert!(errs.len() == 1 && errs[0].contains("at most 30s"), "{errs:?}");
    }
}
