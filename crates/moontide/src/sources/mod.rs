//! Sources: where numbers come from. One config variant and one module each.

pub mod exposition;
pub mod host;
pub mod http_json;
pub mod model_server;
pub mod nats;
pub mod postgres;
pub mod prometheus;
pub mod push;
pub mod rabbitmq;
pub mod redis;
pub mod scrape;

use crate::secret::Secret;
use moontide_core::Timestamp;
use serde::Deserialize;
use std::time::Duration;

/// `[sources.NAME]`: one variant per source kind, chosen by `type = "..."`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// GET a URL and pick numbers out of the JSON by JSON pointer.
    HttpJson(http_json::HttpJsonConfig),
    /// This machine's CPU, memory and network.
    Host(host::HostConfig),
    /// PromQL against a Prometheus HTTP API.
    Prometheus(prometheus::PrometheusConfig),
    /// `/metrics` endpoints in the Prometheus text format, read directly.
    Scrape(scrape::ScrapeConfig),
    /// Values other systems push to Moontide's server.
    Push(push::PushConfig),
    /// Queue depth from Redis lists and streams.
    Redis(redis::RedisConfig),
    /// A RabbitMQ queue's messages (management API).
    Rabbitmq(rabbitmq::RabbitmqConfig),
    /// A NATS JetStream consumer's backlog.
    Nats(nats::NatsConfig),
    /// A number from a read-only SQL query.
    Postgres(postgres::PostgresConfig),
}

impl SourceConfig {
    /// The kind's name as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::HttpJson(_) => "http_json",
            SourceConfig::Host(_) => "host",
            SourceConfig::Prometheus(_) => "prometheus",
            SourceConfig::Scrape(_) => "scrape",
            SourceConfig::Push(_) => "push",
            SourceConfig::Redis(_) => "redis",
            SourceConfig::Rabbitmq(_) => "rabbitmq",
            SourceConfig::Nats(_) => "nats",
            SourceConfig::Postgres(_) => "postgres",
        }
    }

    /// Whether the source has a whole document a script-mode URL can map to.
    pub fn has_document(&self) -> bool {
        matches!(self, SourceConfig::HttpJson(_) | SourceConfig::Host(_) | SourceConfig::Push(_))
    }

    /// Checks a query for this source; the error says what a valid one looks like.
    pub fn check_query(&self, query: &str) -> Result<(), String> {
        match self {
            SourceConfig::HttpJson(_) => http_json::check_query(query),
            SourceConfig::Host(_) => host::HostMetric::parse(query).map(|_| ()),
            SourceConfig::Prometheus(_) => prometheus::check_query(query),
            SourceConfig::Scrape(c) => c.check_query(query),
            SourceConfig::Push(_) => push::check_query(query),
            SourceConfig::Redis(_) => redis::check_query(query),
            SourceConfig::Rabbitmq(_) => rabbitmq::check_query(query),
            SourceConfig::Nats(_) => nats::check_query(query),
            SourceConfig::Postgres(_) => postgres::check_query(query),
        }
    }

    /// Problems with the settings themselves.
    pub fn validate(&self) -> Vec<String> {
        match self {
            SourceConfig::HttpJson(c) => c.validate(),
            SourceConfig::Host(c) => c.validate(),
            SourceConfig::Prometheus(c) => c.validate(),
            SourceConfig::Scrape(c) => c.validate(),
            SourceConfig::Push(c) => c.validate(),
            SourceConfig::Redis(c) => c.validate(),
            SourceConfig::Rabbitmq(c) => c.validate(),
            SourceConfig::Nats(c) => c.validate(),
            SourceConfig::Postgres(c) => c.validate(),
        }
    }
}

/// How several series are combined into one number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Their sum.
    Sum,
    /// Their mean.
    Avg,
    /// The largest.
    Max,
    /// The smallest.
    Min,
}

