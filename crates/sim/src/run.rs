//! One simulation: a rate series replayed second by second against the
//! simulated service, with an autoscaler deciding at its own interval from
//! the metrics a live source would give.

use crate::score::{Scores, Tally};
use crate::service::{Model, Service};
use serde::Serialize;
use std::collections::VecDeque;

/// What an autoscaler sees: the target's counts now, and the service's
/// metrics as a scrape would report them (possibly late and noisy). Rates
/// and CPU are what counters read at each decision give: the average since
/// the previous decision's scrape (a per-second reading of a bursty trace
/// would be noise no real source reports); the queue and latency are gauges,
/// read as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// Simulated Unix seconds.
    pub now: f64,
    /// Replicas asked for.
    pub current: u32,
    /// Replicas ready.
    pub ready: u32,
    /// `rps`: requests arriving per second.
    pub rps: f64,
    /// `served`: requests served per second.
    pub served: f64,
    /// `cpu`: busy share of the serving replicas, %.
    pub cpu: f64,
    /// `queue`: requests waiting.
    pub queue: f64,
    /// `latency_ms`: latency of a request arriving now, ms.
    pub latency_ms: f64,
    /// `running`: requests running on replicas (LLM model).
    pub running: f64,
    /// `kv_cache`: KV-cache use over ready replicas, 0 to 1 (LLM model).
    pub kv_cache: f64,
    /// `tokens_per_second`: tokens generated per second (LLM model).
    pub tokens_per_second: f64,
    /// False before the first scrape (the metrics are not known yet).
    pub scraped: bool,
}

/// Anything that decides a replica count: a Moontide policy or a baseline.
pub trait Autoscaler {
    /// Its name in tables and reports.
    fn name(&self) -> String;
    /// Seconds between decisions.
    fn interval(&self) -> f64;
    /// The count to run.
    fn decide(&mut self, view: &View) -> u32;
    /// What went wrong while it decided (checks that failed), to be shown
    /// beside its scores; `None` when nothing did.
    fn problems(&self) -> Option<String> {
        None
    }
}

/// How to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Simulated seconds per step (the model's resolution).
    pub dt: f64,
    /// Replicas at the start.
    pub initial: u32,
    /// Seconds by which the metrics lag behind the service.
    pub scrape_delay: f64,
    /// Relative standard deviation of multiplicative noise on the metrics.
    pub noise: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Most points kept for plots (the run is downsampled to fit).
    pub plot_points: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { dt: 1.0, initial: 1, scrape_delay: 0.0, noise: 0.0, seed: 1, plot_points: 2_000 }
    }
}

/// One plotted point (averages over the downsampling bucket).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Load, requests/s.
    pub rate: f64,
    /// Requests/s the serving replicas can handle.
    pub capacity: f64,
    /// Replicas paid for.
    pub replicas: f64,
    /// Replicas the load needed.
    pub demand: f64,
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// The autoscaler.
    pub name: String,
    /// Its scores.
    pub scores: Scores,
    /// Downsampled time series for plots.
    pub samples: Vec<Sample>,
    /// What went wrong while it decided ([`Autoscaler::problems`]).
    pub problems: Option<String>,
}

/// The load, second by second: `rates[i]` covers `[i·step, (i+1)·step)`;
/// `None` (a gap in the trace) counts as no load.
#[derive(Clone, Debug)]
pub struct Load<'a> {
    /// Requests per second per trace step.
    pub rates: &'a [Option<f64>],
    /// Seconds per trace step.
    pub step: f64,
    /// Unix seconds of the first step.
    pub start: f64,
}

