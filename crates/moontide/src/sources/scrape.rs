//! `scrape`: read `/metrics` endpoints in the Prometheus text format
//! directly, without a Prometheus server: model servers (vLLM, TGI),
//! node_exporter, any instrumented service.
//!
//! A query is a PromQL series selector, `name{label="value", other=~"re.*"}`,
//! checked when the config is loaded. Each tick GETs every endpoint (in
//! parallel), keeps the samples the selector matches, and combines them
//! across series and endpoints with `aggregate` (default `sum`). An
//! endpoint that fails fails the reading: a partial sum would understate
//! the load.
//!
//! With `preset = "vllm"` or `"tgi"`, a query may also be a name like
//! `queue_depth` or `tokens_per_second` (see [`super::model_server`]). A
//! counter read as a rate is followed series by series (endpoint, name and
//! labels), so one restarted replica resets only its own counter.

use super::model_server::{self, Preset};
use super::{Aggregate, QueryResult, Value, exposition, with_token};
use crate::secret::{Secret, SecretRef};
use moontide_core::duration::serde_text;
use promql_parser::label::Matcher;
use promql_parser::parser::Expr;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_aggregate() -> Aggregate {
    Aggregate::Sum
}

/// `type = "scrape"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The endpoints, e.g. `["http://10.0.0.5:8000/metrics"]`.
    pub urls: Vec<String>,
    /// How matching samples combine, across series and endpoints (default sum).
    #[serde(default = "default_aggregate")]
    pub aggregate: Aggregate,
    /// Whole-request timeout per endpoint (default 5s).
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
    /// A model server whose metric names queries may use (`vllm`, `tgi`).
    #[serde(default)]
    pub preset: Option<Preset>,
}

impl ScrapeConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.urls.is_empty() {
            errs.push("urls: give at least one endpoint".into());
        }
        let instead = "a token with token_env or token_file";
        errs.extend(self.urls.iter().filter_map(|u| crate::http::check_url_credentials("urls", u, instead)));
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for u in &self.urls {
            let key = endpoint(u);
            if seen.contains(&key) {
                errs.push(format!("urls: `{key}` is listed twice; list each endpoint once (or it counts twice)"));
            } else {
                seen.insert(key);
            }
        }
        errs.extend(super::check_timeout(self.timeout));
        if self.token_env.is_some() && self.token_file.is_some() {
            errs.push("give either token_env or token_file, not both".into());
        }
        errs.extend(crate::http::check_headers(&self.headers));
        errs
    }

    /// A query must be a series selector, or a name of the preset.
    pub fn check_query(&self, q: &str) -> Result<(), String> {
        self.resolve(q).map(|_| ())
    }

    /// The selector, aggregation and rate-ness a query stands for.
    fn resolve(&self, q: &str) -> Result<(Selector, Aggregate, bool), String> {
        if let Some(preset) = self.preset
            && let Some(p) = preset.query(q)
        {
            let p = p?;
            return Ok((Selector::parse(p.selector)?, p.aggregate, p.rate));
        }
        if self.preset.is_none() && model_server::NAMES.split(", ").any(|n| n == q) {
            return Err(format!("`{q}` is a preset name: set preset = \"vllm\" or \"tgi\" on the source"));
        }
        Selector::parse(q).map(|s| (s, self.aggregate, false))
    }
}

/// A URL as the endpoint it names, for finding one listed twice: parsed (so
/// `http://h:80/m` and `http://h/m` are one), without credentials (to show it).
fn endpoint(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            // an error means the URL cannot have credentials: none to take out
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.into()
        }
        Err(_) => url.to_string(),
    }
}

/// A parsed query: the matchers a sample must pass (the name is one of them).
#[derive(Clone, Debug)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses `name{label="value", ...}`; anything else PromQL allows (functions, ranges) is refused.
    pub fn parse(q: &str) -> Result<Selector, String> {
        let expr = promql_parser::parser::parse(q).map_err(|e| format!("`{q}` is not a series selector: {e}"))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(format!(
                "`{q}` is not a series selector; write `name{{label=\"value\"}}` (functions need a prometheus source)"
            ));
        };
        if vs.offset.is_some() || vs.at.is_some() {
            return Err(format!("`{q}`: offset and @ need a prometheus source"));
        }
        if !vs.matchers.or_matchers.is_empty() {
            return Err(format!("`{q}`: `or` in a selector is not supported"));
        }
        let mut matchers = vs.matchers.matchers;
        if let Some(name) = vs.name
            && !matchers.iter().any(|m| m.name == "__name__")
        {
            matchers.push(Matcher::new(promql_parser::label::MatchOp::Equal, "__name__", &name));
        }
        Ok(Selector { matchers })
    }

    /// Whether a sample passes every matcher.
    pub fn matches(&self, s: &exposition::Sample) -> bool {
        self.matchers.iter().all(|m| m.is_match(if m.name == "__name__" { &s.name } else { s.label(&m.name) }))
    }
}

