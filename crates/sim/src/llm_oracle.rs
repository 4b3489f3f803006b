//! The LLM oracle: hindsight for an LLM fleet.
//!
//! It knows every request to come. For each minute it computes the work the
//! requests arriving in it bring, in replicas: prefill seconds
//! (`input ÷ prefill_tps`) plus decode seconds (`output ÷ decode_tps`) per
//! second of the minute, or, if more, the KV cache they hold while they
//! decode (`(input + output) × output × itl` token-seconds per second, over
//! `kv_tokens`). Its plan for minute `m` is `ceil(k × the largest need of
//! minutes m to m + startup)`, so replicas are started the startup delay
//! ahead and removed as soon as they are not needed. The factor `k` is the
//! smallest (by bisection, to 1 %) whose plan keeps violations under
//! [`TOLERANCE`] % in the model: the cheapest plan in this family that
//! meets the objectives, against which policies' costs are compared.

use crate::llm::LlmModel;
use crate::llm_run::{LlmScores, run_llm};
use crate::run::{Autoscaler, View};
use crate::trace::RequestTrace;

/// The violations (%) the oracle's plan may have.
pub const TOLERANCE: f64 = 1.0;

/// Each minute's need, in replicas (fractional).
pub fn needs(trace: &RequestTrace, model: &LlmModel) -> Vec<f64> {
    let minutes = trace.requests.last().map_or(0, |r| (r.at / 60.0) as usize + 1);
    let mut work = vec![0.0; minutes];
    let mut kv = vec![0.0; minutes];
    for r in &trace.requests {
        let m = (r.at / 60.0) as usize;
        let (input, output) = (r.input.unwrap_or(0) as f64, r.output.unwrap_or(1) as f64);
        work[m] += input / model.prefill_tps + output / model.decode_tps;
        kv[m] += (input + output) * output * model.itl;
    }
    work.iter().zip(&kv).map(|(w, k)| (w / 60.0).max(k / 60.0 / model.kv_tokens as f64)).collect()
}

/// A plan: the count for each minute from its start.
#[derive(Clone, Debug)]
pub struct Plan {
    counts: Vec<u32>,
    demand: Vec<u32>,
    start: f64,
}

impl Plan {
    /// `ceil(k × the largest need over the next startup)` for each minute.
    pub fn new(needs: &[f64], k: f64, startup: f64, start: f64) -> Plan {
        let ahead = (startup / 60.0).ceil() as usize;
        let demand: Vec<u32> = needs.iter().map(|n| (k * n - 1e-9).ceil().max(0.0) as u32).collect();
        let counts = (0..demand.len())
            .map(|m| demand[m..(m + ahead + 1).min(demand.len())].iter().copied().max().unwrap_or(0))
            .collect();
        Plan { counts, demand, start }
    }

    /// The replicas each minute needs, `ceil(k × its need)`: the demand the
    /// elasticity metrics compare a run's ready count with (the plan is its
    /// maximum over the next startup delay, since it starts replicas that far ahead).
    pub fn demand(&self) -> &[u32] {
        &self.demand
    }

    /// The count at minute `m` (the last one after the end).
    pub fn at(&self, m: usize) -> u32 {
        self.counts.get(m).or(self.counts.last()).copied().unwrap_or(0)
    }
}

impl Autoscaler for Plan {
    fn name(&self) -> String {
        "oracle".into()
    }
    fn interval(&self) -> f64 {
        60.0
    }
    fn decide(&mut self, view: &View) -> u32 {
        self.at(((view.now - self.start).max(0.0) / 60.0) as usize)
    }
}