impl Load<'_> {
    /// Seconds the load lasts.
    pub fn duration(&self) -> f64 {
        self.rates.len() as f64 * self.step
    }

    /// The rate at each step of `dt` seconds.
    pub fn steps(&self, dt: f64) -> Vec<f64> {
        let steps = (self.duration() / dt).round() as usize;
        (0..steps).map(|i| self.at(i as f64 * dt)).collect()
    }

    /// The rate at `t` seconds from the start.
    pub fn at(&self, t: f64) -> f64 {
        // t is a whole number of simulator steps: a quotient a hair under a whole trace
        // step (t = 3 × 1/3 s giving 0.999…) is that step, not the one before
        let i = (t / self.step + 1e-9).floor() as usize;
        self.rates.get(i).copied().flatten().unwrap_or(0.0)
    }
}

/// Running totals since the start, as counters a service exports.
#[derive(Clone, Debug, Default)]
struct Counters {
    seconds: f64,
    arrived: f64,
    served: f64,
    /// Requests the serving replicas could have served.
    capacity: f64,
}

impl Counters {
    /// Sets `view`'s rates and CPU to their averages since `before` (left
    /// as they are when no time has passed).
    fn rates_since(&self, before: &Counters, view: &mut View) {
        let span = self.seconds - before.seconds;
        if span <= 0.0 {
            return;
        }
        view.rps = (self.arrived - before.arrived) / span;
        view.served = (self.served - before.served) / span;
        let capacity = self.capacity - before.capacity;
        view.cpu = if capacity > 0.0 { (100.0 * (self.served - before.served) / capacity).min(100.0) } else { 0.0 };
    }
}

