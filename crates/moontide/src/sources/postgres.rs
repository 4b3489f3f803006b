//! `postgres`: a number from a SQL query, such as the jobs waiting in a
//! table-backed queue (`SELECT count(*) FROM jobs WHERE state = 'queued'`).
//!
//! Every query runs in a READ ONLY transaction with a statement timeout,
//! so a policy's query can neither change data nor hold the database. The
//! query must return one row whose first column is a number (an integer,
//! a float, or `numeric` cast with `::float8`). One connection is kept and
//! reused; a failure drops it and the next reading connects again.
//!
//! The connection is plaintext: this build's PostgreSQL client has no TLS.
//! `sslmode=require`, `verify-ca` and `verify-full` are refused when the
//! config is loaded (they would fail every reading); `prefer`, libpq's
//! default, connects without TLS.

use super::{QueryResult, Value};
use crate::secret::{Secret, SecretRef};
use moontide_core::duration::{format as fmt_d, serde_text};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::types::Type;

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `type = "postgres"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A connection string without a password: `postgres://USER@HOST:PORT/DB`
    /// or `host=... user=... dbname=...`. Plaintext: an `sslmode` that needs
    /// TLS is refused, as this build has no TLS for PostgreSQL.
    pub url: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Longest wait for a connection, and each query's statement timeout (default 5s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

impl PostgresConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let tls = sslmode(&self.url).filter(|m| matches!(*m, "require" | "verify-ca" | "verify-full"));
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(c) if c.get_password().is_some() => errs.push(
                "url: leave the password out of the connection string; give password_env or password_file".into(),
            ),
            Ok(_) => {}
            // verify-ca and verify-full do not parse without TLS support: said below
            Err(_) if tls.is_some() => {}
            // the parser's message can quote the string, password included: say what is wrong without it
            Err(_) => errs.push("url: not a PostgreSQL connection string (postgres://USER@HOST:PORT/DB)".into()),
        }
        if let Some(mode) = tls {
            errs.push(format!(
                "url: this build has no TLS for postgres, so sslmode={mode} cannot connect; connect with \
                 sslmode=disable to a local TLS-terminating proxy (stunnel, for one) in front of the server, \
                 or over a network you trust"
            ));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            errs.push("give either password_env or password_file, not both".into());
        }
        errs.extend(super::check_timeout(self.timeout));
        errs
    }
}

/// The `sslmode` a connection string sets, as written (`?sslmode=...` in a
/// URL, `sslmode=...` or `sslmode = '...'` among `key=value` pairs).
fn sslmode(url: &str) -> Option<&str> {
    // the key itself: after the start, `?`, `&` or a space (not `application_name=sslmode_x`)
    url.match_indices("sslmode").find_map(|(at, _)| {
        let key = url[..at].chars().next_back().is_none_or(|c| matches!(c, '?' | '&') || c.is_whitespace());
        let rest = url[at + "sslmode".len()..].trim_start().strip_prefix('=')?;
        let rest = rest.trim_start().trim_start_matches('\'');
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(rest.len());
        key.then_some(&rest[..end])
    })
}

/// A query must be one SQL statement.
pub fn check_query(q: &str) -> Result<(), String> {
    let t = q.trim().trim_end_matches(';').trim();
    if t.is_empty() {
        return Err("the SQL query is empty".into());
    }
    if t.contains(';') {
        return Err(format!("`{q}` holds several statements; give one SELECT"));
    }
    Ok(())
}

