//! One simulation: a rate series replayed second by second against the
//! simulated service, with an autoscaler deciding at its own interval from
//! the metrics a live source would give.

use crate::score::{Scores, Tally};
use crate::service::{Model, Service};
use serde::Serialize;
use std::collections::VecDeque;

/// What an autoscaler sees: the target's counts now, and the service's
/// metrics as a scrape would report them (possibly late and noisy).
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
        let i = (t / self.step) as usize;
        self.rates.get(i).copied().flatten().unwrap_or(0.0)
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
    let mut past: VecDeque<View> = VecDeque::with_capacity(delay_steps + 1);
    let bucket = steps.div_ceil(opts.plot_points.max(1)).max(1);
    let mut samples = Vec::with_capacity(steps / bucket + 1);
    let mut acc = Sample::default();
    let mut in_bucket = 0usize;
    for i in 0..steps {
        let t = i as f64 * dt;
        if t >= next_decision {
            next_decision += every;
            // the metrics as scraped `scrape_delay` ago; the counts as they are now
            let mut seen = past.front().cloned().unwrap_or_default();
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
        past.push_back(View {
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
        });
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
    Run { name: scaler.name(), scores: tally.finish(), samples }
}
