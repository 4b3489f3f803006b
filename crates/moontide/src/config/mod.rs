//! The config file: sources, targets and policies in one TOML document.
//!
//! Loading is all-or-nothing: the file is parsed (unknown keys and wrong types
//! are errors), then every reference, bound and setting is checked, and all
//! problems are reported together, each with file, line, column and field.

mod error;

pub use error::{ConfigError, Problem};

use crate::cluster::ClusterConfig;
use crate::engine::breaker::BreakerConfig;
use crate::script::ScriptConfig;
use crate::sources::SourceConfig;
use crate::targets::TargetConfig;
use moontide_core::duration;
use moontide_core::strategy::LuaCheck;
use moontide_core::{BehaviourConfig, Budget, PolicySpec, StrategyConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default)]
    keep_decisions: Option<Spanned<String>>,
    #[serde(default)]
    sources: BTreeMap<String, Spanned<SourceConfig>>,
    #[serde(default)]
    targets: BTreeMap<String, Spanned<TargetConfig>>,
    #[serde(default)]
    policies: BTreeMap<String, Spanned<RawPolicy>>,
    #[serde(default)]
    server: Option<Spanned<crate::server::ServerConfig>>,
    #[serde(default)]
    breaker: Option<Spanned<BreakerConfig>>,
    #[serde(default)]
    budget: Option<Spanned<Budget>>,
    #[serde(default)]
    cluster: Option<Spanned<ClusterConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    target: Spanned<String>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    min: Spanned<u32>,
    max: Spanned<u32>,
    #[serde(default)]
    metrics: BTreeMap<String, Spanned<MetricConfig>>,
    #[serde(default)]
    checks: BTreeMap<String, Spanned<StrategyConfig>>,
    #[serde(default)]
    behaviour: Option<Spanned<BehaviourConfig>>,
    #[serde(default)]
    script: Option<Spanned<ScriptConfig>>,
}

/// `[policies.NAME.metrics]`: a name the checks use, bound to a source and a query.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// The source's name in `[sources]`.
    pub source: String,
    /// What to ask it (a JSON pointer for `http_json`; `cpu`, `memory`, `net_rx`, `net_tx` for `host`).
    pub query: String,
}

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Bounds, checks and guards for the core.
    pub spec: PolicySpec,
    /// The target's name.
    pub target: String,
    /// Metric name → source and query.
    pub metrics: BTreeMap<String, MetricConfig>,
    /// A script-mode policy's script (such a policy has no checks).
    pub script: Option<ScriptConfig>,
}

/// A validated config.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the config came from.
    pub path: PathBuf,
    /// Where decisions are stored.
    pub state_dir: PathBuf,
    /// How long decisions are kept before they are deleted.
    pub keep_decisions: Duration,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Targets by name.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Policies, by name order.
    pub policies: Vec<Policy>,
    /// Moontide's own HTTP server.
    pub server: crate::server::ServerConfig,
    /// Backoff and circuit breaking for every target.
    pub breaker: BreakerConfig,
    /// A budget shared by all policies.
    pub budget: Option<Budget>,
    /// High availability on etcd; `None`: this instance runs every policy alone.
    pub cluster: Option<ClusterConfig>,
}

/// The nominal interval of a script-mode policy (its script sets its own pace).
pub const DEFAULT_SCRIPT_INTERVAL: Duration = Duration::from_secs(10);

/// The state directory used when a config does not name one, relative to the config's folder.
pub const DEFAULT_STATE_DIR: &str = "moontide-state";

/// How long decisions are kept when a config does not say.
pub const DEFAULT_KEEP_DECISIONS: Duration = Duration::from_secs(14 * 86_400);

/// The shortest `keep_decisions`: a decision must outlive the ticks that read it back (cooldowns, history).
const MIN_KEEP_DECISIONS: Duration = Duration::from_secs(3_600);

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
        Config::parse(path, &text)
    }

    /// Validates config text; `path` is used in messages and to resolve `state_dir`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::syntax(path, text, &e))?;
        let mut p = Problems { path, text, list: Vec::new() };
        let config = validate(path, raw, &mut p);
        if p.list.is_empty() { Ok(config) } else { Err(ConfigError::Invalid { problems: p.list }) }
    }
}

struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn add(&mut self, span: std::ops::Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem::at(self.path, self.text, span.start, field.into(), message.into()));
    }
}

/// Where `key` is set at or after byte `from`: its `key = ...` line, or its
/// `[server.key]` / `[[server.key]]` table.
fn key_line(text: &str, from: usize, key: &str) -> Option<usize> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let here = at;
        at += line.len();
        if here < from {
            continue;
        }
        let l = line.trim_start();
        if l.starts_with('[') && !l.trim_start_matches('[').starts_with("server") {
            // past the server's tables
            return None;
        }
        let set = l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='));
        let table = l.trim_start_matches('[').trim_end().trim_end_matches(']') == format!("server.{key}");
        if set || (l.starts_with('[') && table) {
            return Some(here + line.len() - l.len());
        }
    }
    None
}