impl Aggregate {
    /// Combines `query`'s `values` (not empty). A NaN or ±Inf among them
    /// fails the reading, whatever the aggregate (`f64::max` and `min` would
    /// skip a NaN), and so does a sum too large to be finite.
    pub fn apply(self, query: &str, values: &[f64]) -> Result<f64, String> {
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(format!("`{query}` has a series that is {v}, not a usable number"));
        }
        let value = match self {
            Aggregate::Sum => values.iter().sum(),
            Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
            Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        };
        if value.is_finite() { Ok(value) } else { Err(format!("`{query}` is {value}, not a usable number")) }
    }
}

/// A value read from a source.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The number.
    pub value: f64,
    /// When the source says the value was measured, if it says so.
    pub measured_at: Option<Timestamp>,
}

/// The result of one query.
pub type QueryResult = Result<Value, String>;

/// A live source, built from its config.
pub enum Source {
    /// See [`http_json::HttpJson`].
    HttpJson(http_json::HttpJson),
    /// See [`host::Host`].
    Host(host::Host),
    /// See [`prometheus::Prometheus`].
    Prometheus(prometheus::Prometheus),
    /// See [`scrape::Scrape`].
    Scrape(scrape::Scrape),
    /// See [`push::Push`].
    Push(std::sync::Arc<push::Push>),
    /// See [`redis::Redis`].
    Redis(redis::Redis),
    /// See [`rabbitmq::Rabbitmq`].
    Rabbitmq(rabbitmq::Rabbitmq),
    /// See [`nats::Nats`].
    Nats(nats::Nats),
    /// See [`postgres::Postgres`].
    Postgres(postgres::Postgres),
}

impl Source {
    /// Builds a source; fails when a secret it needs cannot be read.
    pub fn build(name: &str, config: &SourceConfig) -> Result<Source, String> {
        Ok(match config {
            SourceConfig::HttpJson(c) => Source::HttpJson(http_json::HttpJson::new(name, c)?),
            SourceConfig::Host(c) => Source::Host(host::Host::new(c).map_err(|e| format!("source `{name}`: {e}"))?),
            SourceConfig::Prometheus(c) => Source::Prometheus(prometheus::Prometheus::new(name, c)?),
            SourceConfig::Scrape(c) => Source::Scrape(scrape::Scrape::new(name, c)?),
            SourceConfig::Push(c) => Source::Push(std::sync::Arc::new(push::Push::new(name, c)?)),
            SourceConfig::Redis(c) => Source::Redis(redis::Redis::new(name, c)?),
            SourceConfig::Rabbitmq(c) => Source::Rabbitmq(rabbitmq::Rabbitmq::new(name, c)?),
            SourceConfig::Nats(c) => Source::Nats(nats::Nats::new(name, c)?),
            SourceConfig::Postgres(c) => Source::Postgres(postgres::Postgres::new(name, c)?),
        })
    }

    /// Reads all `queries` in one go (one request for an HTTP source), one result each.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        match self {
            Source::HttpJson(s) => s.read(queries).await,
            Source::Host(s) => s.read(queries).await,
            Source::Prometheus(s) => s.read(queries).await,
            Source::Scrape(s) => s.read(queries).await,
            Source::Push(s) => s.read(queries),
            Source::Redis(s) => s.read(queries).await,
            Source::Rabbitmq(s) => s.read(queries).await,
            Source::Nats(s) => s.read(queries).await,
            Source::Postgres(s) => s.read(queries).await,
        }
    }

    /// A query's past values from `start` to `end` every `step`, for sources
    /// that keep history (None for the others): fills a policy's windows when
    /// it starts with none.
    pub async fn history(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: std::time::Duration,
    ) -> Option<Result<Vec<(Timestamp, f64)>, String>> {
        match self {
            Source::Prometheus(s) => Some(s.history(query, start, end, step).await),
            _ => None,
        }
    }

    /// The source's whole reading as JSON at `now`, for script-mode requests
    /// mapped to it: an `http_json` source's document, a `host` source's four
    /// metrics, a `push` source's values pushed within its `max_age`.
    pub async fn document(&self, now: moontide_core::Timestamp) -> Result<serde_json::Value, String> {
        match self {
            Source::HttpJson(s) => s.document().await,
            Source::Push(s) => Ok(s.document(now)),
            Source::Host(s) => {
                let names = ["cpu", "memory", "net_rx", "net_tx"].map(String::from);
                let values = s.read(&names).await;
                let mut doc = serde_json::Map::new();
                for (name, v) in names.iter().zip(values) {
                    doc.insert(name.clone(), serde_json::json!(v?.value));
                }
                Ok(serde_json::Value::Object(doc))
            }
            _ => Err("only http_json, host and push sources have a document to map a script URL to".into()),
        }
    }

    /// How old a value may be before it counts as stale, if the source knows when values were measured.
    pub fn max_age(&self) -> Option<std::time::Duration> {
        match self {
            Source::HttpJson(s) => s.max_age(),
            Source::Push(s) => Some(s.max_age()),
            _ => None,
        }
    }
}

