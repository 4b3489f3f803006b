//! `prometheus`: PromQL against a Prometheus HTTP API (or anything that
//! speaks it: Thanos, Mimir, VictoriaMetrics).
//!
//! A query is a PromQL expression, checked when the config is loaded. Each
//! tick runs it as an instant query; the result must be a scalar or exactly
//! one series, unless `aggregate` says how to combine several. When a policy
//! starts with no history for a metric, a range query fills its window
//! (see [`Prometheus::history`]), so windows hold data from the first tick.

use super::{Aggregate, QueryResult, Value, with_token};
use crate::secret::{Secret, SecretRef};
use moontide_core::Timestamp;
use moontide_core::duration::serde_text;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `type = "prometheus"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:9090` (the API is under `/api/v1`).
    pub url: String,
    /// Whole-request timeout (default 5s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// Combine several series with this (default: several series are an error).
    #[serde(default)]
    pub aggregate: Option<Aggregate>,
    /// Environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding a bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Basic auth user name (with `password_env` or `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the basic auth password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the basic auth password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Extra request headers (e.g. `X-Scope-OrgID` for Mimir).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl PrometheusConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let instead = "username with password_env or password_file, or a token with token_env or token_file";
        errs.extend(crate::http::check_url_credentials("url", &self.url, instead));
        errs.extend(super::check_timeout(self.timeout));
        if self.token_env.is_some() && self.token_file.is_some() {
            errs.push("give either token_env or token_file, not both".into());
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            errs.push("give either password_env or password_file, not both".into());
        }
        let password = self.password_env.is_some() || self.password_file.is_some();
        if self.username.is_some() != password {
            errs.push("basic auth needs both `username` and `password_env` or `password_file`".into());
        }
        if self.username.is_some() && (self.token_env.is_some() || self.token_file.is_some()) {
            errs.push("give either a bearer token or basic auth, not both".into());
        }
        errs.extend(crate::http::check_headers(&self.headers));
        errs
    }
}

/// A query must parse as PromQL; the error shows where it does not.
pub fn check_query(q: &str) -> Result<(), String> {
    if q.trim().is_empty() {
        return Err("the PromQL query is empty".into());
    }
    promql_parser::parser::parse(q).map(|_| ()).map_err(|e| format!("`{q}` is not valid PromQL: {e}"))
}

/// A live `prometheus` source.
pub struct Prometheus {
    config: PrometheusConfig,
    client: reqwest::Client,
    token: Option<Secret>,
    password: Option<Secret>,
}

impl Prometheus {
    /// Builds the client and reads the credentials.
    pub fn new(name: &str, config: &PrometheusConfig) -> Result<Self, String> {
        let err = |e: String| format!("source `{name}`: {e}");
        let token = SecretRef::new(config.token_env.clone(), config.token_file.clone()).load().map_err(err)?;
        let password = SecretRef::new(config.password_env.clone(), config.password_file.clone())
            .load()
            .map_err(|e| err(e.replace("token", "password")))?;
        let client = crate::http::client(config.timeout).map_err(err)?;
        Ok(Prometheus { config: config.clone(), client, token, password })
    }

