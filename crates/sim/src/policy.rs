//! A Moontide policy in the simulator: the same strategies, Lua checks,
//! guards and history as `moontide run`, fed by the simulated service's
//! metrics on the simulated clock.

use crate::run::{Autoscaler, View};
use moontide_core::policy::{conclude_shared, forecasts_of, run_checks};
use moontide_core::sanity::Verdict;
use moontide_core::strategy::{TargetTracking, TrackedMetric};
use moontide_core::{
    Behaviour, CheckOutcome, Decision, ManualClock, Observation, Outcome, Point, PolicyHistory, PolicySpec, Series,
    StrategyConfig, Timestamp,
};
use moontide_lua::LuaStrategy;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The metrics the simulated service gives, by the names a policy binds to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SimMetric {
    /// Busy share of the serving replicas, %.
    Cpu,
    /// Requests arriving per second.
    Rps,
    /// Requests served per second.
    Served,
    /// Requests waiting.
    Queue,
    /// Latency of a request arriving now, ms.
    LatencyMs,
    /// Ready replicas.
    Ready,
    /// Requests running on replicas (LLM model).
    Running,
    /// KV-cache use, 0 to 1 (LLM model).
    KvCache,
    /// Tokens generated per second (LLM model).
    TokensPerSecond,
}

impl SimMetric {
    /// Every metric.
    pub const ALL: &'static [SimMetric] = &[
        SimMetric::Cpu,
        SimMetric::Rps,
        SimMetric::Served,
        SimMetric::Queue,
        SimMetric::LatencyMs,
        SimMetric::Ready,
        SimMetric::Running,
        SimMetric::KvCache,
        SimMetric::TokensPerSecond,
    ];
    /// The metrics the request-rate model (`moontide simulate`) gives.
    pub const RATES: &'static [SimMetric] =
        &[SimMetric::Cpu, SimMetric::Rps, SimMetric::Served, SimMetric::Queue, SimMetric::LatencyMs, SimMetric::Ready];
    /// The metrics the LLM serving model (`moontide simulate-llm`) gives; its
    /// `cpu` is the KV-cache use in %.
    pub const LLM: &'static [SimMetric] = &[
        SimMetric::Running,
        SimMetric::Queue,
        SimMetric::KvCache,
        SimMetric::TokensPerSecond,
        SimMetric::Ready,
        SimMetric::Rps,
        SimMetric::Served,
        SimMetric::Cpu,
    ];

    /// The name a policy binds to.
    pub fn name(self) -> &'static str {
        match self {
            SimMetric::Cpu => "cpu",
            SimMetric::Rps => "rps",
            SimMetric::Served => "served",
            SimMetric::Queue => "queue",
            SimMetric::LatencyMs => "latency_ms",
            SimMetric::Ready => "ready",
            SimMetric::Running => "running",
            SimMetric::KvCache => "kv_cache",
            SimMetric::TokensPerSecond => "tokens_per_second",
        }
    }

    /// The names of `set`, for messages: "cpu, rps, ...".
    pub fn names(set: &[SimMetric]) -> String {
        set.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    }

    /// The metric for a name (one of [`SimMetric::ALL`]'s names).
    pub fn parse(name: &str) -> Option<SimMetric> {
        SimMetric::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// Guesses the metric a live query stands for ("/cpuUsage" → cpu, "requests_per_second" → rps, ...).
    pub fn guess(text: &str) -> Option<SimMetric> {
        let t = text.to_ascii_lowercase();
        if t.contains("kv_cache") || t.contains("cache_usage") {
            Some(SimMetric::KvCache)
        } else if t.contains("tokens") {
            Some(SimMetric::TokensPerSecond)
        } else if t.contains("running") {
            Some(SimMetric::Running)
        } else if t.contains("cpu") || t.contains("util") {
            Some(SimMetric::Cpu)
        } else if t.contains("latency") || t.contains("duration") {
            Some(SimMetric::LatencyMs)
        } else if t.contains("queue") || t.contains("waiting") || t.contains("backlog") || t.contains("pending") {
            Some(SimMetric::Queue)
        } else if t.contains("served") || t.contains("throughput") || t.contains("completed") {
            Some(SimMetric::Served)
        } else if t.contains("rps") || t.contains("request") || t.contains("rate") {
            Some(SimMetric::Rps)
        } else if t.contains("ready") {
            Some(SimMetric::Ready)
        } else {
            None
        }
    }

    fn read(self, v: &View) -> f64 {
        match self {
            SimMetric::Cpu => v.cpu,
            SimMetric::Rps => v.rps,
            SimMetric::Served => v.served,
            SimMetric::Queue => v.queue,
            SimMetric::LatencyMs => v.latency_ms,
            SimMetric::Ready => v.ready as f64,
            SimMetric::Running => v.running,
            SimMetric::KvCache => v.kv_cache,
            SimMetric::TokensPerSecond => v.tokens_per_second,
        }
    }
}