/// Longest `timeout` a source may set; the engine stops waiting for one
/// source's reading after twice this, whatever the source's own timeout
/// (`READ_TIMEOUT` in engine/tick.rs).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Problems with a source's `timeout`: zero, or longer than the engine waits for a reading.
pub(crate) fn check_timeout(timeout: Duration) -> Option<String> {
    let fmt = moontide_core::duration::format;
    if timeout.is_zero() {
        Some("timeout must be longer than 0s".into())
    } else if timeout > MAX_TIMEOUT {
        let (timeout, max) = (fmt(timeout), fmt(MAX_TIMEOUT));
        Some(format!("timeout: {timeout} is longer than the engine waits for one reading ({max}); give at most {max}"))
    } else {
        None
    }
}

/// Most bytes read from one HTTP reply's body.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Reads a reply's body in chunks, refusing one larger than [`BODY_LIMIT`]
/// before holding it: the error names `from` (a URL, or what it is).
pub(crate) async fn read_body(mut resp: reqwest::Response, timeout: Duration, from: &str) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_json::describe(&e, timeout))? {
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(format!("the body from {from} is larger than {} MiB", BODY_LIMIT / (1024 * 1024)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends the bearer token, if any.
pub(crate) fn with_token(req: reqwest::RequestBuilder, token: Option<&Secret>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t.expose()),
        None => req,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates() {
        let v = [1.0, 4.0, 7.0];
        assert_eq!(Aggregate::Sum.apply("q", &v), Ok(12.0));
        assert_eq!(Aggregate::Avg.apply("q", &v), Ok(4.0));
        assert_eq!(Aggregate::Max.apply("q", &v), Ok(7.0));
        assert_eq!(Aggregate::Min.apply("q", &v), Ok(1.0));
    }

    #[test]
    fn a_value_that_is_not_finite_fails_every_aggregate() {
        // f64::max and f64::min skip a NaN: max(1, NaN, 7) would read 7
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for agg in [Aggregate::Sum, Aggregate::Avg, Aggregate::Max, Aggregate::Min] {
                let err = agg.apply("load{job=\"web\"}", &[1.0, bad, 7.0]).unwrap_err();
                assert!(err.contains("`load{job=\"web\"}`") && err.contains("not a usable number"), "{agg:?}: {err}");
            }
        }
        let err = Aggregate::Sum.apply("big", &[f64::MAX, f64::MAX]).unwrap_err();
        assert!(err.contains("`big` is inf"), "{err}");
    }

    #[test]
    fn timeouts_are_longer_than_zero_and_at_most_what_the_engine_waits() {
        assert_eq!(check_timeout(Duration::from_secs(5)), None);
        assert_eq!(check_timeout(MAX_TIMEOUT), None);
        assert!(check_timeout(Duration::ZERO).unwrap().contains("longer than 0s"));
        let err = check_timeout(Duration::from_secs(31)).unwrap();
        assert!(err.contains("31s") && err.contains("at most 30s"), "{err}");
    }
}
