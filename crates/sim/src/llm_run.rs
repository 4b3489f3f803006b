//! One simulation of an LLM fleet: a per-request trace (arrival time,
//! prompt and output tokens) replayed against [`LlmService`], with an
//! autoscaler deciding at its interval from what a scrape of the model
//! servers and the gateway would show.

use crate::llm::{LlmModel, LlmService};
use crate::run::{Autoscaler, View};
use crate::score::Elasticity;
use crate::trace::RequestTrace;
use serde::Serialize;

/// The scores of one LLM run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LlmScores {
    /// Requests that finished.
    pub requests: usize,
    /// Requests still queued or running when the run ended.
    pub unfinished: usize,
    /// Percent of requests over the TTFT or ITL objective (unfinished ones count as over).
    pub slo_violations_pct: f64,
    /// Median time to first token, seconds.
    pub ttft_p50: f64,
    /// 95th percentile time to first token, seconds.
    pub ttft_p95: f64,
    /// 95th percentile of the requests' mean inter-token latency, seconds.
    pub itl_p95: f64,
    /// Under-provisioning accuracy θU, % (ready replicas against the
    /// demand given to [`run_llm`]; see [`crate::score`]).
    pub theta_u: f64,
    /// Over-provisioning accuracy θO, %.
    pub theta_o: f64,
    /// Time share under-provisioned τU, %.
    pub tau_u: f64,
    /// Time share over-provisioned τO, %.
    pub tau_o: f64,
    /// Replica-hours paid for (starting replicas included).
    pub cost_replica_hours: f64,
    /// Requests that arrived while no replica was ready (finished or not).
    pub cold_requests: usize,
    /// The longest first-token wait of those, seconds (the cost of scaling
    /// from zero); one still waiting when the run ends counts up to the end.
    pub cold_wait_max: f64,
    /// Scaling actions per hour.
    pub actions_per_hour: f64,
    /// Most replicas at once.
    pub peak: u32,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Replays `trace` against an LLM fleet of `initial` replicas with `scaler`
