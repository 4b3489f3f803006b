//! `lua`: a check whose `decide(ctx)` is written in Lua. The core only holds
//! its settings; the `moontide-lua` crate runs it.

use crate::duration::serde_text;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

fn default_window() -> Duration {
    Duration::from_secs(600)
}

/// Parameters of a `lua` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuaCheck {
    /// A Lua file defining `decide(ctx)` (relative paths are relative to the config file).
    #[serde(default)]
    pub file: Option<String>,
    /// Or the Lua source inline.
    #[serde(default)]
    pub source: Option<String>,
    /// How much metric history `ctx.metrics.NAME` helpers can see (default 10m).
    #[serde(default = "default_window", with = "serde_text")]
    pub window: Duration,
    /// Most Lua VM instructions one `decide` call may run (default 1,000,000).
    #[serde(default)]
    pub instruction_budget: Option<u64>,
    /// Most memory the script's Lua state may use, in MiB (default 32).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Longest one call may take, library calls included (default 5s).
    #[serde(default, with = "crate::duration::serde_text_opt")]
    pub deadline: Option<Duration>,
    /// Settings the script reads as `ctx.params.NAME` (numbers, strings,
    /// booleans, and arrays and tables of them), so that one script serves
    /// several services without being edited.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// The first value under `v` that a Lua script cannot be given (a TOML date), by its path.
fn unusable(path: &str, v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) if map.keys().any(|k| k.starts_with("$__toml_private")) => Some(path.into()),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| unusable(&format!("{path}.{k}"), v)),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| unusable(&format!("{path}[{i}]"), v))
        }
        _ => None,
    }
}

impl LuaCheck {
    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match (&self.file, &self.source) {
            (Some(_), Some(_)) => errs.push("give either `file` or `source`, not both".into()),
            (None, None) => errs.push("give `file` (a Lua file defining decide(ctx)) or `source` (inline Lua)".into()),
            _ => {}
        }
        if self.instruction_budget == Some(0) {
            errs.push("`instruction_budget` must be at least 1".into());
        }
        if self.memory_mb == Some(0) {
            errs.push("`memory_mb` must be at least 1".into());
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            errs.push("`deadline` must be longer than 0s".into());
        }
        for (name, v) in &self.params {
            if let Some(at) = unusable(&format!("params.{name}"), v) {
                errs.push(format!("`{at}`: a date or time cannot be passed to Lua; write it as a string"));
            }
        }
        errs
    }
}