fn gaussian(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Replays `load` against a new service with `scaler` deciding.
pub fn run(load: &Load<'_>, model: &Model, scaler: &mut dyn Autoscaler, opts: &Options) -> Run {
    let dt = opts.dt;
    let steps = (load.duration() / dt).round() as usize;
    let mut demands = crate::oracle::Demand::new(model, dt);
    let mut service = Service::new(model.clone(), opts.initial);
    let mut tally = Tally::default();
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let every = scaler.interval().max(dt);
    let mut next_decision = 0.0;
    let delay_steps = (opts.scrape_delay / dt).round() as usize;
    let mut past: VecDeque<(View, Counters)> = VecDeque::with_capacity(delay_steps + 1);
    let mut totals = Counters::default();
    let mut last_scrape = Counters::default();
    let bucket = steps.div_ceil(opts.plot_points.max(1)).max(1);
    let mut samples = Vec::with_capacity(steps / bucket + 1);
    let mut acc = Sample::default();
    let mut in_bucket = 0usize;
    for i in 0..steps {
        let t = i as f64 * dt;
        if t >= next_decision {
            next_decision += every;
            // the metrics as scraped `scrape_delay` ago; the counts as they are now
            let (mut seen, counted) = past.front().cloned().unwrap_or_default();
            counted.rates_since(&last_scrape, &mut seen);
            last_scrape = counted;
            seen.now = load.start + t;
            seen.current = service.current();
            seen.ready = service.ready();
            if opts.noise > 0.0 {
                for m in [&mut seen.rps, &mut seen.served, &mut seen.cpu, &mut seen.queue, &mut seen.latency_ms] {
                    *m = (*m * (1.0 + opts.noise * gaussian(&mut rng))).max(0.0);
                }
            }
            let desired = scaler.decide(&seen);
            if desired != service.current() {
                service.scale(t, desired);
                tally.action();
            }
        }
        let rate = load.at(t);
        let step = service.step(t, dt, rate);
        let demand = demands.next(rate);
        tally.add(dt, &step, demand);
        totals.seconds += dt;
        totals.arrived += step.arrived;
        totals.served += step.served;
        totals.capacity += step.capacity * dt;
        let now_view = View {
            now: load.start + t + dt,
            current: service.current(),
            ready: service.ready(),
            rps: rate,
            served: step.served / dt,
            cpu: 100.0 * step.utilisation,
            queue: step.backlog,
            latency_ms: 1000.0 * step.latency.min(1e9),
            scraped: true,
            ..Default::default()
        };
        past.push_back((now_view, totals.clone()));
        if past.len() > delay_steps + 1 {
            past.pop_front();
        }
        acc.rate += rate;
        acc.capacity += step.capacity;
        acc.replicas += step.provisioned as f64;
        acc.demand += demand as f64;
        in_bucket += 1;
        if in_bucket == bucket || i + 1 == steps {
            let n = in_bucket as f64;
            samples.push(Sample {
                t: (i + 1 - in_bucket) as f64 * dt,
                rate: acc.rate / n,
                capacity: acc.capacity / n,
                replicas: acc.replicas / n,
                demand: acc.demand / n,
            });
            acc = Sample::default();
            in_bucket = 0;
        }
    }
    Run { name: scaler.name(), scores: tally.finish(), samples, problems: scaler.problems() }
}

#[cfg(test)]
mod tests {
    /// A trace replayed faster (a step of 1/3 s at `--speed 3`) in steps of
    /// the same length gives each value once, in order.
    #[test]
    fn every_trace_step_is_replayed_once_at_any_speed() {
        for speed in [3.0, 7.0, 10.0] {
            let rates: Vec<Option<f64>> = (0..600).map(|i| Some(i as f64)).collect();
            let load = super::Load { rates: &rates, step: 1.0 / speed, start: 0.0 };
            let steps = load.steps(1.0 / speed);
            let want: Vec<f64> = (0..600).map(|i| i as f64).collect();
            assert_eq!(steps, want, "speed {speed}");
        }
    }

    use super::*;

    /// Keeps every view it is shown and never changes the count.
    struct Watcher {
        every: f64,
        seen: Vec<View>,
    }

    impl Autoscaler for Watcher {
        fn name(&self) -> String {
            "watcher".into()
        }
        fn interval(&self) -> f64 {
            self.every
        }
        fn decide(&mut self, view: &View) -> u32 {
            self.seen.push(view.clone());
            view.current
        }
    }

    #[test]
    fn rates_and_cpu_are_averaged_since_the_last_decision_and_gauges_read_as_they_are() {
        // 0 and 30 req/s in turn, one second each, on one replica serving 20 req/s:
        // each odd second queues 10 that the next one works off
        let rates: Vec<Option<f64>> = (0..60).map(|i| Some(if i % 2 == 1 { 30.0 } else { 0.0 })).collect();
        let load = Load { rates: &rates, step: 1.0, start: 0.0 };
        let model = Model { capacity: 20.0, startup: 0.0, drain: 0.0, service_time: 0.1, slo: 2.0 };
        let mut w = Watcher { every: 10.0, seen: Vec::new() };
        run(&load, &model, &mut w, &Options::default());
        assert_eq!(w.seen.len(), 6);
        assert!(!w.seen[0].scraped, "nothing is known before the first scrape");
        // the first ten seconds: 150 arrived, 140 served (10 still queued) of 200 possible
        assert!((w.seen[1].served - 14.0).abs() < 1e-9 && (w.seen[1].cpu - 70.0).abs() < 1e-9);
        for v in &w.seen[1..] {
            // a per-second reading would be 30 (each tick follows a busy second)
            assert!((v.rps - 15.0).abs() < 1e-9, "rps {} at {}", v.rps, v.now);
            // the gauge: the queue the last (busy) second left
            assert_eq!(v.queue, 10.0);
        }
        for v in &w.seen[2..] {
            // later windows also serve the 10 left over from the one before
            assert!((v.served - 15.0).abs() < 1e-9, "served {}", v.served);
            assert!((v.cpu - 75.0).abs() < 1e-9, "cpu {}", v.cpu);
        }
        // a decision every second sees each second's own rate
        let mut w = Watcher { every: 1.0, seen: Vec::new() };
        run(&load, &model, &mut w, &Options::default());
        let rps: Vec<f64> = w.seen[1..5].iter().map(|v| v.rps).collect();
        assert_eq!(rps, [0.0, 30.0, 0.0, 30.0]);
        assert_eq!(w.seen[2].queue, 10.0);
    }
}