/// A Moontide policy as an [`Autoscaler`].
pub struct PolicyScaler {
    name: String,
    spec: PolicySpec,
    bindings: Vec<(String, SimMetric)>,
    series: BTreeMap<String, Series>,
    history: PolicyHistory,
    lua: Vec<(String, LuaStrategy)>,
    clock: Arc<ManualClock>,
    /// Each predictive check's memory.
    memories: moontide_core::policy::Memories,
    decisions: Vec<Decision>,
    keep_decisions: bool,
    /// Readings the sanity check held back last decision, by metric.
    held: BTreeMap<String, f64>,
    /// Decisions made since the first (at `started`, simulated seconds), and
    /// those in which a check failed, with the first failure.
    started: Option<f64>,
    decided: u64,
    failed: u64,
    first_failure: Option<String>,
}

impl PolicyScaler {
    /// A policy whose metrics are `bindings` (policy metric name → simulated
    /// metric) and whose Lua checks are `lua` (built on `clock`, which the
    /// scaler moves to each decision's time).
    pub fn new(
        name: impl Into<String>,
        spec: PolicySpec,
        bindings: Vec<(String, SimMetric)>,
        lua: Vec<(String, LuaStrategy)>,
        clock: Arc<ManualClock>,
    ) -> Self {
        let series = bindings.iter().map(|(n, _)| (n.clone(), Series::new())).collect();
        let history = PolicyHistory::new(spec.history_retention());
        PolicyScaler {
            name: name.into(),
            spec,
            bindings,
            series,
            history,
            lua,
            clock,
            memories: Default::default(),
            decisions: Vec::new(),
            keep_decisions: false,
            held: BTreeMap::new(),
            started: None,
            decided: 0,
            failed: 0,
            first_failure: None,
        }
    }

    /// Keeps every decision (for tests and reports; costs memory on long traces).
    pub fn keep_decisions(mut self) -> Self {
        self.keep_decisions = true;
        self
    }

    /// The decisions kept.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }
}

/// Kubernetes HPA v2 with its defaults: every 15 s, desired =
/// ceil(current × cpu / target), no change within a 0.1 tolerance, a 300 s
/// scale-down stabilization window, scale-up at most max(4 pods, 100 %) per
/// 15 s and scale-down at most 100 % per 15 s; within `[min, max]`.
pub fn hpa(target_cpu: f64, min: u32, max: u32) -> PolicyScaler {
    let check = StrategyConfig::TargetTracking(TargetTracking {
        tolerance: 0.1,
        targets: vec![TrackedMetric {
            metric: "cpu".into(),
            target: target_cpu,
            aggregate: Default::default(),
            activation: None,
        }],
    });
    let spec = PolicySpec {
        name: "hpa".into(),
        interval: Duration::from_secs(15),
        min,
        max,
        checks: BTreeMap::from([("cpu".to_string(), check)]),
        behaviour: Behaviour::default(),
    };
    let clock = Arc::new(ManualClock::default());
    PolicyScaler::new(
        format!("HPA (cpu {target_cpu:.0}%)"),
        spec,
        vec![("cpu".into(), SimMetric::Cpu)],
        Vec::new(),
        clock,
    )
}

impl Autoscaler for PolicyScaler {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn interval(&self) -> f64 {
        self.spec.interval.as_secs_f64()
    }

    fn problems(&self) -> Option<String> {
        let first = self.first_failure.as_ref()?;
        Some(format!("{} of {} decisions had a failing check; the first: {first}", self.failed, self.decided))
    }

