//! Scores of one run.
//!
//! - cost: replica-hours paid for (ready, starting and draining replicas);
//! - SLO violations: the share of requests whose latency exceeds the SLO;
//! - the SPEC Research Group's elasticity metrics (Herbst et al., "Elasticity
//!   in Cloud Computing: What It Is, and What It Is Not", ICAC 2013; Herbst et
//!   al., "Ready for Rain? A View from SPEC Research on the Future of Cloud
//!   Metrics", SPEC RG tech. report 2016), with demand d(t) = the fewest
//!   replicas that keep every request within the SLO ([`crate::oracle::demand`])
//!   and supply s(t) = the replicas serving:
//!   θU = 100/T ∫ max(d − s, 0) / max(d, 1) dt, θO = 100/T ∫ max(s − d, 0) / max(d, 1) dt,
//!   τU = 100/T ∫ [s < d] dt, τO = 100/T ∫ [s > d] dt (all in %);
//! - scaling actions per hour and the peak replica count;
//! - the cold-start cost: requests that arrived while no replica served (after
//!   scaling to zero, or before the first one was ready) and the longest such
//!   wait, from the first of them to a replica serving.

use crate::service::Step;
use serde::Serialize;

/// Column headers of a score table, policy name first.
pub const COLUMNS: [&str; 12] = [
    "policy",
    "cost r·h",
    "×oracle",
    "SLO viol%",
    "θU%",
    "θO%",
    "τU%",
    "τO%",
    "actions/h",
    "peak",
    "cold req",
    "cold wait s",
];

/// The scores of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Replica-hours paid for.
    pub cost_replica_hours: f64,
    /// Cost divided by the oracle's (filled in by the comparison).
    pub cost_vs_oracle: Option<f64>,
    /// Percent of requests over the SLO latency.
    pub slo_violations_pct: f64,
    /// Under-provisioning accuracy θU, %.
    pub theta_u: f64,
    /// Over-provisioning accuracy θO, %.
    pub theta_o: f64,
    /// Time share under-provisioned τU, %.
    pub tau_u: f64,
    /// Time share over-provisioned τO, %.
    pub tau_o: f64,
    /// Scaling actions per hour.
    pub actions_per_hour: f64,
    /// Most replicas paid for at once.
    pub peak_replicas: u32,
    /// Requests that arrived while no replica served.
    pub cold_requests: f64,
    /// The longest wait for a first replica, seconds: from a request arriving
    /// with none serving to one serving.
    pub cold_wait_max: f64,
    /// Requests in the run.
    pub requests: f64,
    /// Simulated hours.
    pub hours: f64,
}

impl Scores {
    /// The scores formatted for a table, in [`COLUMNS`] order after the name.
    pub fn cells(&self) -> [String; 11] {
        [
            format!("{:.1}", self.cost_replica_hours),
            self.cost_vs_oracle.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into()),
            format!("{:.2}", self.slo_violations_pct),
            format!("{:.1}", self.theta_u),
            format!("{:.1}", self.theta_o),
            format!("{:.1}", self.tau_u),
            format!("{:.1}", self.tau_o),
            format!("{:.1}", self.actions_per_hour),
            self.peak_replicas.to_string(),
            format!("{:.0}", self.cold_requests),
            format!("{:.0}", self.cold_wait_max),
        ]
    }
}

/// The SPEC RG elasticity metrics (θU, θO, τU, τO), added up step by step
/// from demand and supply.
#[derive(Clone, Copy, Debug, Default)]
pub struct Elasticity {
    seconds: f64,
    under: f64,
    over: f64,
    time_under: f64,
    time_over: f64,
}

impl Elasticity {
    /// Counts `dt` seconds in which `demand` replicas were needed and `supply` served.
    pub fn add(&mut self, dt: f64, demand: u32, supply: u32) {
        self.seconds += dt;
        let (d, s) = (demand as f64, supply as f64);
        let norm = d.max(1.0);
        if s < d {
            self.under += (d - s) / norm * dt;
            self.time_under += dt;
        } else if s > d {
            self.over += (s - d) / norm * dt;
            self.time_over += dt;
        }
    }

    /// θU, θO, τU and τO, in %.
    pub fn finish(&self) -> [f64; 4] {
        let t = self.seconds.max(f64::MIN_POSITIVE);
        [self.under, self.over, self.time_under, self.time_over].map(|x| 100.0 * x / t)
    }
}

