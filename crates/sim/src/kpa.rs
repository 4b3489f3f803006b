//! Knative's Pod Autoscaler (KPA), from its documentation (knative.dev,
//! "Autoscaling > Configuring the autoscaler", "Scale bounds and rates",
//! and the autoscaler's design):
//!
//! - every 2 s it averages the observed load per pod over a 60 s stable
//!   window and a 6 s panic window (10 % of it);
//! - desired = ceil(observed total / (target per pod × target utilisation));
//! - panic mode starts when the panic-window desire reaches 200 % of the
//!   ready pods; in panic it uses the panic window and never scales down;
//!   it leaves panic after a full stable window without the condition;
//! - it scales up at most 1000× and down at most 2× the ready pods per decision.
//!
//! The metric is requests per second (KPA's `rps` metric; the target per pod
//! is the model's capacity) or concurrency (Knative's default metric: the
//! requests in flight, running or waiting, as for model servers), with
//! Knative's default target utilisation, 70 %.

use crate::run::{Autoscaler, View};
use std::collections::VecDeque;

/// What the KPA scales on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KpaMetric {
    /// Requests arriving per second.
    Rps,
    /// Requests in flight: running and waiting.
    Concurrency,
}

/// KPA's parameters, Knative's defaults unless said otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct KpaConfig {
    /// What it scales on.
    pub metric: KpaMetric,
    /// Load one pod is meant to take (requests/s, or requests in flight).
    pub target: f64,
    /// Share of `target` to aim for (default 0.7).
    pub utilisation: f64,
    /// Stable window, seconds (default 60).
    pub stable_window: f64,
    /// Panic window as a share of the stable window (default 0.1).
    pub panic_share: f64,
    /// Panic when the panic desire reaches this multiple of ready pods (default 2.0).
    pub panic_threshold: f64,
    /// Most growth per decision, as a multiple of ready pods (default 1000).
    pub max_scale_up_rate: f64,
    /// Most shrink per decision, as a divisor of ready pods (default 2).
    pub max_scale_down_rate: f64,
    /// Seconds between decisions (default 2).
    pub tick: f64,
    /// Bounds.
    pub min: u32,
    /// Bounds.
    pub max: u32,
}

impl KpaConfig {
    /// Knative's defaults with `target` requests/s per pod.
    pub fn defaults(target: f64) -> Self {
        KpaConfig {
            metric: KpaMetric::Rps,
            target,
            utilisation: 0.7,
            stable_window: 60.0,
            panic_share: 0.1,
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            tick: 2.0,
            min: 1,
            max: 10_000,
        }
    }
}

/// The KPA as an [`Autoscaler`].
pub struct Kpa {
    cfg: KpaConfig,
    samples: VecDeque<(f64, f64)>,
    panic_since: Option<f64>,
    last_panic_condition: f64,
    panic_peak: u32,
}

impl Kpa {
    /// A KPA with `cfg`.
    pub fn new(cfg: KpaConfig) -> Self {
        Kpa { cfg, samples: VecDeque::new(), panic_since: None, last_panic_condition: f64::NEG_INFINITY, panic_peak: 0 }
    }

    /// Whether it is in panic mode.
    pub fn panicking(&self) -> bool {
        self.panic_since.is_some()
    }

    fn average(&self, now: f64, window: f64) -> Option<f64> {
        let vals: Vec<f64> = self.samples.iter().filter(|(t, _)| *t > now - window).map(|(_, v)| *v).collect();
        (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
    }
}

impl Autoscaler for Kpa {
    fn name(&self) -> String {
        match self.cfg.metric {
            KpaMetric::Rps => "KPA".into(),
            KpaMetric::Concurrency => format!("KPA ({} concurrent/replica)", self.cfg.target),
        }
    }

    fn interval(&self) -> f64 {
        self.cfg.tick
    }