    fn decide(&mut self, view: &View) -> u32 {
        let now = Timestamp::from_millis((view.now * 1000.0).round() as i64);
        self.clock.set(now);
        let keep = self.spec.series_retention();
        let mut held = Vec::new();
        for (name, metric) in &self.bindings {
            let mut value = Some(metric.read(view)).filter(|_| view.scraped);
            let Some(s) = self.series.get_mut(name) else { continue };
            // the sanity check, as a live tick runs it: an implausible reading waits a decision for confirmation
            if let (Some(sanity), Some(v)) = (&self.spec.behaviour.sanity, value)
                && let Verdict::Hold(_) = sanity.judge(s, now, self.held.remove(name), v)
            {
                self.held.insert(name.clone(), v);
                value = None;
                held.push(held_input(name, now, v));
            }
            s.push(Point { at: now, value }, keep);
        }
        let obs = Observation {
            now,
            interval: self.spec.interval,
            current: view.current,
            ready: view.ready,
            min: self.spec.min,
            max: self.spec.max,
            series: &self.series,
        };
        let mut checks = run_checks(&self.spec, &obs, &mut self.memories);
        let forecasts = forecasts_of(&checks);
        for (name, strategy) in &mut self.lua {
            let _ = strategy.set_forecasts(&forecasts);
            // the simulator keeps no Lua state of its own: skip reading it back
            let recommendation = strategy.decide_unsaved(&obs);
            checks.push(CheckOutcome {
                check: name.clone(),
                strategy: "lua".into(),
                recommendation,
                state: None,
                forecast: None,
            });
        }
        checks.sort_by(|a, b| a.check.cmp(&b.check));
        self.started.get_or_insert(view.now);
        // before the first scrape every check that reads a metric fails: that is not a problem
        self.decided += u64::from(view.scraped);
        if let Some((check, error)) =
            checks.iter().filter(|_| view.scraped).find_map(|c| c.recommendation.error.as_ref().map(|e| (&c.check, e)))
        {
            self.failed += 1;
            let at = view.now - self.started.unwrap_or(view.now);
            self.first_failure.get_or_insert_with(|| format!("check `{check}` at {at:.0} s: {error}"));
        }
        let eval = conclude_shared(&self.spec, &obs, &self.history, checks, None, !held.is_empty());
        // the inputs are left out for speed, but for the held ones: the fallback's count of failing ticks skips them
        let mut d = Decision::from_evaluation(&self.spec.name, &obs, held, eval);
        if d.desired != d.current {
            d.outcome = Outcome::Scaled { from: d.current, to: d.desired };
        }
        let desired = d.desired;
        self.history.note(&d);
        if self.keep_decisions {
            self.decisions.push(d);
        }
        desired
    }
}

