//! `redis`: queue depth from Redis: a list's length (`llen KEY`), or the
//! messages a stream's consumer group has been given and not acknowledged
//! (`xpending KEY GROUP`), or a stream's length (`xlen KEY`).
//!
//! One connection is kept and reused; a failed command drops it, and the
//! next reading connects again. The connection is plaintext: this build's
//! Redis client has no TLS, so `rediss://` is refused when the config is
//! loaded rather than failing at the first reading.

use super::{QueryResult, Value};
use crate::secret::{Secret, SecretRef};
use moontide_core::duration::{format as fmt_d, serde_text};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `type = "redis"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://HOST:PORT/DB`, without credentials. Plaintext: this build has
    /// no TLS for Redis, so `rediss://` is refused.
    pub url: String,
    /// ACL user name (with a password).
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Longest wait for a connection or a command (default 5s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

impl RedisConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "rediss" => errs.push(NO_TLS.into()),
            Ok(u) if u.scheme() != "redis" => {
                errs.push(format!("url: scheme `{}` is not redis (redis://HOST:PORT/DB)", u.scheme()))
            }
            Ok(u) if u.password().is_some() || !u.username().is_empty() => errs
                .push("url: leave credentials out of the URL; give username and password_env or password_file".into()),
            Ok(_) => {}
            Err(e) => errs.push(format!("url: `{}` is not a valid URL ({e})", self.url)),
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            errs.push("give either password_env or password_file, not both".into());
        }
        if self.username.is_some() && self.password_env.is_none() && self.password_file.is_none() {
            errs.push("username needs password_env or password_file".into());
        }
        errs.extend(super::check_timeout(self.timeout));
        errs
    }
}

/// Why `rediss://` is refused.
const NO_TLS: &str = "url: this build has no TLS for redis, so `rediss://` cannot connect; give a redis:// URL \
    of a local TLS-terminating proxy (stunnel, for one) in front of the server, or reach it over a network you trust";

/// What a query asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisQuery {
    /// `llen KEY`: a list's length.
    Llen(String),
    /// `xlen KEY`: a stream's length.
    Xlen(String),
    /// `xpending KEY GROUP`: messages delivered to the group and not acknowledged.
    Xpending(String, String),
}

impl RedisQuery {
    /// Parses `llen KEY`, `xlen KEY` or `xpending KEY GROUP`.
    pub fn parse(q: &str) -> Result<RedisQuery, String> {
        let words: Vec<&str> = q.split_whitespace().collect();
        match words.as_slice() {
            [cmd, key] if cmd.eq_ignore_ascii_case("llen") => Ok(RedisQuery::Llen(key.to_string())),
            [cmd, key] if cmd.eq_ignore_ascii_case("xlen") => Ok(RedisQuery::Xlen(key.to_string())),
            [cmd, key, group] if cmd.eq_ignore_ascii_case("xpending") => {
                Ok(RedisQuery::Xpending(key.to_string(), group.to_string()))
            }
            _ => Err(format!(
                "`{q}` is not a redis query; write \"llen KEY\" (a list), \"xlen KEY\" (a stream) or \"xpending KEY GROUP\" (a consumer group's unacknowledged messages)"
            )),
        }
    }
}

/// A query must be one of the three forms.
pub fn check_query(q: &str) -> Result<(), String> {
    RedisQuery::parse(q).map(|_| ())
}

/// A live `redis` source.
pub struct Redis {
    client: ::redis::Client,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<::redis::aio::MultiplexedConnection>>,
}

impl Redis {
    /// Reads the password and prepares the client (it connects on the first reading).
    pub fn new(name: &str, config: &RedisConfig) -> Result<Self, String> {
        let err = |e: String| format!("source `{name}`: {e}");
        let password: Option<Secret> = SecretRef::new(config.password_env.clone(), config.password_file.clone())
            .load()
            .map_err(|e| err(e.replace("token", "password")))?;
        let mut url = reqwest::Url::parse(&config.url).map_err(|e| err(format!("url: {e}")))?;
        if let Some(p) = &password {
            let user = config.username.as_deref().unwrap_or("default");
            url.set_username(user).map_err(|_| err("url: cannot carry a user name".into()))?;
            url.set_password(Some(p.expose())).map_err(|_| err("url: cannot carry a password".into()))?;
        }
        let client = ::redis::Client::open(url.as_str()).map_err(|e| err(format!("url: {e}")))?;
        Ok(Redis { client, timeout: config.timeout, conn: tokio::sync::Mutex::new(None) })
    }

