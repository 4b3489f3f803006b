//! Strategies: turn an [`Observation`] into a recommendation.
//!
//! Every strategy is pure: the same observation gives the same recommendation.

mod lua;
mod predictive;
mod schedule;
mod target_tracking;
mod threshold;

pub use lua::LuaCheck;
pub use predictive::{ForecastRecord, PerStep, Predictive, PredictiveMemory};
pub use schedule::{Schedule, ScheduleWindow};
pub use target_tracking::{Aggregate, TargetTracking, TrackedMetric};
pub use threshold::{Condition, Threshold};

use crate::observation::Observation;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What one check recommends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The replica count the check wants, or `None` for "no opinion".
    pub desired: Option<u32>,
    /// Why, in a few words a person can read.
    pub reason: String,
    /// Set when the check could not read all its data. A check with an error
    /// may still recommend more capacity, never less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when `desired` is a floor (a forecast, a schedule's `min`): it
    /// holds the count up under the other checks but never scales in on its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub floor: bool,
}

impl Recommendation {
    /// A recommendation to run `n` replicas.
    pub fn want(n: u32, reason: impl Into<String>) -> Self {
        Recommendation { desired: Some(n), reason: reason.into(), error: None, floor: false }
    }

    /// A recommendation to run at least `n` replicas: a floor.
    pub fn at_least(n: u32, reason: impl Into<String>) -> Self {
        Recommendation { floor: true, ..Recommendation::want(n, reason) }
    }

    /// No opinion.
    pub fn none(reason: impl Into<String>) -> Self {
        Recommendation { desired: None, reason: reason.into(), error: None, floor: false }
    }

    /// The check's data was missing or bad.
    pub fn failed(error: impl Into<String>) -> Self {
        let error = error.into();
        Recommendation { desired: None, reason: format!("no decision: {error}"), error: Some(error), floor: false }
    }
}

/// The built-in strategies, chosen in config by `strategy = "..."`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum StrategyConfig {
    /// Step up or down when metrics stay beyond bounds for a while.
    Threshold(Threshold),
    /// Kubernetes HPA's proportional rule.
    TargetTracking(TargetTracking),
    /// A `decide(ctx)` function written in Lua, run by the `moontide-lua` crate.
    Lua(LuaCheck),
    /// Cron-style windows that keep a floor while open.
    Schedule(Schedule),
    /// Provision for the load forecast at now + lead time.
    Predictive(Predictive),
}

impl StrategyConfig {
    /// The strategy's name as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            StrategyConfig::Threshold(_) => "threshold",
            StrategyConfig::TargetTracking(_) => "target_tracking",
            StrategyConfig::Lua(_) => "lua",
            StrategyConfig::Schedule(_) => "schedule",
            StrategyConfig::Predictive(_) => "predictive",
        }
    }

    /// Whether the core runs this strategy itself (`lua` checks run in `moontide-lua`).
    pub fn is_builtin(&self) -> bool {
        !matches!(self, StrategyConfig::Lua(_))
    }

    /// Recommends a replica count for this tick. A `lua` check cannot run
    /// here and says so; the engine runs it through `moontide-lua`.
    pub fn decide(&self, obs: &Observation<'_>) -> Recommendation {
        match self {
            StrategyConfig::Threshold(s) => s.decide(obs),
            StrategyConfig::TargetTracking(s) => s.decide(obs),
            StrategyConfig::Schedule(s) => s.decide(obs),
            StrategyConfig::Predictive(s) => s.decide(obs, &mut PredictiveMemory::default()).0,
            StrategyConfig::Lua(_) => Recommendation::failed("a lua check needs the Lua runtime (moontide-lua)"),
        }
    }

    /// The metric names the strategy reads (a `lua` check may read any of the policy's).
    pub fn metrics(&self) -> Vec<&str> {
        match self {
            StrategyConfig::Threshold(s) => s.conditions.iter().map(|c| c.metric.as_str()).collect(),
            StrategyConfig::TargetTracking(s) => s.targets.iter().map(|t| t.metric.as_str()).collect(),
            StrategyConfig::Predictive(s) => vec![s.metric.as_str()],
            StrategyConfig::Lua(_) | StrategyConfig::Schedule(_) => Vec::new(),
        }
    }

    /// How much metric history the strategy needs.
    pub fn history_needed(&self) -> Duration {
        match self {
            StrategyConfig::Threshold(s) => {
                s.conditions.iter().map(|c| c.up_for.max(c.down_for)).max().unwrap_or_default()
            }
            // a predictive check keeps its own history
            StrategyConfig::TargetTracking(_) | StrategyConfig::Schedule(_) | StrategyConfig::Predictive(_) => {
                Duration::ZERO
            }
            StrategyConfig::Lua(s) => s.window,
        }
    }

    /// Problems with the parameters, each a sentence naming the field.
    pub fn validate(&self) -> Vec<String> {
        match self {
            StrategyConfig::Threshold(s) => s.validate(),
            StrategyConfig::TargetTracking(s) => s.validate(),
            StrategyConfig::Lua(s) => s.validate(),
            StrategyConfig::Schedule(s) => s.validate(),
            StrategyConfig::Predictive(s) => s.validate(),
        }
    }
}

/// Formats a metric value compactly for reasons ("82.5", "3", "0.0123").
pub fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests;