/// The record of `metric`'s reading `value`, held back by the sanity check
/// (what the fallback's count of failing ticks looks for).
fn held_input(metric: &str, at: Timestamp, value: f64) -> moontide_core::Input {
    moontide_core::Input {
        metric: metric.to_string(),
        source: "simulator".into(),
        query: String::new(),
        at,
        value: Some(value),
        status: moontide_core::ReadingStatus::Held,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moontide_core::strategy::Predictive;
    use moontide_lua::{Limits, Origin};

    /// A forecast-only predictive check feeds a Lua check of the same policy
    /// through `ctx.forecasts`; the Lua check sizes from it.
    #[test]
    fn lua_checks_read_the_forecasts_of_predictive_checks() {
        let load = StrategyConfig::Predictive(Predictive {
            metric: "rps".into(),
            target: None,
            per_step: Default::default(),
            step: Duration::from_secs(60),
            seasons: Vec::new(),
            history: None,
            lead: Duration::from_secs(120),
            headroom: 0.0,
            forecast_only: true,
        });
        assert!(matches!(&load, StrategyConfig::Predictive(p) if p.validate().is_empty()));
        let spec = PolicySpec {
            name: "p".into(),
            interval: Duration::from_secs(10),
            min: 0,
            max: 100,
            checks: BTreeMap::from([("load".to_string(), load)]),
            behaviour: Behaviour::default(),
        };
        let clock = Arc::new(ManualClock::default());
        let source = r#"
            function decide(ctx)
              local f = ctx.forecasts.load
              if f == nil then return nil, "no forecast" end
              return math.ceil(f.value / 10), f.model .. " " .. f.lead
            end"#;
        let origin = Origin::Inline { name: "sizer".into(), source: source.into() };
        let lua = LuaStrategy::load(origin, Limits::default(), Duration::from_secs(600), clock.clone()).unwrap();
        let mut p =
            PolicyScaler::new("p", spec, vec![("rps".into(), SimMetric::Rps)], vec![("sizer".into(), lua)], clock)
                .keep_decisions();
        let mut last = 0;
        for i in 0..120 {
            let view = View {
                now: 1_000_000.0 + 10.0 * i as f64,
                current: 3,
                ready: 3,
                rps: 50.0,
                scraped: true,
                ..Default::default()
            };
            last = p.decide(&view);
        }
        // after 8 one-minute steps of history: 50 req/s forecast, 10 per replica
        assert_eq!(last, 5);
        let d = p.decisions().last().unwrap();
        let sizer = d.checks.iter().find(|c| c.check == "sizer").unwrap();
        assert_eq!(sizer.recommendation.reason, "naive 120");
        let early = &p.decisions()[5];
        let sizer = early.checks.iter().find(|c| c.check == "sizer").unwrap();
        assert_eq!(sizer.recommendation.reason, "no forecast", "before the predictive check can forecast");
    }

    /// A check that fails while the policy decides is reported beside its
    /// scores, counted from the first scrape (before it every metric is
    /// unknown); a policy whose checks all answer reports nothing.
    #[test]
    fn failing_checks_are_counted_from_the_first_scrape() {
        let run = |source: &str| {
            let spec = PolicySpec {
                name: "p".into(),
                interval: Duration::from_secs(10),
                min: 0,
                max: 100,
                checks: BTreeMap::new(),
                behaviour: Behaviour::default(),
            };
            let clock = Arc::new(ManualClock::default());
            let origin = Origin::Inline { name: "sizer".into(), source: source.into() };
            let lua = LuaStrategy::load(origin, Limits::default(), Duration::from_secs(600), clock.clone()).unwrap();
            let mut p =
                PolicyScaler::new("p", spec, vec![("rps".into(), SimMetric::Rps)], vec![("sizer".into(), lua)], clock);
            for i in 0..6 {
                let view = View { now: 1_000_000.0 + 10.0 * i as f64, rps: 50.0, scraped: i > 0, ..Default::default() };
                p.decide(&view);
            }
            p.problems()
        };
        assert_eq!(run("function decide(ctx) return ctx.metrics.rps.value // 10 end"), None);
        let problems = run("function decide(ctx) if ctx.now >= 1000030 then error('boom') end return 1 end").unwrap();
        assert!(
            problems.starts_with("3 of 5 decisions had a failing check; the first: check `sizer` at 30 s:"),
            "{problems}"
        );
        assert!(problems.contains("boom"), "{problems}");
    }

    /// `behaviour.sanity` applies in the simulator as it does live: a
    /// one-decision spike is held back and dropped, a lasting jump is taken a
    /// decision late.
    #[test]
    fn the_sanity_check_holds_back_a_spike_and_takes_a_lasting_jump() {
        let check = StrategyConfig::TargetTracking(TargetTracking {
            tolerance: 0.0,
            targets: vec![TrackedMetric {
                metric: "cpu".into(),
                target: 50.0,
                aggregate: Default::default(),
                activation: None,
            }],
        });
        let mut behaviour = Behaviour::default();
        behaviour.scale_down.stabilization = Duration::ZERO;
        behaviour.sanity = Some(moontide_core::sanity::Sanity {
            factor: 3.0,
            floor: 1.0,
            window: Duration::from_secs(300),
            min_points: 3,
        });
        let spec = PolicySpec {
            name: "p".into(),
            interval: Duration::from_secs(10),
            min: 1,
            max: 100,
            checks: BTreeMap::from([("cpu".to_string(), check)]),
            behaviour,
        };
        let clock = Arc::new(ManualClock::default());
        let mut p = PolicyScaler::new("p", spec, vec![("cpu".into(), SimMetric::Cpu)], Vec::new(), clock);
        let mut at = 1_000_000.0;
        let mut decide = |cpu: f64| {
            at += 10.0;
            p.decide(&View { now: at, current: 4, ready: 4, cpu, scraped: true, ..Default::default() })
        };
        for _ in 0..6 {
            assert_eq!(decide(25.0), 2, "4 replicas at 25 % for a 50 % target");
        }
        // one reading at 100 %: more than 3 × the recent maximum, held (no scale-up); the next does not confirm it
        assert!(decide(100.0) <= 4, "a spike was acted on");
        assert_eq!(decide(25.0), 2);
        // a jump that lasts: held once, then taken
        assert!(decide(90.0) <= 4, "an unconfirmed jump was acted on");
        assert_eq!(decide(90.0), 8, "confirmed by the next reading: 4 × 90 / 50, rounded up");
    }

    #[test]
    fn live_names_map_to_simulated_metrics() {
        for (name, want) in [
            ("/cpuUsage", SimMetric::Cpu),
            ("/servedPerSecond", SimMetric::Served),
            ("http_requests_completed_total", SimMetric::Served),
            ("/requestsPerSecond", SimMetric::Rps),
            ("/queueLength", SimMetric::Queue),
            ("p99_latency", SimMetric::LatencyMs),
            ("ready_replicas", SimMetric::Ready),
        ] {
            assert_eq!(SimMetric::guess(name), Some(want), "{name}");
        }
        assert_eq!(SimMetric::guess("/memory"), None);
        assert_eq!(SimMetric::parse("served"), Some(SimMetric::Served));
        for m in SimMetric::ALL {
            assert_eq!(SimMetric::parse(m.name()), Some(*m));
        }
        assert_eq!(SimMetric::parse("Served"), None);
    }
}
