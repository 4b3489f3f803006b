//! Sources: where numbers come from. One config variant and one module each.

pub mod host;
pub mod http_json;

use crate::secret::Secret;
use moontide_core::Timestamp;
use serde::Deserialize;

/// `[sources.NAME]`: one variant per source kind, chosen by `type = "..."`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// GET a URL and pick numbers out of the JSON by JSON pointer.
    HttpJson(http_json::HttpJsonConfig),
    /// This machine's CPU, memory and network.
    Host(host::HostConfig),
}

impl SourceConfig {
    /// The kind's name as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::HttpJson(_) => "http_json",
            SourceConfig::Host(_) => "host",
        }
    }

    /// Checks a query for this source; the error says what a valid one looks like.
    pub fn check_query(&self, query: &str) -> Result<(), String> {
        match self {
            SourceConfig::HttpJson(_) => http_json::check_query(query),
            SourceConfig::Host(_) => host::HostMetric::parse(query).map(|_| ()),
        }
    }

    /// Problems with the settings themselves.
    pub fn validate(&self) -> Vec<String> {
        match self {
            SourceConfig::HttpJson(c) => c.validate(),
            SourceConfig::Host(_) => Vec::new(),
        }
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
}

impl Source {
    /// Builds a source; fails when a secret it needs cannot be read.
    pub fn build(name: &str, config: &SourceConfig) -> Result<Source, String> {
        Ok(match config {
            SourceConfig::HttpJson(c) => Source::HttpJson(http_json::HttpJson::new(name, c)?),
            SourceConfig::Host(c) => Source::Host(host::Host::new(c).map_err(|e| format!("source `{name}`: {e}"))?),
        })
    }

    /// Reads all `queries` in one go (one request for an HTTP source), one result each.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        match self {
            Source::HttpJson(s) => s.read(queries).await,
            Source::Host(s) => s.read(queries).await,
        }
    }

    /// The source's whole reading as JSON, for script-mode requests mapped to
    /// it: an `http_json` source's document, a `host` source's four metrics.
    pub async fn document(&self) -> Result<serde_json::Value, String> {
        match self {
            Source::HttpJson(s) => s.document().await,
            Source::Host(s) => {
                let names = ["cpu", "memory", "net_rx", "net_tx"].map(String::from);
                let values = s.read(&names).await;
                let mut doc = serde_json::Map::new();
                for (name, v) in names.iter().zip(values) {
                    doc.insert(name.clone(), serde_json::json!(v?.value));
                }
                Ok(serde_json::Value::Object(doc))
            }
        }
    }

    /// How old a value may be before it counts as stale, if the source knows when values were measured.
    pub fn max_age(&self) -> Option<std::time::Duration> {
        match self {
            Source::HttpJson(s) => s.max_age(),
            Source::Host(_) => None,
        }
    }
}

/// Sends the bearer token, if any.
pub(crate) fn with_token(req: reqwest::RequestBuilder, token: Option<&Secret>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t.expose()),
        None => req,
    }
}