/// The oracle's plan and its scores: the smallest `k` in [1/4, 16] whose
/// plan stays under [`TOLERANCE`] % violations (16 if none does).
pub fn oracle(trace: &RequestTrace, model: &LlmModel, dt: f64, tail: f64) -> (Plan, LlmScores) {
    let needs = needs(trace, model);
    let run = |k: f64| {
        let mut plan = Plan::new(&needs, k, model.startup, trace.start);
        let initial = plan.at(0);
        let scores = run_llm(trace, model, &mut plan, initial, dt, tail, &[]);
        (plan, scores)
    };
    let (mut lo, mut hi) = (0.25_f64, 16.0_f64);
    let mut best = hi;
    while hi / lo > 1.01 {
        let mid = (lo * hi).sqrt();
        if run(mid).1.slo_violations_pct < TOLERANCE {
            hi = mid;
            best = mid;
        } else {
            lo = mid;
        }
    }
    // run again with its own demand, for the elasticity metrics
    let mut plan = Plan::new(&needs, best, model.startup, trace.start);
    let initial = plan.at(0);
    let demand = plan.demand().to_vec();
    let scores = run_llm(trace, model, &mut plan, initial, dt, tail, &demand);
    (plan, scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Request;

    fn model() -> LlmModel {
        LlmModel {
            prefill_tps: 1000.0,
            decode_tps: 100.0,
            itl: 0.02,
            kv_tokens: 10_000,
            startup: 120.0,
            ttft_slo: 2.0,
            itl_slo: 0.1,
        }
    }

    #[test]
    fn needs_are_the_work_or_the_kv_cache_of_each_minute() {
        // minute 0: 60 requests of 1000 in / 100 out: (1 + 1) s of work each → 2 replicas;
        //   KV: 1100 × 100 × 0.02 = 2200 token-seconds each → 60 × 2200 / 60 / 10000 = 0.22
        // minute 1: nothing; minute 2: 6 requests of 100 in / 1000 out: 10.1 s each → 1.01;
        //   KV: 1100 × 1000 × 0.02 = 22000 each → 6 × 22000 / 60 / 10000 = 0.22
        let mut requests: Vec<Request> =
            (0..60).map(|i| Request { at: i as f64, input: Some(1000), output: Some(100) }).collect();
        requests.extend((0..6).map(|i| Request { at: 120.0 + i as f64, input: Some(100), output: Some(1000) }));
        let t = RequestTrace { start: 0.0, requests };
        let n = needs(&t, &model());
        assert_eq!(n.len(), 3);
        assert!((n[0] - 2.0).abs() < 1e-9 && n[1] == 0.0 && (n[2] - 1.01).abs() < 1e-9, "{n:?}");
        // a KV-heavy minute: 10 requests of 5000 in / 5000 out hold 10 × 10000 × 5000 × 0.02 / 60 / 10000
        // = 16.7 replicas of KV cache, more than their 10 × (5 + 50) / 60 = 9.2 of work
        let heavy = RequestTrace {
            start: 0.0,
            requests: (0..10).map(|i| Request { at: i as f64, input: Some(5000), output: Some(5000) }).collect(),
        };
        assert!((needs(&heavy, &model())[0] - 50.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_plan_starts_replicas_the_startup_ahead() {
        // needs 1, 1, 1, 5, 1, 1 with a 2-minute startup: the 5 is planned from minute 1
        let p = Plan::new(&[1.0, 1.0, 1.0, 5.0, 1.0, 1.0], 1.0, 120.0, 0.0);
        assert_eq!((0..7).map(|m| p.at(m)).collect::<Vec<_>>(), [1, 5, 5, 5, 1, 1, 1]);
        let doubled = Plan::new(&[1.0, 0.4], 2.0, 0.0, 0.0);
        assert_eq!((doubled.at(0), doubled.at(1)), (2, 1));
    }

    #[test]
    fn the_oracle_meets_the_objectives_for_less_than_a_fleet_sized_for_the_peak() {
        // a quiet half hour, then a busy ten minutes: 1 request/s of 2000 in / 200 out
        let mut requests: Vec<Request> =
            (0..180).map(|i| Request { at: i as f64 * 10.0, input: Some(500), output: Some(50) }).collect();
        requests.extend((0..600).map(|i| Request { at: 1800.0 + i as f64, input: Some(2000), output: Some(200) }));
        requests.sort_by(|a, b| a.at.total_cmp(&b.at));
        let t = RequestTrace { start: 0.0, requests };
        let (plan, scores) = oracle(&t, &model(), 0.05, 600.0);
        assert!(scores.slo_violations_pct < TOLERANCE, "{scores:?}");
        let peak = plan.counts.iter().copied().max().unwrap();
        let quiet = plan.at(5);
        assert!(quiet < peak, "it scales down when quiet: {quiet} vs {peak}");
        assert!(scores.cost_replica_hours < peak as f64 * 2400.0 / 3600.0, "{scores:?}");
    }
}