fn names<T>(map: &BTreeMap<String, T>) -> String {
    if map.is_empty() { "none declared".into() } else { map.keys().cloned().collect::<Vec<_>>().join(", ") }
}

fn validate(path: &Path, raw: RawConfig, p: &mut Problems<'_>) -> Config {
    let base = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let keep_decisions = match &raw.keep_decisions {
        None => DEFAULT_KEEP_DECISIONS,
        Some(k) => match duration::parse(k.get_ref()) {
            Ok(d) if d < MIN_KEEP_DECISIONS => {
                p.add(k.span(), "keep_decisions", format!("keep decisions at least 1h, not {}", k.get_ref()));
                DEFAULT_KEEP_DECISIONS
            }
            Ok(d) => d,
            Err(e) => {
                p.add(k.span(), "keep_decisions", e);
                DEFAULT_KEEP_DECISIONS
            }
        },
    };
    for (name, s) in &raw.sources {
        for e in s.get_ref().validate() {
            p.add(s.span(), format!("sources.{name}"), e);
        }
    }
    for (name, t) in &raw.targets {
        for e in t.get_ref().validate() {
            p.add(t.span(), format!("targets.{name}"), e);
        }
    }
    if let Some(server) = &raw.server {
        for e in server.get_ref().validate() {
            // "listen: ..." points at the `listen` line, not the [server] header
            let (span, field, message) = match e.split_once(": ").and_then(|(k, m)| {
                let (key, entry) = k.split_once('.').unwrap_or((k, ""));
                let mut at = key_line(p.text, server.span().start, key)?;
                // `tokens.NAME`: the line of that entry's name, when it can be found
                if !entry.is_empty()
                    && let Some(i) = p.text[at..].find(&format!("\"{entry}\""))
                {
                    at = p.text[..at + i].rfind('\n').map_or(0, |n| n + 1);
                }
                Some((at..at, format!("server.{k}"), m.to_string()))
            }) {
                Some(located) => located,
                None => (server.span(), "server".to_string(), e),
            };
            p.add(span, field, message);
        }
    }
    if let Some(b) = &raw.breaker {
        for e in b.get_ref().validate() {
            let (field, message) = e.split_once(": ").unwrap_or(("breaker", e.as_str()));
            p.add(b.span(), field, message);
        }
    }
    if let Some(b) = &raw.budget {
        // a price may come from each policy instead: checked per policy below
        for e in b.get_ref().validate("budget", true) {
            let (field, message) = e.split_once(": ").unwrap_or(("budget", e.as_str()));
            p.add(b.span(), field, message);
        }
    }
    if let Some(c) = &raw.cluster {
        for e in c.get_ref().validate() {
            let (field, message) = e.split_once(": ").unwrap_or(("cluster", e.as_str()));
            p.add(c.span(), field, message);
        }
        for (name, rp) in &raw.policies {
            if name.contains('/') {
                p.add(
                    rp.span(),
                    format!("policies.{name}"),
                    "in a cluster a policy name cannot hold `/` (it is part of etcd keys)",
                );
            }
        }
    }
    if raw.policies.is_empty() {
        p.add(0..0, "policies", "no policies declared: add a [policies.NAME] table");
    }
    let mut used_targets: BTreeMap<&str, &str> = BTreeMap::new();
    let mut policies = Vec::new();
    for (name, rp) in &raw.policies {
        let at = format!("policies.{name}");
        let pol = rp.get_ref();
        let target = pol.target.get_ref();
        if !raw.targets.contains_key(target) {
            p.add(
                pol.target.span(),
                format!("{at}.target"),
                format!("no target named `{target}` (declared targets: {})", names(&raw.targets)),
            );
        } else if let Some(other) = used_targets.insert(target, name) {
            p.add(
                pol.target.span(),
                format!("{at}.target"),
                format!("target `{target}` is already driven by policy `{other}`; a target takes one policy"),
            );
        }
        let interval = match &pol.interval {
            None if pol.script.is_some() => DEFAULT_SCRIPT_INTERVAL,
            None => {
                p.add(rp.span(), format!("{at}.interval"), "interval is missing: say how often to tick, like \"10s\"");
                Duration::from_secs(1)
            }
            Some(i) => match duration::parse(i.get_ref()) {
                Ok(d) if d.is_zero() => {
                    p.add(i.span(), format!("{at}.interval"), "interval must be longer than 0s");
                    Duration::from_secs(1)
                }
                Ok(d) => d,
                Err(e) => {
                    p.add(i.span(), format!("{at}.interval"), e);
                    Duration::from_secs(1)
                }
            },
        };
        let (min, max) = (*pol.min.get_ref(), *pol.max.get_ref());
        if min > max {
            p.add(pol.min.span(), format!("{at}.min"), format!("min ({min}) is greater than max ({max})"));
        }
        if max == 0 {
            p.add(pol.max.span(), format!("{at}.max"), "max must be at least 1");
        }
        for (mname, m) in &pol.metrics {
            let mc = m.get_ref();
            match raw.sources.get(&mc.source) {
                None => p.add(
                    m.span(),
                    format!("{at}.metrics.{mname}.source"),
                    format!("no source named `{}` (declared sources: {})", mc.source, names(&raw.sources)),
                ),
                Some(s) => {
                    if let Err(e) = s.get_ref().check_query(&mc.query) {
                        p.add(m.span(), format!("{at}.metrics.{mname}.query"), e);
                    }
                }
            }
        }
        let mut script = None;
        match (&pol.script, pol.checks.is_empty()) {
            (Some(sc), false) => p.add(
                sc.span(),
                format!("{at}.script"),
                "a policy has checks or a script, not both; move the script to a policy of its own",
            ),
            (Some(sc), true) => {
                let mut config = sc.get_ref().clone();
                let raw_sources: BTreeMap<String, SourceConfig> =
                    raw.sources.iter().map(|(k, v)| (k.clone(), v.get_ref().clone())).collect();
                let problems = config.validate(&raw_sources);
                let no_problems = problems.is_empty();
                for e in problems {
                    p.add(sc.span(), format!("{at}.script"), e);
                }
                if let Some(file) = &config.file {
                    config.file = Some(base.join(file).to_string_lossy().into_owned());
                }
                if no_problems
                    && let Err(e) = moontide_lua::script::check_syntax(&config.origin(&format!("{at}.script")))
                {
                    p.add(sc.span(), format!("{at}.script"), e.to_string());
                }
                script = Some(config);
            }
            (None, true) => p.add(
                rp.span(),
                format!("{at}.checks"),
                "no checks: add a [policies.NAME.checks.CHECK] table with a strategy (or a [policies.NAME.script])",
            ),
            (None, false) => {}
        }
        let mut checks = BTreeMap::new();
        for (cname, c) in &pol.checks {
            let field = format!("{at}.checks.{cname}");
            let problems = c.get_ref().validate();
            let no_problems = problems.is_empty();
            for e in problems {
                p.add(c.span(), field.clone(), e);
            }
            let mut check = c.get_ref().clone();
            if let StrategyConfig::Lua(lua) = &mut check {
                if let Some(file) = &lua.file {
                    lua.file = Some(base.join(file).to_string_lossy().into_owned());
                }
                // a bad setting beside a sound script still leaves the script to
                // compile, with the settings it has problems with left at their defaults
                let loadable = if no_problems {
                    Some(lua.clone())
                } else if lua.file.is_some() != lua.source.is_some() {
                    Some(LuaCheck {
                        params: BTreeMap::new(),
                        instruction_budget: None,
                        memory_mb: None,
                        deadline: None,
                        ..lua.clone()
                    })
                } else {
                    None
                };
                if let Some(l) = loadable
                    && let Err(e) = crate::lua::check_loads(&field, &l)
                {
                    p.add(c.span(), field.clone(), e);
                }
            }
            checks.insert(cname.clone(), check);
            for metric in c.get_ref().metrics() {
                if !pol.metrics.contains_key(metric) {
                    p.add(
                        c.span(),
                        field.clone(),
                        format!(
                            "metric `{metric}` is not declared in [{at}.metrics] (declared: {})",
                            names(&pol.metrics)
                        ),
                    );
                }
            }
        }
        let behaviour = pol.behaviour.as_ref().map(|b| b.get_ref().clone()).unwrap_or_default();
        if let Some(b) = &pol.behaviour {
            for e in behaviour.validate() {
                let (field, message) = e.split_once(": ").unwrap_or(("behaviour", e.as_str()));
                p.add(b.span(), format!("{at}.{field}"), message);
            }
        }
        let mut behaviour = behaviour.resolve();
        if let Some(global) = &raw.budget {
            behaviour.shared_budget = true;
            let own_price = behaviour.budget.as_ref().and_then(|b| b.price_per_replica_hour);
            if global.get_ref().max_cost_per_hour.is_some()
                && global.get_ref().price_per_replica_hour.is_none()
                && own_price.is_none()
            {
                p.add(
                    rp.span(),
                    format!("{at}.behaviour.budget.price_per_replica_hour"),
                    "the global [budget] has max_cost_per_hour: give this policy a price, or give [budget] a default price_per_replica_hour",
                );
            }
        }
        policies.push(Policy {
            spec: PolicySpec { name: name.clone(), interval, min, max, checks, behaviour },
            target: target.clone(),
            metrics: pol.metrics.iter().map(|(k, v)| (k.clone(), v.get_ref().clone())).collect(),
            script,
        });
    }
    let state_dir = base.join(raw.state_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)));
    Config {
        path: path.to_path_buf(),
        state_dir,
        keep_decisions,
        sources: raw.sources.into_iter().map(|(k, v)| (k, v.into_inner())).collect(),
        targets: raw.targets.into_iter().map(|(k, v)| (k, v.into_inner())).collect(),
        policies,
        server: raw.server.map(|s| s.into_inner()).unwrap_or_default(),
        breaker: raw.breaker.map(|b| b.into_inner()).unwrap_or_default(),
        budget: raw.budget.map(|b| b.into_inner()),
        cluster: raw.cluster.map(|c| c.into_inner()),
    }
}