/// A query must be a series selector.
pub fn check_query(q: &str) -> Result<(), String> {
    Selector::parse(q).map(|_| ())
}

/// A counter query's last scrape: when, and each matching series' value
/// (keyed by [`series_key`]).
struct Counters {
    at: Instant,
    series: BTreeMap<String, f64>,
}

/// A live `scrape` source.
pub struct Scrape {
    config: ScrapeConfig,
    client: reqwest::Client,
    token: Option<Secret>,
    /// The last scrape of each query read as a rate.
    counters: std::sync::Mutex<BTreeMap<String, Counters>>,
}

impl Scrape {
    /// Builds the client and reads the token.
    pub fn new(name: &str, config: &ScrapeConfig) -> Result<Self, String> {
        let token = SecretRef::new(config.token_env.clone(), config.token_file.clone())
            .load()
            .map_err(|e| format!("source `{name}`: {e}"))?;
        let client = crate::http::client(config.timeout).map_err(|e| format!("source `{name}`: {e}"))?;
        Ok(Scrape { config: config.clone(), client, token, counters: Default::default() })
    }

    /// Scrapes every endpoint once, then answers each query from the samples.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let bodies = futures_util::future::join_all(self.config.urls.iter().map(|u| self.fetch(u))).await;
        let mut scraped = Vec::with_capacity(bodies.len());
        for (url, body) in self.config.urls.iter().zip(bodies) {
            match body {
                Ok(s) => scraped.push((url.as_str(), s)),
                Err(e) => {
                    let e = format!("{url}: {e}");
                    return queries.iter().map(|_| Err(e.clone())).collect();
                }
            }
        }
        queries.iter().map(|q| self.answer(q, &scraped)).collect()
    }

    /// One query from each endpoint's samples.
    fn answer(&self, query: &str, scraped: &[(&str, Vec<exposition::Sample>)]) -> QueryResult {
        let (selector, aggregate, rate) = self.config.resolve(query)?;
        let mut matched = Vec::new();
        for (url, samples) in scraped {
            for s in samples.iter().filter(|s| selector.matches(s)) {
                matched.push((*url, s));
            }
        }
        if matched.is_empty() {
            return Err(format!("no sample matches `{query}` at {}", self.config.urls.join(", ")));
        }
        if let Some((url, s)) = matched.iter().find(|(_, s)| !s.value.is_finite()) {
            return Err(format!("`{query}` is {} at {url}, not a usable number", s.value));
        }
        let value = if rate {
            // every preset rate is a sum across series and replicas
            self.rate(query, &matched)?
        } else {
            let values: Vec<f64> = matched.iter().map(|(_, s)| s.value).collect();
            aggregate.apply(query, &values)?
        };
        Ok(Value { value, measured_at: None })
    }

    /// The counters' summed increase per second since the last scrape,
    /// series by series: one that went down was reset (its server restarted)
    /// and counted from zero; one not seen before adds nothing until the next
    /// scrape; one not seen again is forgotten.
    fn rate(&self, query: &str, matched: &[(&str, &exposition::Sample)]) -> Result<f64, String> {
        let series: BTreeMap<String, f64> = matched.iter().map(|(url, s)| (series_key(url, s), s.value)).collect();
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let since = counters.get(query).map(|last| {
            let increase: f64 = series
                .iter()
                .filter_map(|(k, &v)| last.series.get(k).map(|&before| if v >= before { v - before } else { v }))
                .sum();
            (now.duration_since(last.at).as_secs_f64(), increase)
        });
        counters.insert(query.to_string(), Counters { at: now, series });
        let Some((secs, increase)) = since else {
            return Err(format!("`{query}` is a rate: it needs a second scrape"));
        };
        if secs <= 0.0 {
            return Err(format!("`{query}` is a rate: scraped twice at the same instant"));
        }
        let value = increase / secs;
        if value.is_finite() { Ok(value) } else { Err(format!("`{query}` is {value}, not a usable number")) }
    }

    async fn fetch(&self, url: &str) -> Result<Vec<exposition::Sample>, String> {
        let timeout = self.config.timeout;
        // the classic text format; OpenMetrics renders counters differently
        let mut req =
            with_token(self.client.get(url), self.token.as_ref()).header("Accept", "text/plain;version=0.0.4");
        for (k, v) in &self.config.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| super::http_json::describe(&e, timeout))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        // the endpoint's URL starts the error (see read)
        let body = super::read_body(resp, timeout, "the endpoint").await?;
        let text = String::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_string())?;
        exposition::parse(&text)
    }
}

