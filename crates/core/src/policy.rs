//! One policy's decision for one tick: run the checks, combine them (safest
//! wins), then run the guards.

use crate::decision::CheckOutcome;
use crate::guard::{self, Behaviour, BudgetCap, GuardContext, GuardEffect, Spend};
use crate::history::PolicyHistory;
use crate::observation::Observation;
use crate::strategy::{PredictiveMemory, StrategyConfig};
use std::collections::BTreeMap;
use std::time::Duration;

/// A policy as the core needs it: bounds, checks and guard settings.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    /// The policy's name.
    pub name: String,
    /// Time between ticks.
    pub interval: Duration,
    /// Lower bound on replicas.
    pub min: u32,
    /// Upper bound on replicas.
    pub max: u32,
    /// The built-in checks by name.
    pub checks: BTreeMap<String, StrategyConfig>,
    /// Guard settings.
    pub behaviour: Behaviour,
}

impl PolicySpec {
    /// How far back the policy's decisions matter: the longest window,
    /// period or cooldown, plus a little.
    pub fn history_retention(&self) -> Duration {
        let b = &self.behaviour;
        let mut longest = Duration::ZERO;
        for d in [&b.scale_up, &b.scale_down] {
            longest = longest.max(d.stabilization).max(d.cooldown);
            for l in &d.limits {
                longest = longest.max(l.period);
            }
        }
        if b.budget.is_some() || b.shared_budget {
            // replica-hours are counted over a sliding day
            longest = longest.max(guard::BUDGET_DAY);
        }
        longest + self.interval * 2
    }

    /// How far back metric series must reach for the checks.
    pub fn series_retention(&self) -> Duration {
        let needed = self.checks.values().map(|c| c.history_needed()).max().unwrap_or_default();
        needed + self.interval * 3
    }
}

/// The result of the decision steps before actuation.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Each check's recommendation.
    pub checks: Vec<CheckOutcome>,
    /// The combined recommendation (largest opinion, or the current count when none).
    pub recommended: u32,
    /// What each guard changed.
    pub guards: Vec<GuardEffect>,
    /// The final count.
    pub desired: u32,
}

/// Each predictive check's forecast among `checks`, by check name: what Lua
/// checks read as `ctx.forecasts` (they run after the built-in checks).
pub fn forecasts_of(checks: &[CheckOutcome]) -> Vec<(String, crate::strategy::ForecastRecord)> {
    checks.iter().filter_map(|c| Some((c.check.clone(), c.forecast.clone()?))).collect()
}

/// Runs the built-in checks of `spec` (not its `lua` checks, which the engine runs).
/// `memories` holds each predictive check's memory by check name (the caller
/// keeps it across ticks and saves it).
pub fn run_checks(spec: &PolicySpec, obs: &Observation<'_>, memories: &mut Memories) -> Vec<CheckOutcome> {
    spec.checks
        .iter()
        .filter(|(_, s)| s.is_builtin())
        .map(|(name, s)| {
            let (recommendation, forecast) = match s {
                StrategyConfig::Predictive(p) => p.decide(obs, memories.entry(name.clone()).or_default()),
                other => (other.decide(obs), None),
            };
            CheckOutcome { check: name.clone(), strategy: s.kind().into(), recommendation, state: None, forecast }
        })
        .collect()
}

/// Each predictive check's memory, by check name.
pub type Memories = BTreeMap<String, PredictiveMemory>;

/// Combines check outcomes (safest wins: the largest count; any data error
/// blocks scale-down) and applies the guards.
pub fn conclude(
    spec: &PolicySpec,
    obs: &Observation<'_>,
    history: &PolicyHistory,
    checks: Vec<CheckOutcome>,
) -> Evaluation {
    conclude_shared(spec, obs, history, checks, None, false)
}

/// [`conclude`], with the ceiling of a budget shared with other policies.
/// `held` says the sanity check held a reading back this tick: the checks
/// that read it fail (which blocks scale-down), but that is no reason for
/// `on_error`'s fallback.
pub fn conclude_shared(
    spec: &PolicySpec,
    obs: &Observation<'_>,
    history: &PolicyHistory,
    mut checks: Vec<CheckOutcome>,
    shared: Option<BudgetCap>,
    held: bool,
) -> Evaluation {
    let opinions = checks.iter().filter_map(|c| c.recommendation.desired);
    let mut recommended = opinions.max().unwrap_or(obs.current);
    let definite = checks.iter().filter(|c| !c.recommendation.floor).filter_map(|c| c.recommendation.desired);
    if recommended < obs.current && definite.max().is_none() {
        // never scale in on floors alone (a forecast, a schedule's `min`): they
        // only hold the count up under the other checks
        recommended = obs.current;
        for c in checks.iter_mut().filter(|c| c.recommendation.floor) {
            c.recommendation.reason.push_str(&format!("; a floor alone never scales in: hold at {}", obs.current));
        }
    }
    let errors: Vec<String> =
        checks.iter().filter_map(|c| c.recommendation.error.as_ref().map(|e| format!("{}: {e}", c.check))).collect();
    let data_error = (!errors.is_empty()).then(|| errors.join("; "));
    let all_failed = !held && all_failed(&checks);
    let own = spec.behaviour.budget.as_ref().and_then(|b| {
        let spend = Spend { used_replica_hours: history.replica_hours(obs.now), ..Default::default() };
        b.cap("policy", None, &spend)
    });
    let budgets: Vec<BudgetCap> = own.into_iter().chain(shared).collect();
    let ctx = GuardContext {
        now: obs.now,
        current: obs.current,
        min: spec.min,
        max: spec.max,
        data_error: data_error.as_deref(),
        all_failed,
        behaviour: &spec.behaviour,
        history,
        budgets: &budgets,
    };
    let (desired, guards) = guard::apply(&ctx, recommended);
    Evaluation { checks, recommended, guards, desired }
}

/// Whether every check failed (an error and no opinion): what `on_error`'s fallback counts.
pub fn all_failed(checks: &[CheckOutcome]) -> bool {
    !checks.is_empty() && checks.iter().all(|c| c.recommendation.error.is_some() && c.recommendation.desired.is_none())
}

/// [`run_checks`] then [`conclude`] (for policies without `lua` checks).
pub fn evaluate(spec: &PolicySpec, obs: &Observation<'_>, history: &PolicyHistory) -> Evaluation {
    let checks = run_checks(spec, obs, &mut Memories::new());
    conclude(spec, obs, history, checks)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