    /// Runs each query as an instant query (concurrently).
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let runs = queries.iter().map(|q| self.instant(q));
        futures_util::future::join_all(runs).await
    }

    async fn instant(&self, query: &str) -> QueryResult {
        let data = self.get("query", &[("query", query.to_string())]).await?;
        let values: Vec<f64> = match data.result_type.as_str() {
            "scalar" => vec![sample_value(&data.result)?],
            "vector" => {
                let series = data.result.as_array().ok_or("malformed vector result")?;
                series
                    .iter()
                    .map(|s| sample_value(s.get("value").unwrap_or(&serde_json::Value::Null)))
                    .collect::<Result<_, _>>()?
            }
            "matrix" => return Err(format!("`{query}` is a range vector; wrap it in a function such as rate(...)")),
            other => return Err(format!("`{query}` gave a {other}, not a number")),
        };
        let value = self.combine(query, &values)?;
        Ok(Value { value, measured_at: None })
    }

    /// One number from a query's values: the only one, or the configured aggregate.
    fn combine(&self, query: &str, values: &[f64]) -> Result<f64, String> {
        let value = match (values.len(), self.config.aggregate) {
            (0, _) => return Err(format!("`{query}` matched no series")),
            (1, _) => values[0],
            (_, Some(agg)) => agg.apply(query, values)?,
            (n, None) => {
                return Err(format!(
                    "`{query}` gave {n} series; aggregate them in PromQL (sum(...)) or set `aggregate` on the source"
                ));
            }
        };
        if value.is_finite() { Ok(value) } else { Err(format!("`{query}` is {value}, not a usable number")) }
    }

    /// The query's values from `start` to `end` every `step` (a range query),
    /// oldest first; a step where the series are absent or not finite is left out.
    pub async fn history(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<(Timestamp, f64)>, String> {
        let secs = |t: Timestamp| format!("{:.3}", t.as_millis() as f64 / 1000.0);
        let params = [
            ("query", query.to_string()),
            ("start", secs(start)),
            ("end", secs(end)),
            ("step", format!("{:.3}", step.as_secs_f64().max(0.001))),
        ];
        let data = self.get("query_range", &params).await?;
        if data.result_type != "matrix" {
            return Err(format!("range query gave a {}, not a matrix", data.result_type));
        }
        // values per timestamp, across series
        let mut by_time: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for series in data.result.as_array().ok_or("malformed matrix result")? {
            for v in series.get("values").and_then(|v| v.as_array()).map(Vec::as_slice).unwrap_or_default() {
                let at = v.get(0).and_then(|t| t.as_f64()).ok_or("malformed sample time")?;
                by_time.entry((at * 1000.0).round() as i64).or_default().push(sample_value(v)?);
            }
        }
        Ok(by_time
            .into_iter()
            .filter_map(|(ms, vs)| self.combine(query, &vs).ok().map(|v| (Timestamp::from_millis(ms), v)))
            .collect())
    }

    /// One API request. `partial_response=false` asks Thanos (and anything
    /// like it) to fail rather than leave out a store it cannot reach, and a
    /// reply that still says it is partial (VictoriaMetrics' `isPartial`) is
    /// refused: a sum over part of the series would understate the load.
    async fn get(&self, endpoint: &str, params: &[(&str, String)]) -> Result<Data, String> {
        let url = format!("{}/api/v1/{endpoint}", self.config.url.trim_end_matches('/'));
        let req = self.client.get(&url).query(params).query(&[("partial_response", "false")]);
        let mut req = with_token(req, self.token.as_ref());
        if let (Some(user), Some(pw)) = (&self.config.username, &self.password) {
            req = req.basic_auth(user, Some(pw.expose()));
        }
        for (k, v) in &self.config.headers {
            req = req.header(k, v);
        }
        let timeout = self.config.timeout;
        let resp = req.send().await.map_err(|e| super::http_json::describe(&e, timeout))?;
        let status = resp.status();
        let body = super::read_body(resp, timeout, &url).await?;
        let reply: Reply = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) if !status.is_success() => return Err(format!("HTTP {status} from {url}")),
            Err(e) => return Err(format!("malformed JSON from {url}: {e}")),
        };
        let warnings = match reply.warnings.as_deref() {
            None | Some([]) => String::new(),
            Some(w) => format!(" (warnings: {})", w.join("; ")),
        };
        match (reply.status.as_str(), reply.data) {
            ("success", Some(_)) if reply.is_partial => {
                Err(format!("the reply from {url} is partial: some series may be missing{warnings}"))
            }
            ("success", Some(data)) => {
                if !warnings.is_empty() {
                    tracing::debug!(target: "moontide::prometheus", "{url}:{warnings}");
                }
                Ok(data)
            }
            _ => Err(format!(
                "Prometheus refused the query (HTTP {status}{}): {}{warnings}",
                reply.error_type.map(|t| format!(", {t}")).unwrap_or_default(),
                reply.error.unwrap_or_else(|| "no reason given".into())
            )),
        }
    }
}

/// The API's envelope.
#[derive(Deserialize)]
struct Reply {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    /// VictoriaMetrics: some of the data is missing (a storage node did not answer).
    #[serde(default, rename = "isPartial")]
    is_partial: bool,
    /// Why the answer may be incomplete or wrong (Prometheus, Thanos, Mimir).
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// The number in a `[time, "value"]` pair ("NaN" and "+Inf" parse; they are refused later).
fn sample_value(pair: &serde_json::Value) -> Result<f64, String> {
    let text = pair.get(1).and_then(|v| v.as_str()).ok_or_else(|| format!("malformed sample: {pair}"))?;
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse::<f64>().map_err(|_| format!("sample value `{t}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn promql_is_checked_with_its_position() {
        assert!(check_query("sum(rate(http_requests_total{job=\"web\"}[1m]))").is_ok());
        assert!(check_query("vllm:num_requests_waiting").is_ok());
        let err = check_query("sum(rate(x[1m])").unwrap_err();
        assert!(err.contains("is not valid PromQL"), "{err}");
        assert!(check_query(" ").unwrap_err().contains("empty"));
    }

    #[test]
    fn credentials_stay_out_of_the_url() {
        let c: PrometheusConfig = toml::from_str("url = \"http://moontide:hunter2@127.0.0.1:9090\"").unwrap();
        let errs = c.validate();
        assert!(errs.len() == 1 && errs[0].contains("password_env") && errs[0].contains("token_env"), "{errs:?}");
        assert!(!errs[0].contains("hunter2"));
        let c: PrometheusConfig = toml::from_str("url = \"http://127.0.0.1:9090\"\ntimeout = \"1m\"").unwrap();
        assert!(c.validate()[0].contains("at most 30s"), "{:?}", c.validate());
    }

    #[test]
    fn sample_values_follow_the_api() {
        assert_eq!(sample_value(&json!([1.5, "42.5"])), Ok(42.5));
        assert_eq!(sample_value(&json!([1.5, "+Inf"])), Ok(f64::INFINITY));
        assert!(sample_value(&json!([1.5, "NaN"])).unwrap().is_nan());
        assert!(sample_value(&json!([1.5, 42])).is_err());
        assert!(sample_value(&json!([1.5, "x"])).unwrap_err().contains("not a number"));
    }
}
