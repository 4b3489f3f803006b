//! Glue between the config's `lua` checks and the `moontide-lua` crate.

use moontide_core::strategy::LuaCheck;
use moontide_core::{Clock, ForecastRecord, ManualClock, Observation, Recommendation, Series, Timestamp};
use moontide_lua::strategy::Reload;
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a check's script comes from; `field` names an inline one in messages.
pub fn origin(field: &str, check: &LuaCheck) -> Origin {
    match (&check.file, &check.source) {
        (Some(f), _) => Origin::File(PathBuf::from(f)),
        (None, s) => Origin::Inline { name: field.to_string(), source: s.clone().unwrap_or_default() },
    }
}

/// The check's limits.
pub fn limits(check: &LuaCheck) -> Limits {
    Limits::new(check.instruction_budget, check.memory_mb)
}

/// Loads the script for real.
pub fn build(field: &str, check: &LuaCheck, clock: Arc<dyn Clock>) -> Result<LuaStrategy, String> {
    let mut s =
        LuaStrategy::load(origin(field, check), limits(check), check.window, clock).map_err(|e| e.to_string())?;
    s.set_params(&check.params).map_err(|e| format!("params: {e}"))?;
    Ok(s)
}

/// Compiles the script and checks it defines `decide` (for `validate`).
pub fn check_loads(field: &str, check: &LuaCheck) -> Result<(), String> {
    build(field, check, Arc::new(ManualClock::new(Timestamp::from_secs(0)))).map(|_| ())
}

/// Longest a `decide` call may take, whatever the instruction budget says:
/// library calls that run in C (a pathological pattern match) are not
/// counted by the budget, so each call also runs against this deadline.
pub const DECIDE_DEADLINE: Duration = Duration::from_secs(5);

/// A `lua` check as the engine runs it: each call on a blocking thread under
/// [`DECIDE_DEADLINE`]. A call that overruns or panics is abandoned with its
/// Lua state; the next call starts from a fresh load of the script and its
/// last saved `ctx.state`.
pub struct LuaCheckRunner {
    field: String,
    config: LuaCheck,
    clock: Arc<dyn Clock>,
    strategy: Option<LuaStrategy>,
    last_state: Option<serde_json::Value>,
}

impl LuaCheckRunner {
    /// Loads the check's script.
    pub fn new(field: &str, config: &LuaCheck, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let strategy = build(field, config, clock.clone())?;
        Ok(LuaCheckRunner {
            field: field.into(),
            config: config.clone(),
            clock,
            strategy: Some(strategy),
            last_state: None,
        })
    }

    /// Restores `ctx.state` (after a restart).
    pub fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.last_state = Some(state.clone());
        match &mut self.strategy {
            Some(s) => s.restore_state(state).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Runs the check for this observation.
    /// `forecasts` are the policy's predictive forecasts this tick (`ctx.forecasts`).
    pub async fn decide(
        &mut self,
        obs: &Observation<'_>,
        forecasts: &[(String, ForecastRecord)],
    ) -> (Recommendation, Option<serde_json::Value>) {
        let mut strategy = match self.strategy.take() {
            Some(s) => s,
            None => match self.reload() {
                Ok(s) => s,
                Err(e) => return (Recommendation::failed(format!("lua: {e}")), self.last_state.clone()),
            },
        };
        let (now, interval, current, ready, min, max) =
            (obs.now, obs.interval, obs.current, obs.ready, obs.min, obs.max);
        let series: BTreeMap<String, Series> = obs.series.clone();
        let field = self.field.clone();
        let forecasts = forecasts.to_vec();
        let call = tokio::task::spawn_blocking(move || {
            if let Err(e) = strategy.set_forecasts(&forecasts) {
                return (strategy, (Recommendation::failed(format!("lua: ctx.forecasts: {e}")), None));
            }
            match strategy.reload_if_changed() {
                Reload::Failed(e) => tracing::error!(check = %field, "{e}"),
                Reload::Reloaded => tracing::info!(check = %field, "reloaded {}", strategy.name()),
                Reload::Unchanged => {}
            }
            let obs = Observation { now, interval, current, ready, min, max, series: &series };
            let out = strategy.decide(&obs);
            (strategy, out)
        });
        let deadline = self.config.deadline.unwrap_or(DECIDE_DEADLINE);
        match tokio::time::timeout(deadline, call).await {
            Ok(Ok((strategy, (rec, state)))) => {
                self.strategy = Some(strategy);
                if state.is_some() {
                    self.last_state = state.clone();
                }
                (rec, state)
            }
            Ok(Err(e)) => {
                let why = if e.is_panic() { "the call panicked" } else { "the call was cancelled" };
                (
                    Recommendation::failed(format!("lua: {why}; the script starts afresh next tick")),
                    self.last_state.clone(),
                )
            }
            Err(_) => (
                Recommendation::failed(format!(
                    "lua: decide ran longer than its deadline of {} (a library call the instruction budget cannot \
                     stop); the script starts afresh next tick",
                    moontide_core::duration::format(deadline)
                )),
                self.last_state.clone(),
            ),
        }
    }

    fn reload(&self) -> Result<LuaStrategy, String> {
        let mut s = build(&self.field, &self.config, self.clock.clone())?;
        if let Some(state) = &self.last_state {
            s.restore_state(state).map_err(|e| e.to_string())?;
        }
        Ok(s)
    }
}