    fn decide(&mut self, view: &View) -> u32 {
        let c = &self.cfg;
        let now = view.now;
        if view.scraped {
            let load = match c.metric {
                KpaMetric::Rps => view.rps,
                KpaMetric::Concurrency => view.running + view.queue,
            };
            self.samples.push_back((now, load));
        }
        while self.samples.front().is_some_and(|(t, _)| *t <= now - c.stable_window) {
            self.samples.pop_front();
        }
        let per_pod = c.target * c.utilisation;
        let (Some(stable), Some(panic)) =
            (self.average(now, c.stable_window), self.average(now, c.stable_window * c.panic_share))
        else {
            return view.current.clamp(c.min, c.max);
        };
        let desired_stable = (stable / per_pod).ceil() as u32;
        let desired_panic = (panic / per_pod).ceil() as u32;
        let ready = view.ready.max(1) as f64;
        if desired_panic as f64 / ready >= c.panic_threshold {
            self.last_panic_condition = now;
            if self.panic_since.is_none() {
                self.panic_since = Some(now);
                self.panic_peak = view.current;
            }
        } else if self.panic_since.is_some() && now - self.last_panic_condition >= c.stable_window {
            self.panic_since = None;
            self.panic_peak = 0;
        }
        let mut desired = if self.panic_since.is_some() {
            // in panic: the panic window, and never down
            self.panic_peak = self.panic_peak.max(desired_panic).max(view.current);
            self.panic_peak
        } else {
            desired_stable
        };
        let up_limit = (c.max_scale_up_rate * ready).ceil() as u32;
        let down_limit = (ready / c.max_scale_down_rate).floor() as u32;
        desired = desired.min(up_limit).max(down_limit);
        desired.clamp(c.min, c.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(now: f64, current: u32, rps: f64) -> View {
        View { now, current, ready: current, rps, scraped: true, ..Default::default() }
    }

    #[test]
    fn on_concurrency_it_sizes_for_the_requests_in_flight() {
        let mut cfg = KpaConfig::defaults(16.0); // 11.2 in flight per pod
        cfg.metric = KpaMetric::Concurrency;
        let mut k = Kpa::new(cfg);
        let mut n = 4;
        for i in 0..30 {
            let v = View {
                now: i as f64 * 2.0,
                current: n,
                ready: n,
                rps: 1000.0,
                running: 40.0,
                queue: 10.0,
                scraped: true,
                ..Default::default()
            };
            n = k.decide(&v);
        }
        assert_eq!(n, 5, "ceil(50 / 11.2): the arrival rate plays no part");
        assert!(!k.panicking());
        assert_eq!(k.name(), "KPA (16 concurrent/replica)");
    }

    #[test]
    fn stable_mode_sizes_for_the_minute_average() {
        let mut k = Kpa::new(KpaConfig::defaults(10.0)); // 7 req/s per pod
        let mut n = 3;
        for i in 0..30 {
            n = k.decide(&view(i as f64 * 2.0, n, 21.0));
        }
        assert_eq!(n, 3); // 21 / 7
        assert!(!k.panicking());
    }

    #[test]
    fn a_burst_panics_and_panic_never_scales_down_until_a_calm_minute() {
        let mut k = Kpa::new(KpaConfig::defaults(10.0));
        let mut t = 0.0;
        let mut n = 2;
        for _ in 0..30 {
            n = k.decide(&view(t, n, 14.0));
            t += 2.0;
        }
        assert_eq!(n, 2);
        // 70 req/s: the 6 s window (14, 14, 70) averages 32.7, which wants ceil(32.7 / 7) = 5 pods,
        // 2.5× the 2 ready: panic, acted on at once (the minute average alone would want 3)
        n = k.decide(&view(t, n, 70.0));
        assert!(k.panicking());
        assert_eq!(n, 5);
        // the burst ends: in panic the count does not go down
        for _ in 0..20 {
            t += 2.0;
            n = k.decide(&view(t, n, 14.0));
            assert_eq!(n, 5, "t = {t}");
        }
        // a whole stable window after the last panic condition, back to stable mode, at most halving
        for _ in 0..15 {
            t += 2.0;
            n = k.decide(&view(t, n, 14.0));
        }
        assert!(!k.panicking());
        assert!((2..5).contains(&n), "{n}");
    }

    #[test]
    fn scale_down_is_at_most_halving_per_decision() {
        let mut k = Kpa::new(KpaConfig::defaults(10.0));
        // a long quiet spell after a big fleet
        let n = k.decide(&view(0.0, 40, 7.0));
        assert_eq!(n, 20);
    }
}