/// A live `postgres` source.
pub struct Postgres {
    config: tokio_postgres::Config,
    timeout: Duration,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl Postgres {
    /// Reads the password (it connects on the first reading).
    pub fn new(name: &str, config: &PostgresConfig) -> Result<Self, String> {
        let err = |e: String| format!("source `{name}`: {e}");
        let password: Option<Secret> = SecretRef::new(config.password_env.clone(), config.password_file.clone())
            .load()
            .map_err(|e| err(e.replace("token", "password")))?;
        let mut pg: tokio_postgres::Config =
            config.url.parse().map_err(|_| err("url: not a PostgreSQL connection string".into()))?;
        if let Some(p) = password {
            pg.password(p.expose());
        }
        pg.connect_timeout(config.timeout).application_name("moontide");
        Ok(Postgres { config: pg, timeout: config.timeout, client: tokio::sync::Mutex::new(None) })
    }

    /// Runs each query in its own read-only transaction.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let mut guard = self.client.lock().await;
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            let r = match tokio::time::timeout(self.timeout * 2, self.one(&mut guard, q)).await {
                Ok(r) => r,
                Err(_) => {
                    *guard = None;
                    Err(format!("timed out after {}", fmt_d(self.timeout * 2)))
                }
            };
            out.push(r);
        }
        out
    }

    async fn one(&self, slot: &mut Option<tokio_postgres::Client>, q: &str) -> QueryResult {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(target: "moontide::postgres", "connection closed: {e}");
                }
            });
            *slot = Some(client);
        }
        let client = slot.as_mut().ok_or("no connection")?;
        let result = async {
            let tx = client.build_transaction().read_only(true).start().await?;
            tx.batch_execute(&format!("SET LOCAL statement_timeout = {}", self.timeout.as_millis().max(1))).await?;
            let rows = tx.query(q, &[]).await;
            // read-only: nothing to keep
            let _ = tx.rollback().await;
            rows
        }
        .await;
        let rows = result.map_err(|e| {
            if e.is_closed() {
                *slot = None;
            }
            describe(&e)
        })?;
        let row = match rows.as_slice() {
            [row] => row,
            [] => return Err("the query returned no row".into()),
            many => return Err(format!("the query returned {} rows; it must return one", many.len())),
        };
        let column = row.columns().first().ok_or("the query returned no column")?;
        let value = match *column.type_() {
            Type::INT2 => row.try_get::<_, Option<i16>>(0).map(|v| v.map(f64::from)),
            Type::INT4 => row.try_get::<_, Option<i32>>(0).map(|v| v.map(f64::from)),
            Type::INT8 => row.try_get::<_, Option<i64>>(0).map(|v| v.map(|n| n as f64)),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(0).map(|v| v.map(f64::from)),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(0),
            ref other => {
                return Err(format!(
                    "the first column is of type {other}; return an integer or a float (cast with ::float8)"
                ));
            }
        }
        .map_err(|e| describe(&e))?;
        match value {
            Some(v) if v.is_finite() => Ok(Value { value: v, measured_at: None }),
            Some(v) => Err(format!("the query returned {v}, not a usable number")),
            None => Err("the query returned NULL".into()),
        }
    }
}

/// A PostgreSQL error in a few words: the server's message when there is one.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_only() {
        assert!(check_query("SELECT count(*) FROM jobs;").is_ok());
        assert!(check_query("SELECT 1; DROP TABLE jobs").unwrap_err().contains("several statements"));
        assert!(check_query("  ").unwrap_err().contains("empty"));
    }

    #[test]
    fn passwords_stay_out_of_the_connection_string() {
        let c = |url: &str| PostgresConfig {
            url: url.into(),
            password_env: None,
            password_file: None,
            timeout: default_timeout(),
        };
        assert!(c("postgres://moontide@127.0.0.1:5432/test").validate().is_empty());
        assert!(c("host=127.0.0.1 user=moontide dbname=test").validate().is_empty());
        let errs = c("postgres://moontide:hunter2@127.0.0.1/test").validate();
        assert!(errs[0].contains("leave the password out"), "{errs:?}");
        assert!(!errs[0].contains("hunter2"));
    }

    #[test]
    fn an_sslmode_that_needs_tls_is_refused() {
        let c = |url: &str| PostgresConfig {
            url: url.into(),
            password_env: None,
            password_file: None,
            timeout: default_timeout(),
        };
        // the client is built without TLS: these would validate, then fail at every reading
        for url in [
            "postgres://moontide@127.0.0.1:5432/test?sslmode=require",
            "postgres://moontide@db.internal/test?application_name=x&sslmode=verify-full",
            "host=127.0.0.1 user=moontide dbname=test sslmode=verify-ca",
            "host=127.0.0.1 user=moontide dbname=test sslmode = 'require'",
        ] {
            let errs = c(url).validate();
            assert!(errs.len() == 1 && errs[0].contains("no TLS") && errs[0].contains("sslmode="), "{url}: {errs:?}");
        }
        // prefer (the default) and disable connect in plaintext
        for url in ["postgres://moontide@127.0.0.1/test?sslmode=prefer", "host=127.0.0.1 user=x sslmode=disable"] {
            assert!(c(url).validate().is_empty(), "{url}: {:?}", c(url).validate());
        }
        assert_eq!(sslmode("host=h sslmode='verify-full' user=x"), Some("verify-full"));
        assert_eq!(sslmode("host=h user=x"), None);
        // the key, not the word inside another value
        assert_eq!(sslmode("postgres://h/db?application_name=sslmode_probe&sslmode=require"), Some("require"));
        assert_eq!(sslmode("postgres://h/db?application_name=nosslmode=x"), None);
        let long = PostgresConfig { timeout: Duration::from_secs(45), ..c("host=127.0.0.1 user=x") }.validate();
        assert!(long.len() == 1 && long[0].contains("at most 30s"), "{long:?}");
    }
}