/// Adds up a run step by step.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    replica_seconds: f64,
    seconds: f64,
    requests: f64,
    violating: f64,
    elasticity: Elasticity,
    actions: u64,
    peak: u32,
    cold_requests: f64,
    /// Seconds into the run when requests started waiting with no replica serving.
    cold_since: Option<f64>,
    cold_wait_max: f64,
}

impl Tally {
    /// Counts one step of `dt` seconds in which `demand` replicas were needed.
    pub fn add(&mut self, dt: f64, step: &Step, demand: u32) {
        self.seconds += dt;
        self.replica_seconds += step.provisioned as f64 * dt;
        self.requests += step.arrived;
        self.violating += step.violating;
        self.peak = self.peak.max(step.provisioned);
        if step.serving == 0 {
            if step.arrived > 0.0 {
                self.cold_requests += step.arrived;
                self.cold_since.get_or_insert(self.seconds - dt);
            }
        } else if let Some(since) = self.cold_since.take() {
            // the first replica serves from the start of this step
            self.cold_wait_max = self.cold_wait_max.max(self.seconds - dt - since);
        }
        self.elasticity.add(dt, demand, step.serving);
    }

    /// Counts one scaling action.
    pub fn action(&mut self) {
        self.actions += 1;
    }

    /// The scores.
    pub fn finish(&self) -> Scores {
        let hours = self.seconds / 3600.0;
        let [theta_u, theta_o, tau_u, tau_o] = self.elasticity.finish();
        Scores {
            cost_replica_hours: self.replica_seconds / 3600.0,
            cost_vs_oracle: None,
            slo_violations_pct: if self.requests > 0.0 { 100.0 * self.violating / self.requests } else { 0.0 },
            theta_u,
            theta_o,
            tau_u,
            tau_o,
            actions_per_hour: if hours > 0.0 { self.actions as f64 / hours } else { 0.0 },
            peak_replicas: self.peak,
            cold_requests: self.cold_requests,
            // a wait still open at the end counts up to the end
            cold_wait_max: self.cold_since.map_or(self.cold_wait_max, |s| self.cold_wait_max.max(self.seconds - s)),
            requests: self.requests,
            hours,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(provisioned: u32, serving: u32, arrived: f64, violating: f64) -> Step {
        Step { arrived, violating, provisioned, serving, ..Default::default() }
    }

    /// A hand-computed toy run: four 15-minute steps (one hour).
    #[test]
    fn scores_on_a_toy_run() {
        let mut t = Tally::default();
        let q = 900.0;
        t.add(q, &step(2, 2, 100.0, 0.0), 2); // exact
        t.add(q, &step(3, 2, 300.0, 150.0), 4); // under by 2 of 4, half the requests late
        t.add(q, &step(4, 4, 100.0, 0.0), 2); // over by 2 of 2
        t.action();
        t.add(q, &step(1, 1, 0.0, 0.0), 0); // over by 1 of (max(0, 1) = 1)
        t.action();
        let s = t.finish();
        assert!((s.cost_replica_hours - 2.5).abs() < 1e-12); // (2 + 3 + 4 + 1) × 0.25 h
        assert!((s.slo_violations_pct - 30.0).abs() < 1e-12); // 150 of 500
        assert!((s.theta_u - 12.5).abs() < 1e-12); // (0.5 × 900) / 3600
        assert!((s.theta_o - 50.0).abs() < 1e-12); // (1 × 900 + 1 × 900) / 3600
        assert!((s.tau_u - 25.0).abs() < 1e-12);
        assert!((s.tau_o - 50.0).abs() < 1e-12);
        assert!((s.actions_per_hour - 2.0).abs() < 1e-12);
        assert_eq!(s.peak_replicas, 4);
        assert_eq!(s.hours, 1.0);
        assert_eq!((s.cold_requests, s.cold_wait_max), (0.0, 0.0));
    }

    /// Scaled to zero: requests arrive at 10 s and 11 s with nothing serving,
    /// a replica serves from 14 s; later a second cold stretch runs to the end.
    #[test]
    fn cold_starts_are_counted_and_timed() {
        let mut t = Tally::default();
        for i in 0..20 {
            let (serving, arrived) = match i {
                0..10 => (0, 0.0),
                10 | 11 => (0, 5.0),
                12 | 13 => (0, 0.0),
                14..17 => (1, 3.0),
                _ => (0, 1.0),
            };
            t.add(1.0, &step(serving, serving, arrived, 0.0), 1);
        }
        let s = t.finish();
        assert_eq!(s.cold_requests, 13.0); // 5 + 5, then 3 × 1
        assert_eq!(s.cold_wait_max, 4.0); // 10 s → 14 s (the open stretch at the end: 17 s → 20 s, 3 s)
    }
}