/// deciding, in steps of `dt` seconds, and for up to `tail` seconds after the
/// last arrival so that the requests in flight can finish. `demand` is the
/// replicas each minute of the trace needs (the oracle's
/// [`crate::llm_oracle::Plan::demand`]); the elasticity metrics compare the
/// ready count with it over those minutes (empty: they stay 0).
pub fn run_llm(
    trace: &RequestTrace,
    model: &LlmModel,
    scaler: &mut dyn Autoscaler,
    initial: u32,
    dt: f64,
    tail: f64,
    demand: &[u32],
) -> LlmScores {
    let mut service = LlmService::new(model.clone(), initial);
    let end = trace.requests.last().map_or(0.0, |r| r.at) + tail;
    let every = scaler.interval().max(dt);
    let (mut next_decision, mut next_request) = (0.0, 0usize);
    let (mut cost_s, mut actions, mut peak, mut current) = (0.0, 0u32, initial, initial);
    let (mut arrived_since, mut done_seen) = (0usize, 0usize);
    let mut last = crate::llm::LlmStep { ready: initial, provisioned: initial, ..Default::default() };
    let mut elasticity = Elasticity::default();
    let mut t = 0.0;
    while t < end {
        if t >= next_decision {
            let finished = service.done().len();
            let view = View {
                now: trace.start + t,
                current,
                ready: last.ready,
                rps: arrived_since as f64 / every,
                served: (finished - done_seen) as f64 / every,
                cpu: 100.0 * last.kv_cache,
                queue: last.queue_depth as f64,
                latency_ms: 0.0,
                running: last.running as f64,
                kv_cache: last.kv_cache,
                tokens_per_second: last.tokens_per_second,
                scraped: t > 0.0,
            };
            next_decision += every;
            arrived_since = 0;
            done_seen = finished;
            let desired = scaler.decide(&view);
            if desired != current {
                service.scale(desired);
                current = desired;
                actions += 1;
                peak = peak.max(desired);
            }
        }
        while let Some(r) = trace.requests.get(next_request).filter(|r| r.at < t + dt) {
            service.arrive(r.input.unwrap_or(0), r.output.unwrap_or(1));
            next_request += 1;
            arrived_since += 1;
        }
        last = service.advance(dt);
        cost_s += last.provisioned as f64 * dt;
        if let Some(&d) = demand.get((t / 60.0) as usize) {
            elasticity.add(dt, d, last.ready);
        }
        t += dt;
    }
    let done = service.done();
    let total = trace.requests.len().max(1);
    let unfinished = trace.requests.len() - done.len();
    let violated = done.iter().filter(|d| d.violated).count() + unfinished;
    let mut ttft: Vec<f64> = done.iter().map(|d| d.ttft).collect();
    let mut itl: Vec<f64> = done.iter().map(|d| d.itl).collect();
    let cold: Vec<f64> = done.iter().filter(|d| d.cold).map(|d| d.ttft).collect();
    let (cold_left, cold_waiting) = service.cold_unfinished();
    let [theta_u, theta_o, tau_u, tau_o] = elasticity.finish();
    LlmScores {
        requests: done.len(),
        unfinished,
        slo_violations_pct: 100.0 * violated as f64 / total as f64,
        ttft_p50: percentile(&mut ttft, 0.5),
        ttft_p95: percentile(&mut ttft, 0.95),
        itl_p95: percentile(&mut itl, 0.95),
        theta_u,
        theta_o,
        tau_u,
        tau_o,
        cost_replica_hours: cost_s / 3600.0,
        cold_requests: cold.len() + cold_left,
        cold_wait_max: cold.iter().copied().fold(cold_waiting, f64::max),
        actions_per_hour: actions as f64 / (end / 3600.0).max(1e-9),
        peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Request;

    struct Fixed(u32);
    impl Autoscaler for Fixed {
        fn name(&self) -> String {
            "fixed".into()
        }
        fn interval(&self) -> f64 {
            10.0
        }
        fn decide(&mut self, _: &View) -> u32 {
            self.0
        }
    }

    /// Wakes on the first request in its view: 0 → 1.
    struct FromZero;
    impl Autoscaler for FromZero {
        fn name(&self) -> String {
            "from zero".into()
        }
        fn interval(&self) -> f64 {
            10.0
        }
        fn decide(&mut self, v: &View) -> u32 {
            if v.queue > 0.0 || v.running > 0.0 || v.current > 0 { 1 } else { 0 }
        }
    }

    fn model() -> LlmModel {
        LlmModel {
            prefill_tps: 10_000.0,
            decode_tps: 1_000.0,
            itl: 0.02,
            kv_tokens: 100_000,
            startup: 180.0,
            ttft_slo: 2.0,
            itl_slo: 0.05,
        }
    }

    fn trace(times: &[f64]) -> RequestTrace {
        RequestTrace {
            start: 0.0,
            requests: times.iter().map(|&at| Request { at, input: Some(1000), output: Some(11) }).collect(),
        }
    }

    #[test]
    fn a_fixed_fleet_costs_its_size_and_meets_the_objectives() {
        let t = trace(&[0.0, 30.0, 60.0]);
        let s = run_llm(&t, &model(), &mut Fixed(2), 2, 0.01, 60.0, &[]);
        assert_eq!((s.requests, s.unfinished, s.cold_requests), (3, 0, 0));
        assert_eq!(s.slo_violations_pct, 0.0);
        assert!((s.ttft_p50 - 0.1).abs() < 0.011, "{s:?}");
        // 2 replicas for 120 s
        assert!((s.cost_replica_hours - 2.0 * 120.0 / 3600.0).abs() < 1e-3, "{s:?}");
        assert_eq!(s.actions_per_hour, 0.0);
    }

    #[test]
    fn elasticity_compares_the_ready_count_with_each_minutes_demand() {
        // 2 replicas all along; minute 0 needs 1 (over by 1 of 1), minute 1 needs 3 (under by 1 of 3);
        // the minutes after the demand's end do not count
        let t = trace(&[5.0, 100.0]);
        let s = run_llm(&t, &model(), &mut Fixed(2), 2, 0.01, 60.0, &[1, 3]);
        let close = |a: f64, b: f64| (a - b).abs() < 0.05;
        assert!(close(s.theta_o, 50.0), "θO = 100 × (1 × 60 s) / 120 s: {s:?}");
        assert!(close(s.theta_u, 100.0 / 6.0), "θU = 100 × (1/3 × 60 s) / 120 s: {s:?}");
        assert!(close(s.tau_o, 50.0) && close(s.tau_u, 50.0), "{s:?}");
        // without a demand they are not measured
        let s = run_llm(&t, &model(), &mut Fixed(2), 2, 0.01, 60.0, &[]);
        assert_eq!((s.theta_u, s.theta_o, s.tau_u, s.tau_o), (0.0, 0.0, 0.0, 0.0));
    }

    #[test]
    fn a_fleet_that_never_wakes_counts_its_cold_requests_to_the_end() {
        // nothing ever serves the request at t = 5 s: it waits until the run ends at 5 + 60 s
        let t = trace(&[5.0]);
        let s = run_llm(&t, &model(), &mut Fixed(0), 0, 0.01, 60.0, &[]);
        assert_eq!((s.requests, s.unfinished, s.cold_requests), (0, 1, 1));
        assert!((s.cold_wait_max - 60.0).abs() < 0.05, "{s:?}");
        assert_eq!(s.slo_violations_pct, 100.0);
    }

    #[test]
    fn scaling_from_zero_reports_the_first_requests_wait() {
        // the request at t = 5 s is seen at the decision at t = 10 s; the replica is ready at 190 s
        let t = trace(&[5.0]);
        let s = run_llm(&t, &model(), &mut FromZero, 0, 0.01, 300.0, &[]);
        assert_eq!((s.requests, s.cold_requests), (1, 1));
        assert!((s.cold_wait_max - (190.0 - 5.0 + 0.1)).abs() < 0.05, "{s:?}");
        assert_eq!(s.slo_violations_pct, 100.0, "a 3-minute cold start breaks a 2 s TTFT objective");
        assert_eq!(s.peak, 1);
    }
}