    /// Runs each query on the one connection.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            out.push(self.one(q).await);
        }
        out
    }

    async fn one(&self, q: &str) -> QueryResult {
        let query = RedisQuery::parse(q)?;
        let mut guard = self.conn.lock().await;
        let mut conn = match guard.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| format!("connecting timed out after {}", fmt_d(self.timeout)))?
                    .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
                *guard = Some(c.clone());
                c
            }
        };
        let cmd = match &query {
            RedisQuery::Llen(k) => ::redis::cmd("LLEN").arg(k).to_owned(),
            RedisQuery::Xlen(k) => ::redis::cmd("XLEN").arg(k).to_owned(),
            RedisQuery::Xpending(k, g) => ::redis::cmd("XPENDING").arg(k).arg(g).to_owned(),
        };
        let reply: Result<::redis::Value, _> =
            match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
                Ok(r) => r,
                Err(_) => {
                    *guard = None;
                    return Err(format!("`{q}` timed out after {}", fmt_d(self.timeout)));
                }
            };
        let reply = reply.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() {
                *guard = None;
            }
            format!("`{q}`: {}", describe(&e))
        })?;
        let n = match (&query, reply) {
            (RedisQuery::Xpending(..), ::redis::Value::Array(items)) => match items.first() {
                Some(::redis::Value::Int(n)) => *n,
                _ => return Err(format!("`{q}`: unexpected XPENDING reply")),
            },
            (_, ::redis::Value::Int(n)) => n,
            (_, other) => return Err(format!("`{q}`: unexpected reply {other:?}")),
        };
        Ok(Value { value: n as f64, measured_at: None })
    }
}

/// A Redis error in a few words, without the connection's URL.
fn describe(e: &::redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(RedisQuery::parse("llen jobs"), Ok(RedisQuery::Llen("jobs".into())));
        assert_eq!(RedisQuery::parse("XLEN events"), Ok(RedisQuery::Xlen("events".into())));
        assert_eq!(
            RedisQuery::parse("xpending events workers"),
            Ok(RedisQuery::Xpending("events".into(), "workers".into()))
        );
        for bad in ["", "llen", "get jobs", "xpending events", "llen a b"] {
            assert!(RedisQuery::parse(bad).unwrap_err().contains("is not a redis query"), "{bad}");
        }
    }

    #[test]
    fn credentials_stay_out_of_the_url() {
        let c = |url: &str| RedisConfig {
            url: url.into(),
            username: None,
            password_env: None,
            password_file: None,
            timeout: default_timeout(),
        };
        assert!(c("redis://127.0.0.1:6379/0").validate().is_empty());
        assert!(c("redis://:pw@127.0.0.1:6379").validate()[0].contains("leave credentials out"));
        assert!(c("http://127.0.0.1:6379").validate()[0].contains("not redis"));
    }

    #[test]
    fn tls_and_long_timeouts_are_refused() {
        let c = |url: &str, timeout: u64| RedisConfig {
            url: url.into(),
            username: None,
            password_env: None,
            password_file: None,
            timeout: Duration::from_secs(timeout),
        };
        // the client is built without TLS: rediss:// would validate, then fail at every reading
        let errs = c("rediss://127.0.0.1:6380/0", 5).validate();
        assert!(errs.len() == 1 && errs[0].contains("no TLS") && errs[0].contains("proxy"), "{errs:?}");
        let errs = c("redis://127.0.0.1:6379/0", 31).validate();
        assert!(errs.len() == 1 && errs[0].contains("at most 30s"), "{errs:?}");
    }
}
