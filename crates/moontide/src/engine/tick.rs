//! One policy's tick: status → read → decide → combine → guards → actuate → record.

use super::breaker::{Breaker, BreakerConfig};
use super::ledger::Ledger;
use super::shared::Shared;
use super::wake_timer::WakeTimer;
use crate::config::Policy;
use crate::lua::LuaCheckRunner;
use crate::sources::Source;
use crate::store::{Pending, Store};
use crate::targets::Target;
use moontide_core::policy::{conclude_shared, run_checks};
use moontide_core::sanity::Verdict;
use moontide_core::{
    CheckOutcome, Clock, Decision, Input, Observation, Outcome, Point, PolicyHistory, ReadingStatus, Series,
    StrategyConfig, Timestamp,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Shortest limit on a target's status read (longer where its own timeouts need it).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one source's reading, whatever its own timeout: twice
/// the longest a source may set, since a connection and a query may each
/// take it (so the source's own error is the one reported).
pub const READ_TIMEOUT: Duration = Duration::from_secs(2 * crate::sources::MAX_TIMEOUT.as_secs());
/// Most decisions read back per policy at start.
const RESTORE_LIMIT: usize = 50_000;

/// One source and what a policy asks of it each tick.
struct SourceRead {
    name: String,
    source: Arc<Source>,
    /// (metric, query) pairs.
    queries: Vec<(String, String)>,
}

/// A policy with its live target, sources and memory.
pub struct PolicyRuntime {
    policy: Policy,
    target: Arc<Target>,
    reads: Vec<SourceRead>,
    series: BTreeMap<String, Series>,
    history: PolicyHistory,
    /// The policy's `lua` checks by name.
    lua: Vec<(String, LuaCheckRunner)>,
    /// The count to restore the target to before the first tick (after a restart).
    restore_to: Option<u32>,
    /// The last state saved for each check, to write only changes.
    saved_states: BTreeMap<String, String>,
    /// Each predictive check's memory (history, times-to-ready), and the version last saved.
    memories: moontide_core::policy::Memories,
    saved_memories: BTreeMap<String, u64>,
    /// Whether empty windows were offered history from their sources yet.
    backfilled: bool,
    /// What operators set through the API.
    control: Arc<super::control::Control>,
    /// The target's backoff and circuit breaker (shared with other policies on the target).
    breaker: Arc<Breaker>,
    /// The global budget's spend, when there is one.
    ledger: Option<Arc<Ledger>>,
    /// A scale-up from zero being timed, until a tick sees a replica ready.
    wake: WakeTimer,
    /// Readings held back by the sanity check last tick, by metric.
    held: BTreeMap<String, f64>,
    /// Ticks in a row without a usable reading, by metric.
    failing: BTreeMap<String, u32>,
    /// An actuation a crash cut short, to reconcile before anything else.
    reconcile: Option<Pending>,
    /// In a cluster: the policy's ownership, through which state is shared.
    shared: Option<Arc<dyn Shared>>,
    store: Store,
    clock: Arc<dyn Clock>,
    decisions: broadcast::Sender<Decision>,
}

impl PolicyRuntime {
    /// Wires a policy and restores its memory from the store.
    pub fn new(
        policy: Policy,
        target: Arc<Target>,
        sources: &BTreeMap<String, Arc<Source>>,
        store: Store,
        clock: Arc<dyn Clock>,
        decisions: broadcast::Sender<Decision>,
    ) -> Result<Self, String> {
        let mut by_source: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (metric, m) in &policy.metrics {
            by_source.entry(m.source.clone()).or_default().push((metric.clone(), m.query.clone()));
        }
        let reads = by_source
            .into_iter()
            .map(|(name, qs)| {
                let s = sources.get(&name).cloned().ok_or_else(|| format!("no source `{name}`"))?;
                Ok(SourceRead { name, source: s, queries: qs })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let series = policy.metrics.keys().map(|k| (k.clone(), Series::new())).collect();
        let history = PolicyHistory::new(policy.spec.history_retention());
        let mut lua = Vec::new();
        for (name, check) in &policy.spec.checks {
            if let StrategyConfig::Lua(c) = check {
                let field = format!("policies.{}.checks.{name}", policy.spec.name);
                lua.push((name.clone(), LuaCheckRunner::new(&field, c, clock.clone())?));
            }
        }
        let (policy_name, target_name) = (policy.spec.name.clone(), policy.target.clone());
        let (interval, min, max) = (policy.spec.interval, policy.spec.min, policy.spec.max);
        let config_dry_run = policy.spec.behaviour.dry_run;
        let mut rt = PolicyRuntime {
            policy,
            target,
            reads,
            series,
            history,
            lua,
            restore_to: None,
            wake: WakeTimer::default(),
            saved_states: BTreeMap::new(),
            memories: BTreeMap::new(),
            saved_memories: BTreeMap::new(),
            backfilled: false,
            control: Arc::new(super::control::Control::new(
                &policy_name,
                &target_name,
                interval,
                min,
                max,
                config_dry_run,
            )),
            breaker: Arc::new(Breaker::new(&target_name, BreakerConfig::default())),
            ledger: None,
            held: BTreeMap::new(),
            failing: BTreeMap::new(),
            reconcile: None,
            shared: None,
            store,
            clock,
            decisions,
        };
        rt.restore()?;
        Ok(rt)
    }

    /// The `push` sources the policy reads, each with the names it reads there.
    pub fn push_sources(&self) -> Vec<(Arc<crate::sources::push::Push>, Vec<String>)> {
        let mut out: Vec<(Arc<crate::sources::push::Push>, Vec<String>)> = Vec::new();
        for r in &self.reads {
            if let Source::Push(p) = r.source.as_ref() {
                let names = r.queries.iter().map(|(_, q)| q.clone());
                match out.iter_mut().find(|(q, _)| Arc::ptr_eq(q, p)) {
                    Some((_, known)) => known.extend(names),
                    None => out.push((p.clone(), names.collect())),
                }
            }
        }
        out
    }

    /// What operators set on this policy.
    pub fn control(&self) -> Arc<super::control::Control> {
        self.control.clone()
    }

    /// Uses the target's shared breaker and the global budget's ledger.
    pub fn share(&mut self, breaker: Arc<Breaker>, ledger: Option<Arc<Ledger>>) {
        self.breaker = breaker;
        self.ledger = ledger;
    }

    /// Shares decisions, states and actuations through `shared` (a cluster
    /// ownership), and fences the target with its token.
    pub fn set_shared(&mut self, shared: Arc<dyn Shared>) {
        self.target.set_fence(shared.token());
        self.shared = Some(shared);
    }

    /// A new runtime for the same policy, restored from the store as at
    /// start (after a cluster import), keeping the operator controls, the
    /// breaker and the ledger.
    pub fn fresh(&self) -> Result<PolicyRuntime, String> {
        let sources: BTreeMap<String, Arc<Source>> =
            self.reads.iter().map(|r| (r.name.clone(), r.source.clone())).collect();
        let mut rt = PolicyRuntime::new(
            self.policy.clone(),
            self.target.clone(),
            &sources,
            self.store.clone(),
            self.clock.clone(),
            self.decisions.clone(),
        )?;
        rt.control = self.control.clone();
        rt.share(self.breaker.clone(), self.ledger.clone());
        Ok(rt)
    }

    /// The engine's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The store the policy records to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.policy.spec.name
    }

    /// Time between ticks.
    pub fn interval(&self) -> Duration {
        self.policy.spec.interval
    }

    /// Rebuilds windows, cooldowns and metric series from stored decisions.
    fn restore(&mut self) -> Result<(), String> {
        let spec = &self.policy.spec;
        let now = self.clock.now();
        let keep_series = spec.series_retention();
        let reach = spec.history_retention().max(keep_series);
        let past = self.store.since(&spec.name, now.minus(reach), RESTORE_LIMIT).map_err(|e| e.to_string())?;
        for d in &past {
            self.history.note(d);
            for i in &d.inputs {
                if let Some(s) = self.series.get_mut(&i.metric) {
                    s.push(Point { at: d.at, value: i.usable() }, keep_series);
                }
            }
        }
        let predictive: Vec<&String> =
            spec.checks.iter().filter(|(_, c)| matches!(c, StrategyConfig::Predictive(_))).map(|(n, _)| n).collect();
        if !self.lua.is_empty() || !predictive.is_empty() {
            // check state lives as long as the policy, however old its last decision
            for (check, state) in self.store.states(&spec.name).map_err(|e| e.to_string())? {
                if predictive.contains(&&check) {
                    match serde_json::from_value::<moontide_core::PredictiveMemory>(state) {
                        Ok(m) => {
                            tracing::info!(policy = %spec.name, check = %check, steps = m.len(), "restored the forecast history");
                            self.memories.insert(check, m);
                        }
                        Err(e) => {
                            tracing::warn!(policy = %spec.name, check = %check, "cannot read the saved forecast history ({e}); starting afresh")
                        }
                    }
                    continue;
                }
                if let Some((_, runner)) = self.lua.iter_mut().find(|(n, _)| *n == check) {
                    runner.restore(&state).map_err(|e| format!("policy `{}` check `{check}`: {e}", spec.name))?;
                    self.saved_states.insert(check, state.to_string());
                }
            }
        }
        if let Some(saved) = self.store.control(&spec.name).map_err(|e| e.to_string())? {
            match serde_json::from_str::<super::control::OperatorState>(&saved) {
                Ok(o) => {
                    if o != super::control::OperatorState::default() {
                        tracing::info!(policy = %spec.name, paused = o.paused.is_some(), hold = o.hold.is_some(),
                            dry_run = ?o.dry_run, "put back what operators had set");
                    }
                    self.control.restore(o, now);
                }
                Err(e) => {
                    tracing::warn!(policy = %spec.name, "cannot read what operators had set ({e}); going by the config")
                }
            }
        }
        self.restore_to = self.store.last_scaled_to(&spec.name).map_err(|e| e.to_string())?;
        if let Some(p) = self.store.pending(&spec.name).map_err(|e| e.to_string())? {
            let recorded = past
                .iter()
                .any(|d| d.at >= p.at && matches!(d.outcome, Outcome::Scaled { .. } | Outcome::Failed { .. }));
            if recorded {
                // the crash came after the outcome was recorded
                self.store.clear_pending(&spec.name).map_err(|e| e.to_string())?;
            } else {
                tracing::warn!(policy = %spec.name, from = p.from, to = p.to, "an actuation was cut short by a restart; reconciling it first");
                self.reconcile = Some(p);
            }
        }
        if !past.is_empty() {
            tracing::info!(policy = %spec.name, decisions = past.len(), "restored windows and cooldowns from the store");
        }
        Ok(())
    }

    /// Runs one tick and records its decision.
    pub async fn tick(&mut self) -> Decision {
        let (now, status) = match self.begin().await {
            Ok(x) => x,
            Err(skipped) => return self.finish(skipped).await,
        };
        if !self.backfilled {
            self.backfilled = true;
            self.backfill(now).await;
        }
        let mut inputs = self.read(now).await;
        self.screen(now, &mut inputs);
        let keep = self.policy.spec.series_retention();
        for i in &inputs {
            if let Some(s) = self.series.get_mut(&i.metric) {
                s.push(Point { at: now, value: i.usable() }, keep);
            }
        }
        let spec = &self.policy.spec;
        let obs = observation(spec, &self.series, now, &status);
        let mut checks = run_checks(spec, &obs, &mut self.memories);
        let forecasts = moontide_core::policy::forecasts_of(&checks);
        for (name, runner) in &mut self.lua {
            let (recommendation, state) = runner.decide(&obs, &forecasts).await;
            checks.push(CheckOutcome {
                check: name.clone(),
                strategy: "lua".into(),
                recommendation,
                state,
                forecast: None,
            });
        }
        checks.sort_by(|a, b| a.check.cmp(&b.check));
        self.save_memories(now).await;
        self.conclude_and_act(now, status, inputs, checks).await
    }

    /// A decision driven from outside the tick (a script-mode request): `check`
    /// gets the current count and gives the one check outcome; guards,
    /// actuation and recording follow as in a tick.
    pub async fn act(&mut self, check: impl FnOnce(u32) -> CheckOutcome) -> Decision {
        let (now, status) = match self.begin().await {
            Ok(x) => x,
            Err(skipped) => return self.finish(skipped).await,
        };
        let outcome = check(status.current);
        self.conclude_and_act(now, status, Vec::new(), vec![outcome]).await
    }

    /// Records what became of an actuation a crash cut short, from the
    /// target's real count: reached, not reached, or partly.
    /// Until that is done (the target's status is unknown) nothing else happens:
    /// the tick is skipped and the next one tries again.
    async fn reconcile(&mut self, p: Pending) -> Result<(), Decision> {
        let now = self.clock.now();
        let name = self.policy.spec.name.clone();
        let started = moontide_core::duration::format(now.since(p.at));
        let why = format!("cannot reconcile the actuation {} → {} cut short by a restart", p.from, p.to);
        let mut d = match self.read_status().await {
            Ok(st) => {
                let mut d = Decision::skipped(&name, now, st.current, st.ready, "");
                let (from, to) = (p.from, p.to);
                if let Some(note) = &st.note {
                    // Moontide's own count, not the platform's word: it cannot tell
                    let error = format!(
                        "cut short by a restart {started} ago; whether it reached {to} is unknown ({note}); counting from {}",
                        st.current
                    );
                    d.outcome = Outcome::Failed { from, to, error, reached: None };
                    d.reason = format!(
                        "reconciled after a restart: the actuation {from} → {to} may or may not have completed; the target keeps no count Moontide can read, so it counts from {}, the last count it set",
                        st.current
                    );
                } else if st.current == to {
                    d.outcome = Outcome::Scaled { from, to };
                    d.reason = format!(
                        "reconciled after a restart: the actuation {from} → {to} started {started} ago reached the target (now at {to})"
                    );
                } else {
                    let error = format!("cut short by a restart {started} ago; the target is at {}", st.current);
                    d.outcome = Outcome::Failed { from, to, error, reached: Some(st.current) };
                    d.reason = format!(
                        "reconciled after a restart: the actuation {from} → {to} did not complete; the target is at {}",
                        st.current
                    );
                }
                // the count it reached is the one to count from
                if let Some((_, n)) = d.outcome.change() {
                    self.target.restore(n).await;
                }
                d
            }
            Err(e) => {
                self.reconcile = Some(p);
                return Err(Decision::skipped(&name, now, 0, 0, format!("{why}: {e}")));
            }
        };
        d.desired = p.to;
        self.finish(d).await;
        if let Err(e) = self.store.end_actuation(&name).await {
            tracing::error!(policy = %name, "cannot clear the reconciled actuation: {e}");
        }
        if let Some(shared) = &self.shared
            && let Err(e) = shared.end_actuation().await
        {
            tracing::warn!(policy = %name, "cannot clear the shared actuation: {e}");
        }
        Ok(())
    }

    /// How long a status read may take: the target's own timeouts allow for
    /// (and a little more, so its own error is the one reported), at least
    /// [`STATUS_TIMEOUT`].
    fn status_limit(&self) -> Duration {
        STATUS_TIMEOUT.max(self.target.status_time() + Duration::from_secs(2))
    }

    /// Restores the target if needed, then reads the time and the target's status.
    async fn begin(&mut self) -> Result<(Timestamp, crate::targets::Status), Decision> {
        // restore first: a target that counts for itself (a webhook without a status
        // URL, a process pool) would otherwise be reconciled against its initial count
        if let Some(n) = self.restore_to.take() {
            self.target.restore(n).await;
        }
        if let Some(p) = self.reconcile.take() {
            self.reconcile(p).await?;
        }
        let now = self.clock.now();
        match self.read_status().await {
            Ok(s) => Ok((now, s)),
            Err(why) => Err(Decision::skipped(&self.policy.spec.name, now, 0, 0, why)),
        }
    }

    /// The target's status, within [`Self::status_limit`]; or why there is none.
    async fn read_status(&self) -> Result<crate::targets::Status, String> {
        let limit = self.status_limit();
        match tokio::time::timeout(limit, self.target.status()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!("target status unknown: {e}")),
            Err(_) => Err(format!("target status timed out after {}", moontide_core::duration::format(limit))),
        }
    }

    /// Combines, guards, actuates and records.
    async fn conclude_and_act(
        &mut self,
        now: Timestamp,
        status: crate::targets::Status,
        inputs: Vec<Input>,
        checks: Vec<CheckOutcome>,
    ) -> Decision {
        self.policy.spec.behaviour.dry_run = self.control.dry_run();
        let spec = &self.policy.spec;
        let name = spec.name.clone();
        let obs = observation(spec, &self.series, now, &status);
        let price = spec.behaviour.budget.as_ref().and_then(|b| b.price_per_replica_hour);
        let shared = self.ledger.as_ref().and_then(|l| l.cap(&name, price));
        let held = inputs.iter().any(|i| i.status == ReadingStatus::Held);
        let eval = conclude_shared(spec, &obs, &self.history, checks, shared, held);
        let mut d = Decision::from_evaluation(&name, &obs, inputs, eval);
        self.control.apply(&mut d, now);
        if d.desired != d.current {
            let (from, to) = (d.current, d.desired);
            if spec.behaviour.dry_run {
                d.outcome = Outcome::DryRun { from, to };
            } else if let Some(reason) = self.breaker.check(now) {
                d.outcome = Outcome::Deferred { from, to, reason };
            } else {
                d.outcome = self.actuate(&mut d, now).await;
            }
        }
        d.summarize();
        if let Some(note) = status.note {
            d.reason.push_str(&format!("; target: {note}"));
        }
        self.finish(d).await
    }

    /// Tells the target to go from `d.current` to `d.desired`, with the
    /// actuation noted as pending in the store while it runs (a crash in it
    /// is reconciled on the next start).
    async fn actuate(&mut self, d: &mut Decision, now: Timestamp) -> Outcome {
        let (name, from, to) = (self.policy.spec.name.clone(), d.current, d.desired);
        let key = format!("{name}-{}-{to}", now.as_millis());
        let pending = Pending { at: now, from, to, key: key.clone() };
        if let Some(shared) = &self.shared {
            // right before acting: still the owner? (fencing)
            if let Err(e) = shared.confirm().await {
                return Outcome::Deferred { from, to, reason: format!("not actuated: {e}") };
            }
            if let Err(e) = shared.begin_actuation(pending.clone()).await {
                return Outcome::Deferred { from, to, reason: format!("cannot share the actuation: {e}") };
            }
        }
        if let Err(e) = self.store.begin_actuation(&name, pending).await {
            // without the note a crash could go unreconciled: do not actuate blind
            let reason = format!("cannot note the actuation in the store: {e}");
            return Outcome::Deferred { from, to, reason };
        }
        match self.target.scale(from, to, &key).await {
            Ok(a) => {
                self.breaker.success();
                d.actuation = Some(a);
                Outcome::Scaled { from, to }
            }
            Err(e) => {
                self.breaker.failure(self.clock.now());
                d.actuation = Some(e.actuation);
                Outcome::Failed { from, to, error: e.message, reached: e.reached }
            }
        }
    }

    /// Saves each predictive check's memory that changed since it was last saved.
    async fn save_memories(&mut self, now: Timestamp) {
        let name = self.policy.spec.name.clone();
        let changed: Vec<(String, u64, String)> = self
            .memories
            .iter()
            .filter(|(check, m)| self.saved_memories.get(*check) != Some(&m.version()))
            .filter_map(|(check, m)| Some((check.clone(), m.version(), serde_json::to_string(m).ok()?)))
            .collect();
        for (check, version, json) in changed {
            if let Some(shared) = &self.shared
                && let Err(e) = shared.save_state(check.clone(), json.clone()).await
            {
                tracing::warn!(policy = %name, "cannot share the forecast history of `{check}`: {e}");
            }
            match self.store.save_state(&name, &check, now, json).await {
                Ok(()) => {
                    self.saved_memories.insert(check, version);
                }
                Err(e) => tracing::error!(policy = %name, "cannot save the forecast history of `{check}`: {e}"),
            }
        }
    }

    /// Screens fresh readings: counts failures (the alert metric) and holds
    /// back readings the sanity check finds implausible.
    fn screen(&mut self, now: Timestamp, inputs: &mut [Input]) {
        use crate::metrics::{get, labels2};
        let policy = self.policy.spec.name.clone();
        let m = get();
        for i in inputs.iter_mut() {
            let labels = labels2("policy", &policy, "metric", &i.metric);
            if i.status != ReadingStatus::Ok {
                m.reading_errors.get_or_create(&labels).inc();
                let n = self.failing.entry(i.metric.clone()).or_default();
                *n = n.saturating_add(1);
                m.reading_failing.get_or_create(&labels).set(*n as i64);
                continue;
            }
            if self.failing.remove(&i.metric).is_some() {
                m.reading_failing.get_or_create(&labels).set(0);
            }
            let (Some(sanity), Some(value), Some(series)) =
                (self.policy.spec.behaviour.sanity.as_ref(), i.value, self.series.get(&i.metric))
            else {
                continue;
            };
            match sanity.judge(series, now, self.held.remove(&i.metric), value) {
                Verdict::Accept => {}
                Verdict::Confirmed(why) => i.error = Some(why),
                Verdict::Hold(why) => {
                    m.readings_held.get_or_create(&labels).inc();
                    self.held.insert(i.metric.clone(), value);
                    i.status = ReadingStatus::Held;
                    i.error = Some(why);
                }
            }
        }
    }

    /// Times a scale-up from zero ([`WakeTimer`]): logged and exported
    /// (`moontide_wake_from_zero_seconds`).
    fn note_wake(&mut self, d: &Decision) {
        if let Some(secs) = self.wake.note(d) {
            tracing::info!(policy = %d.policy, "woken from zero: a first replica was ready {secs:.0}s after the scale-up");
            let m = crate::metrics::get();
            m.wake_from_zero.get_or_create(&crate::metrics::label("policy", &d.policy)).set(secs);
        }
    }

    /// Counts a decision in Moontide's own metrics.
    fn count(&self, d: &Decision) {
        use crate::metrics::{get, label, labels2};
        let m = get();
        let policy = &d.policy;
        m.ticks.get_or_create(&label("policy", policy)).inc();
        m.decisions.get_or_create(&labels2("policy", policy, "outcome", d.outcome.kind())).inc();
        let target = &self.policy.target;
        match &d.outcome {
            Outcome::Scaled { .. } => {
                m.actuations.get_or_create(&labels2("target", target, "result", "ok")).inc();
            }
            Outcome::Failed { .. } => {
                m.actuations.get_or_create(&labels2("target", target, "result", "error")).inc();
            }
            _ => {}
        }
        if d.guards.iter().any(|g| g.guard == moontide_core::GuardKind::Budget) {
            m.budget_capped.get_or_create(&label("policy", policy)).inc();
        }
        for c in d.checks.iter().filter(|c| c.strategy == "lua" && c.recommendation.error.is_some()) {
            m.lua_errors.get_or_create(&labels2("policy", policy, "check", &c.check)).inc();
        }
        if !matches!(d.outcome, Outcome::Skipped { .. }) {
            for (kind, n) in [("current", d.current), ("ready", d.ready), ("desired", d.desired)] {
                m.replicas.get_or_create(&labels2("policy", policy, "kind", kind)).set(n as i64);
            }
        }
    }

    /// Before the first reading: fills each empty window from its source's
    /// history, where the source keeps one (Prometheus), one point per
    /// interval, so windows hold data from the first tick.
    async fn backfill(&mut self, now: Timestamp) {
        let keep = self.policy.spec.series_retention();
        let step = self.policy.spec.interval;
        for read in &self.reads {
            for (metric, query) in &read.queries {
                let Some(series) = self.series.get_mut(metric).filter(|s| s.is_empty()) else { continue };
                let ask = read.source.history(query, now.minus(keep), now.minus(step), step);
                let points = match tokio::time::timeout(READ_TIMEOUT, ask).await {
                    Ok(None) => continue,
                    Ok(Some(Ok(points))) => points,
                    Ok(Some(Err(e))) => {
                        tracing::warn!(policy = %self.policy.spec.name, metric = %metric, "cannot fill the window from `{}`: {e}", read.name);
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(policy = %self.policy.spec.name, metric = %metric, "no history from `{}` within {}s", read.name, READ_TIMEOUT.as_secs());
                        continue;
                    }
                };
                let n = points.iter().filter(|(at, _)| *at < now).count();
                for (at, v) in points.into_iter().filter(|(at, _)| *at < now) {
                    series.push(Point { at, value: Some(v) }, keep);
                }
                tracing::info!(policy = %self.policy.spec.name, metric = %metric, points = n, "window filled from `{}`", read.name);
            }
        }
    }

    /// Reads every metric, one request per source, sources in parallel.
    async fn read(&self, now: Timestamp) -> Vec<Input> {
        let mut set = tokio::task::JoinSet::new();
        for (idx, read) in self.reads.iter().enumerate() {
            let source = read.source.clone();
            let queries: Vec<String> = read.queries.iter().map(|(_, q)| q.clone()).collect();
            let source_name = read.name.clone();
            set.spawn(async move {
                let n = queries.len();
                let started = std::time::Instant::now();
                let results = match tokio::time::timeout(READ_TIMEOUT, source.read(&queries)).await {
                    Ok(r) => r,
                    Err(_) => vec![Err(format!("no answer within {}s", READ_TIMEOUT.as_secs())); n],
                };
                crate::metrics::get()
                    .read_seconds
                    .get_or_create(&crate::metrics::label("source", &source_name))
                    .observe(started.elapsed().as_secs_f64());
                (idx, results, source.max_age())
            });
        }
        let mut answers: Vec<Option<(Vec<crate::sources::QueryResult>, Option<Duration>)>> =
            vec![None; self.reads.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((idx, results, max_age)) = joined {
                answers[idx] = Some((results, max_age));
            }
        }
        let mut inputs = Vec::new();
        for (read, answer) in self.reads.iter().zip(answers) {
            // A reader task that died gives failures, not silence.
            let (results, max_age) =
                answer.unwrap_or_else(|| (vec![Err("reader task failed".into()); read.queries.len()], None));
            for ((metric, query), r) in read.queries.iter().zip(results) {
                let mut input = Input {
                    metric: metric.clone(),
                    source: read.name.clone(),
                    query: query.clone(),
                    at: now,
                    value: None,
                    status: ReadingStatus::Failed,
                    error: None,
                };
                match r {
                    Ok(v) => {
                        input.value = Some(v.value);
                        input.status = ReadingStatus::Ok;
                        if let Some(max) = max_age
                            && let Some(why) = staleness(now, v.measured_at, max)
                        {
                            input.status =
                                if v.measured_at.is_some() { ReadingStatus::Stale } else { ReadingStatus::Failed };
                            input.error = Some(why);
                        }
                    }
                    Err(e) => input.error = Some(e),
                }
                inputs.push(input);
            }
        }
        inputs.sort_by(|a, b| a.metric.cmp(&b.metric));
        inputs
    }

    async fn finish(&mut self, d: Decision) -> Decision {
        self.history.note(&d);
        for c in &d.checks {
            if let Some(state) = &c.state {
                let text = state.to_string();
                if self.saved_states.get(&c.check) != Some(&text) {
                    if let Some(shared) = &self.shared
                        && let Err(e) = shared.save_state(c.check.clone(), text.clone()).await
                    {
                        tracing::warn!(policy = %d.policy, "cannot share the state of check `{}`: {e}", c.check);
                    }
                    match self.store.save_state(&d.policy, &c.check, d.at, text.clone()).await {
                        Ok(()) => {
                            self.saved_states.insert(c.check.clone(), text);
                        }
                        Err(e) => {
                            tracing::error!(policy = %d.policy, "cannot save the state of check `{}`: {e}", c.check)
                        }
                    }
                }
            }
        }
        if let Err(e) = self.store.append_async(d.clone()).await {
            tracing::error!(policy = %d.policy, "cannot record decision: {e}");
        }
        if d.actuation.is_some()
            && let Err(e) = self.store.end_actuation(&d.policy).await
        {
            tracing::error!(policy = %d.policy, "cannot clear the finished actuation: {e}");
        }
        if let Some(shared) = &self.shared {
            let keep = self.policy.spec.history_retention().max(self.policy.spec.series_retention());
            if let Err(e) = shared.record(d.clone(), keep).await {
                tracing::warn!(policy = %d.policy, "cannot share the decision: {e}");
            }
            if d.actuation.is_some()
                && let Err(e) = shared.end_actuation().await
            {
                tracing::warn!(policy = %d.policy, "cannot clear the shared actuation: {e}");
            }
        }
        if let Some(ledger) = &self.ledger
            && let Some(running) = self.history.running()
        {
            let price = self.policy.spec.behaviour.budget.as_ref().and_then(|b| b.price_per_replica_hour);
            ledger.note(&d.policy, running, price, self.history.replica_hours(d.at));
        }
        match &d.outcome {
            Outcome::Failed { .. } | Outcome::Skipped { .. } => {
                tracing::warn!(target: "moontide::decision", policy = %d.policy, outcome = d.outcome.kind(), "{}", d.reason)
            }
            _ => {
                tracing::info!(target: "moontide::decision", policy = %d.policy, outcome = d.outcome.kind(), "{}", d.reason)
            }
        }
        self.control.note(|s| s.last = Some(d.clone()));
        self.count(&d);
        self.note_wake(&d);
        let _ = self.decisions.send(d.clone());
        d
    }
}

/// What the checks see this tick.
fn observation<'a>(
    spec: &moontide_core::PolicySpec,
    series: &'a BTreeMap<String, Series>,
    now: Timestamp,
    status: &crate::targets::Status,
) -> Observation<'a> {
    Observation {
        now,
        interval: spec.interval,
        current: status.current,
        ready: status.ready,
        min: spec.min,
        max: spec.max,
        series,
    }
}

/// Clock skew tolerated for a source's own timestamps.
const MAX_SKEW: Duration = Duration::from_secs(60);

/// Why a reading from a source that states its measurement time cannot be used, if it cannot.
fn staleness(now: Timestamp, measured_at: Option<Timestamp>, max_age: Duration) -> Option<String> {
    let fmt = moontide_core::duration::format;
    let Some(at) = measured_at else {
        return Some("the payload has no usable timestamp at time_pointer".into());
    };
    if at > now.plus(MAX_SKEW) {
        return Some(format!("measured {} in the future (is the timestamp in seconds?)", fmt(at.since(now))));
    }
    let age = now.since(at);
    (age > max_age).then(|| format!("measured {} ago, older than max_age {}", fmt(age), fmt(max_age)))
}
