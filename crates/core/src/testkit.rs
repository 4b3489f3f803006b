//! Test helpers shared by the core's unit tests: virtual time, metric series,
//! observations and hand-made decisions. Nothing here reads the wall clock.

use crate::decision::{CheckOutcome, Decision, Outcome};
use crate::guard::{GuardEffect, GuardKind};
use crate::history::PolicyHistory;
use crate::observation::Observation;
use crate::series::{Point, Series};
use crate::strategy::Recommendation;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// The virtual epoch every test counts from, in seconds (far from zero so that
/// windows reaching into the past never saturate).
pub const T0: i64 = 1_000_000;

/// The tick interval the helpers assume (so `Observation::max_gap` is 21 s).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// `T0 + s` seconds.
pub fn at(s: i64) -> Timestamp {
    Timestamp::from_secs(T0 + s)
}

/// Seconds as a `Duration`.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Metric series built point by point with `Series::push`.
#[derive(Default)]
pub struct Metrics(pub BTreeMap<String, Series>);

impl Metrics {
    /// No metric at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `metric` with the given `(seconds after T0, value)` points; `None` is a failed reading.
    pub fn with(mut self, metric: &str, points: &[(i64, Option<f64>)]) -> Self {
        let series = self.0.entry(metric.to_string()).or_default();
        for &(t, value) in points {
            series.push(Point { at: at(t), value }, secs(3600));
        }
        self
    }

    /// Adds `metric` with a single fresh reading at `t`.
    pub fn one(self, metric: &str, t: i64, value: f64) -> Self {
        self.with(metric, &[(t, Some(value))])
    }

    /// Adds `metric` with readings every 10 s, the last one at `end`.
    pub fn every_10s(self, metric: &str, end: i64, values: &[f64]) -> Self {
        let n = values.len() as i64;
        let points: Vec<(i64, Option<f64>)> =
            values.iter().enumerate().map(|(i, &v)| (end - 10 * (n - 1 - i as i64), Some(v))).collect();
        self.with(metric, &points)
    }

    /// An observation at `now` (seconds after T0) with `current` (and as many ready)
    /// replicas, bounds [0, 1000] and a 10 s interval.
    pub fn obs(&self, now: i64, current: u32) -> Observation<'_> {
        Observation { now: at(now), interval: INTERVAL, current, ready: current, min: 0, max: 1000, series: &self.0 }
    }
}

/// A check outcome.
pub fn check(name: &str, recommendation: Recommendation) -> CheckOutcome {
    CheckOutcome { check: name.into(), strategy: "threshold".into(), recommendation, state: None, forecast: None }
}

/// A decision as the engine would record it, with the given checks and outcome.
pub fn decision(
    t: i64,
    current: u32,
    recommended: Option<u32>,
    checks: Vec<CheckOutcome>,
    guards: Vec<GuardEffect>,
    outcome: Outcome,
) -> Decision {
    let desired = match &outcome {
        Outcome::Scaled { to, .. } | Outcome::DryRun { to, .. } | Outcome::Failed { to, .. } => *to,
        _ => current,
    };
    let mut d = Decision {
        policy: "web".into(),
        at: at(t),
        current,
        ready: current,
        inputs: Vec::new(),
        checks,
        recommended,
        guards,
        desired,
        outcome,
        actuation: None,
        reason: String::new(),
    };
    d.summarize();
    d
}

/// A healthy tick that recommended `rec` and held at `current`.
pub fn hold(t: i64, current: u32, rec: u32) -> Decision {
    decision(t, current, Some(rec), vec![check("c", Recommendation::want(rec, "test"))], vec![], Outcome::Hold)
}

/// A healthy tick that recommended and scaled `from` → `to`.
pub fn scaled(t: i64, from: u32, to: u32) -> Decision {
    decision(
        t,
        from,
        Some(to),
        vec![check("c", Recommendation::want(to, "test"))],
        vec![],
        Outcome::Scaled { from, to },
    )
}

/// A tick in which every check failed (one check, no opinion, an error); the
/// on-error guard held the count.
pub fn all_failed(t: i64, current: u32) -> Decision {
    let effect = GuardEffect { guard: GuardKind::OnError, before: current, after: current, note: "test".into() };
    decision(t, current, Some(current), vec![check("c", Recommendation::failed("down"))], vec![effect], Outcome::Hold)
}

/// A tick in which one check failed while another still gave an opinion.
pub fn partly_failed(t: i64, current: u32) -> Decision {
    let checks = vec![check("a", Recommendation::failed("down")), check("b", Recommendation::want(current, "ok"))];
    let effect = GuardEffect { guard: GuardKind::OnError, before: current, after: current, note: "test".into() };
    decision(t, current, Some(current), checks, vec![effect], Outcome::Hold)
}

/// A history that has noted `decisions` (in order) and keeps an hour.
pub fn history(decisions: &[Decision]) -> PolicyHistory {
    let mut h = PolicyHistory::new(secs(3600));
    for d in decisions {
        h.note(d);
    }
    h
}