/// One series of one endpoint: its URL, name and labels (sorted, as a
/// series is the same whatever order its labels are written in).
fn series_key(url: &str, s: &exposition::Sample) -> String {
    let mut labels: Vec<&(String, String)> = s.labels.iter().collect();
    labels.sort();
    // Debug quotes and escapes each part: no two series share a key
    format!("{url:?} {:?} {labels:?}", s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)]) -> exposition::Sample {
        exposition::Sample {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value: 1.0,
        }
    }

    #[test]
    fn selectors_match_names_and_labels() {
        let s = Selector::parse(r#"vllm:num_requests_waiting{model_name="llama", engine!="1"}"#).unwrap();
        assert!(s.matches(&sample("vllm:num_requests_waiting", &[("model_name", "llama"), ("engine", "0")])));
        assert!(!s.matches(&sample("vllm:num_requests_waiting", &[("model_name", "llama"), ("engine", "1")])));
        assert!(!s.matches(&sample("vllm:num_requests_running", &[("model_name", "llama")])));
        let re = Selector::parse(r#"{__name__=~"node_cpu.*", mode="idle"}"#).unwrap();
        assert!(re.matches(&sample("node_cpu_seconds_total", &[("mode", "idle")])));
        assert!(!re.matches(&sample("node_load1", &[("mode", "idle")])));
        // a label the sample lacks is "" (as in PromQL)
        assert!(Selector::parse(r#"m{absent=""}"#).unwrap().matches(&sample("m", &[])));
    }

    #[test]
    fn series_are_told_apart_by_endpoint_name_and_labels_in_any_order() {
        let key = series_key("http://a/m", &sample("m", &[("x", "1"), ("y", "2")]));
        assert_eq!(key, series_key("http://a/m", &sample("m", &[("y", "2"), ("x", "1")])));
        assert_ne!(key, series_key("http://b/m", &sample("m", &[("x", "1"), ("y", "2")])));
        assert_ne!(key, series_key("http://a/m", &sample("n", &[("x", "1"), ("y", "2")])));
        assert_ne!(key, series_key("http://a/m", &sample("m", &[("x", "1"), ("y", "3")])));
    }

    #[test]
    fn settings_are_checked() {
        let config = |urls: &[&str], timeout: u64| ScrapeConfig {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            aggregate: Aggregate::Sum,
            timeout: Duration::from_secs(timeout),
            token_env: None,
            token_file: None,
            headers: BTreeMap::new(),
            preset: None,
        };
        assert!(config(&["http://10.0.0.5:8000/metrics", "http://10.0.0.6:8000/metrics"], 5).validate().is_empty());
        // the same endpoint twice would count its samples twice
        let errs = config(&["http://10.0.0.5:8000/metrics", "http://10.0.0.5:8000/metrics"], 5).validate();
        assert!(errs.len() == 1 && errs[0].contains("`http://10.0.0.5:8000/metrics` is listed twice"), "{errs:?}");
        let errs = config(&["http://h:80/metrics", "http://h/metrics"], 5).validate();
        assert!(errs.len() == 1 && errs[0].contains("listed twice"), "{errs:?}");
        let errs = config(&["http://u:hunter2@h/metrics"], 5).validate();
        assert!(errs.len() == 1 && errs[0].contains("leave credentials out"), "{errs:?}");
        assert!(!errs[0].contains("hunter2"));
        let errs = config(&["http://h/metrics"], 31).validate();
        assert!(errs.len() == 1 && errs[0].contains("at most 30s"), "{errs:?}");
    }

    #[test]
    fn only_selectors_are_queries() {
        for (q, want) in [
            ("sum(m)", "not a series selector"),
            ("m[5m]", "not a series selector"),
            ("m offset 5m", "offset"),
            ("m{", "not a series selector"),
        ] {
            let err = check_query(q).unwrap_err();
            assert!(err.contains(want), "{q}: {err}");
        }
    }
}
