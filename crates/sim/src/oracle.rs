//! The oracle: perfect foresight. At every instant it has exactly the
//! replicas the load needs ([`demand`]: the fewest that keep every request
//! within the SLO), having started each one the startup delay ahead, so it
//! pays for replicas while they start. Its count at step i is the largest
//! need over the next `startup` seconds (a sliding-window maximum).

use crate::service::Model;
use std::collections::VecDeque;

/// The demand at each step of `dt` seconds: the fewest ready replicas that
/// keep the latency of every request within the SLO, letting requests queue
/// as long as they still finish in time. Worked forward: with `b` requests
/// queued and `a` arriving in the step, `n` replicas leave
/// `b + a − n·capacity·dt` queued, whose wait must stay within
/// `slack = slo − service_time`, so `n = ⌈(b + a) / (capacity · (dt + slack))⌉`.
/// With no slack it is [`Model::needed`] (no queue at all).
pub fn demand(model: &Model, rates: &[f64], dt: f64) -> Vec<u32> {
    let mut d = Demand::new(model, dt);
    rates.iter().map(|&r| d.next(r)).collect()
}

/// [`demand`] step by step, for runs too long to keep it in memory.
#[derive(Clone, Debug)]
pub struct Demand {
    per_replica_step: f64,
    per_replica_in_time: f64,
    dt: f64,
    backlog: f64,
}

impl Demand {
    /// Starts with no queue, at steps of `dt` seconds.
    pub fn new(model: &Model, dt: f64) -> Self {
        let slack = (model.slo - model.service_time).max(0.0);
        Demand {
            per_replica_step: model.capacity * dt,
            per_replica_in_time: model.capacity * (dt + slack),
            dt,
            backlog: 0.0,
        }
    }

    /// The demand of the next step, with `rate` requests/s arriving.
    pub fn next(&mut self, rate: f64) -> u32 {
        let work = self.backlog + rate.max(0.0) * self.dt;
        let n = if work <= 1e-9 { 0 } else { (work / self.per_replica_in_time - 1e-9).ceil().max(1.0) as u32 };
        self.backlog = (work - n as f64 * self.per_replica_step).max(0.0);
        n
    }
}

/// The oracle's count at each step of `dt` seconds, for the given rates.
pub fn plan(model: &Model, rates: &[f64], dt: f64) -> Vec<u32> {
    let need = demand(model, rates, dt);
    let ahead = (model.startup / dt).ceil() as usize;
    let mut out = Vec::with_capacity(need.len());
    // indices of a decreasing run of needs over [i, i + ahead]
    let mut window: VecDeque<usize> = VecDeque::new();
    let mut next = 0;
    for i in 0..need.len() {
        while next < need.len() && next <= i + ahead {
            while window.back().is_some_and(|&j| need[j] <= need[next]) {
                window.pop_back();
            }
            window.push_back(next);
            next += 1;
        }
        while window.front().is_some_and(|&j| j < i) {
            window.pop_front();
        }
        out.push(window.front().map(|&j| need[j]).unwrap_or(0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_lets_requests_queue_within_the_slo() {
        // 10 req/s per replica, 1 s steps, 2 s of slack (SLO 2.5 s, service 0.5 s)
        let m = Model { capacity: 10.0, startup: 0.0, drain: 0.0, service_time: 0.5, slo: 2.5 };
        // 25 arrive: ⌈25 / (10 × 3)⌉ = 1 replica serves 10, leaves 15 (a 1.5 s wait: in time);
        // 25 more: ⌈40 / 30⌉ = 2 serve 20, leave 20 (1 s); then 0: ⌈20 / 30⌉ = 1 serves 10, leaves 10;
        // then 0: ⌈10 / 30⌉ = 1 serves the last 10; then nothing is left: 0
        assert_eq!(demand(&m, &[25.0, 25.0, 0.0, 0.0, 0.0], 1.0), [1, 2, 1, 1, 0]);
        // with no slack it is the no-queue need
        let tight = Model { slo: 0.5, ..m.clone() };
        let rates = [25.0, 25.0, 0.0, 7.0];
        let needed: Vec<u32> = rates.iter().map(|&r| tight.needed(r)).collect();
        assert_eq!(demand(&tight, &rates, 1.0), needed);
    }

    #[test]
    fn starts_replicas_the_startup_delay_ahead() {
        // no slack: the demand is the no-queue need
        let m = Model { capacity: 10.0, startup: 20.0, drain: 0.0, service_time: 0.5, slo: 0.5 };
        let rates = [5.0, 5.0, 5.0, 35.0, 35.0, 5.0, 5.0, 5.0];
        // needs: 1 1 1 4 4 1 1 1; 20 s ahead at 10 s steps = 2 steps
        assert_eq!(plan(&m, &rates, 10.0), [1, 4, 4, 4, 4, 1, 1, 1]);
        let m0 = Model { startup: 0.0, ..m };
        assert_eq!(plan(&m0, &rates, 10.0), [1, 1, 1, 4, 4, 1, 1, 1]);
    }
}
