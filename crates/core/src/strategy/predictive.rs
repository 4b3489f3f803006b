//! `predictive`: provision now for the load forecast at now + lead time.
//!
//! The check keeps its own history of one metric (the fleet's total, like
//! requests/s), one mean per `step`, and forecasts it with the model that
//! backtests best on recent history ([`crate::forecast`]). It asks for
//! `ceil((forecast + headroom × band) / target)` replicas, where the lead
//! time is the target's measured time-to-ready (the median of the last
//! scale-ups seen: from the count going up to the ready count reaching it),
//! or `lead` until one is measured.
//!
//! It never scales in on a forecast alone: a predictive check only ever
//! holds a floor under what the other checks ask for (see
//! [`crate::policy::conclude`]). With `forecast_only` it records what it
//! would ask for and asks for nothing.
//!
//! Lua checks of the same policy read every predictive check's forecast of
//! the tick as `ctx.forecasts.NAME` (NAME: the check's name); a check with
//! `forecast_only` and no `target` is a forecaster for them, sized by the
//! script (which may measure what a replica handles instead of being told).
//!
//! Its memory (the history and the lead-time samples) is kept by the caller
//! across ticks and restarts: see [`PredictiveMemory`].

use super::{Recommendation, num};
use crate::duration::{format as fmt_d, serde_text, serde_text_opt};
use crate::forecast::{Forecast, forecast, rerun};
use crate::observation::Observation;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

fn default_step() -> Duration {
    Duration::from_secs(300)
}

fn default_seasons() -> Vec<String> {
    vec!["1d".into(), "1w".into()]
}

fn default_lead() -> Duration {
    Duration::from_secs(120)
}

fn default_headroom() -> f64 {
    0.5
}

/// Parameters of the `predictive` strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predictive {
    /// The metric forecast: the fleet's total (requests/s, queue length, tokens/s).
    pub metric: String,
    /// What one replica handles of it (may be left out with `forecast_only`).
    #[serde(default)]
    pub target: Option<f64>,
    /// How a step's readings are summed up: `mean` (default) or `max` (the
    /// step's highest reading: for spiky load, where what matters is the
    /// spikes a step holds, not its average).
    #[serde(default)]
    pub per_step: PerStep,
    /// History resolution (default 5m).
    #[serde(default = "default_step", with = "serde_text")]
    pub step: Duration,
    /// Seasonal periods tried (default one day and one week).
    #[serde(default = "default_seasons")]
    pub seasons: Vec<String>,
    /// How much history to keep (default: twice the longest season plus a day).
    #[serde(default, with = "serde_text_opt")]
    pub history: Option<Duration>,
    /// Lead time until the target's time-to-ready is measured (default 2m).
    #[serde(default = "default_lead", with = "serde_text")]
    pub lead: Duration,
    /// How much of the error band to add to the forecast (default 0.5).
    #[serde(default = "default_headroom")]
    pub headroom: f64,
    /// Record what it would ask for; ask for nothing.
    #[serde(default)]
    pub forecast_only: bool,
}

/// The fewest closed steps a forecast is made from.
const MIN_STEPS: usize = 8;

impl Predictive {
    fn season_steps(&self) -> Vec<usize> {
        let step = self.step.as_secs_f64().max(1.0);
        self.seasons
            .iter()
            .filter_map(|s| crate::duration::parse(s).ok())
            .map(|d| (d.as_secs_f64() / step).round() as usize)
            .collect()
    }

    /// How many steps of history are kept.
    pub fn capacity(&self) -> usize {
        let longest = self.seasons.iter().filter_map(|s| crate::duration::parse(s).ok()).max().unwrap_or_default();
        let keep = self.history.unwrap_or(longest * 2 + Duration::from_secs(86_400));
        (keep.as_secs_f64() / self.step.as_secs_f64().max(1.0)).ceil() as usize
    }

    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match self.target {
            Some(t) if !(t.is_finite() && t > 0.0) => {
                errs.push("`target` must be a positive number (what one replica handles)".into())
            }
            None if !self.forecast_only => errs.push(
                "give `target` (what one replica handles), or set `forecast_only = true` to only forecast \
                 (Lua checks read it as ctx.forecasts.NAME)"
                    .into(),
            ),
            _ => {}
        }
        if self.step < Duration::from_secs(1) {
            errs.push("`step` must be at least 1s".into());
        }
        for s in &self.seasons {
            match crate::duration::parse(s) {
                Ok(d) if d < self.step * 2 => {
                    errs.push(format!("`seasons`: `{s}` must be at least two steps ({})", fmt_d(self.step * 2)))
                }
                // a season between whole steps would drift against the clock, a step a season
                Ok(d) if !self.step.is_zero() && d.as_millis() % self.step.as_millis() != 0 => {
                    errs.push(format!("`seasons`: `{s}` is not a whole number of steps of {}", fmt_d(self.step)))
                }
                Ok(_) => {}
                Err(e) => errs.push(format!("`seasons`: {e}")),
            }
        }
        if let Some(h) = self.history {
            for s in &self.seasons {
                if let Ok(d) = crate::duration::parse(s)
                    && h < d * 2
                {
                    errs.push(format!(
                        "`history` of {} is shorter than two `{s}` seasons ({}): the models of that season could never run",
                        fmt_d(h),
                        fmt_d(d * 2)
                    ));
                }
            }
        }
        if self.lead.is_zero() {
            errs.push("`lead` must be longer than 0s".into());
        }
        if !(self.headroom.is_finite() && (0.0..=5.0).contains(&self.headroom)) {
            errs.push(format!("`headroom` must be between 0 and 5, got {}", self.headroom));
        }
        if self.capacity() < MIN_STEPS {
            errs.push(format!(
                "`history` holds {} steps of {}: a forecast needs at least {MIN_STEPS}; give a longer `history` or a shorter `step`",
                self.capacity(),
                fmt_d(self.step)
            ));
        }
        if self.capacity() > 200_000 {
            errs.push(format!("`history` of {} steps is too long: use a longer `step`", self.capacity()));
        }
        errs
    }

    /// Takes this tick into the memory, then recommends.
    pub fn decide(
        &self,
        obs: &Observation<'_>,
        memory: &mut PredictiveMemory,
    ) -> (Recommendation, Option<ForecastRecord>) {
        memory.observe(self, obs);
        let lead = memory.lead_time().unwrap_or(self.lead);
        let measured = memory.lead_time().is_some();
        let Some((f, h)) = memory.forecast_at(self, obs.now, lead) else {
            let have = fmt_d(self.step * memory.len() as u32);
            return (Recommendation::none(format!("{have} of history: too little to forecast yet")), None);
        };
        let want = self.target.map(|t| ((f.value + self.headroom * f.band).max(0.0) / t - 1e-9).ceil().max(0.0) as u32);
        let lead_word = if measured { "measured lead" } else { "configured lead" };
        let record = ForecastRecord {
            metric: self.metric.clone(),
            at: obs.now.plus(lead),
            lead_secs: lead.as_secs(),
            lead_measured: measured,
            value: f.value,
            band: f.band,
            model: f.model.clone(),
            mae: f.mae,
            naive_mae: f.naive_mae,
            replicas: want,
        };
        let mut what = format!(
            "{} in {} ({lead_word}, {h} step(s)): {} ± {} by {} (backtest MAE {} vs {} for the last value)",
            self.metric,
            fmt_d(lead),
            num(f.value),
            num(f.band),
            f.model,
            num(f.mae),
            num(f.naive_mae),
        );
        if let (Some(want), Some(t)) = (want, self.target) {
            what.push_str(&format!(" → {want} at {} each", num(t)));
        }
        match want {
            Some(want) if !self.forecast_only => (Recommendation::at_least(want, what), Some(record)),
            _ => (Recommendation::none(format!("forecast only: {what}")), Some(record)),
        }
    }
}

/// How a step's readings are summed up.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerStep {
    /// Their mean.
    #[default]
    Mean,
    /// The highest one.
    Max,
}

/// What a predictive check forecast, as recorded in the decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastRecord {
    /// The metric forecast.
    pub metric: String,
    /// The time forecast for.
    pub at: Timestamp,
    /// The lead time used, seconds.
    pub lead_secs: u64,
    /// Whether the lead time was measured (else configured).
    pub lead_measured: bool,
    /// The forecast.
    pub value: f64,
    /// Its error band (90th percentile of the backtest's absolute errors).
    pub band: f64,
    /// The model chosen.
    pub model: String,
    /// The model's backtest error.
    pub mae: f64,
    /// The last value's backtest error.
    pub naive_mae: f64,
    /// The replicas the forecast needs (with a `target`).
    #[serde(default)]
    pub replicas: Option<u32>,
}

/// A scale-up waiting for its replicas to be ready (to measure time-to-ready).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PendingReady {
    since: Timestamp,
    to: u32,
}

/// A predictive check's memory: its metric's history on a regular grid and
/// the target's measured times-to-ready. Serializable: the engine saves it
/// when it changes (a step closed, a lead time measured) and restores it after
/// a restart or a failover.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictiveMemory {
    /// The start of `buckets[0]`.
    start: Option<Timestamp>,
    /// Step length in milliseconds the buckets were made with.
    step_ms: u64,
    /// How the buckets summed up their steps.
    #[serde(default)]
    per_step: PerStep,
    /// One mean per step; `None` where no reading came.
    buckets: VecDeque<Option<f64>>,
    /// Recent times-to-ready, seconds.
    ready_secs: VecDeque<f64>,
    pending: Option<PendingReady>,
    last_current: Option<u32>,
    /// When `last_current` was read: the tick that raised the count.
    #[serde(default)]
    last_at: Option<Timestamp>,
    /// The open step: sum, count and highest reading so far (not saved).
    #[serde(skip)]
    open: (f64, u32, f64),
    /// Steps closed since this memory was made or restored (not saved).
    #[serde(skip)]
    closed: u64,
    /// The last model choice and forecast (not saved).
    #[serde(skip)]
    fit: Option<Fit>,
    /// Bumped whenever something worth saving changed (not saved).
    #[serde(skip)]
    version: u64,
}

const READY_SAMPLES: usize = 9;

/// Closed steps between two choices of the model (by backtest over every
/// candidate); in between, the chosen model alone forecasts from the newer
/// history, its band and backtest errors those of the choice.
pub const RESELECT_STEPS: u64 = 12;

/// A model choice and its latest forecast.
#[derive(Clone, Debug, PartialEq)]
struct Fit {
    /// `closed` when the model was chosen.
    chosen_at: u64,
    /// `closed` and the horizon when `forecast.value` was computed.
    evaluated: (u64, usize),
    forecast: Forecast,
}

impl PredictiveMemory {
    /// Closed steps held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no step has closed yet.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Changes whenever the memory has something new worth saving.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The median of the recent measured times-to-ready.
    pub fn lead_time(&self) -> Option<Duration> {
        if self.ready_secs.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.ready_secs.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        Some(Duration::from_secs_f64(v[v.len() / 2]))
    }

    /// Takes in this tick: the metric's reading into the open step (closing
    /// steps that ended), and the replica counts for time-to-ready.
    pub fn observe(&mut self, cfg: &Predictive, obs: &Observation<'_>) {
        let step_ms = cfg.step.as_millis() as u64;
        if self.step_ms != step_ms || self.per_step != cfg.per_step {
            // a new step length or summary: the old history no longer fits
            *self = PredictiveMemory {
                step_ms,
                per_step: cfg.per_step,
                ready_secs: std::mem::take(&mut self.ready_secs),
                ..Default::default()
            };
        }
        let now = obs.now;
        let start = *self
            .start
            .get_or_insert(Timestamp::from_millis(now.as_millis() - now.as_millis().rem_euclid(step_ms as i64)));
        let idx = ((now.as_millis() - start.as_millis()).max(0) as u64 / step_ms) as usize;
        while self.buckets.len() < idx {
            let (sum, n, max) = std::mem::take(&mut self.open);
            let summary = match self.per_step {
                PerStep::Mean => sum / n.max(1) as f64,
                PerStep::Max => max,
            };
            self.buckets.push_back((n > 0).then_some(summary));
            self.version += 1;
            self.closed += 1;
        }
        let cap = cfg.capacity().max(1);
        while self.buckets.len() > cap {
            self.buckets.pop_front();
            self.start = self.start.map(|s| s.plus(cfg.step));
        }
        if let Ok(v) = obs.latest(&cfg.metric) {
            self.open.2 = if self.open.1 == 0 { v } else { self.open.2.max(v) };
            self.open.0 += v;
            self.open.1 += 1;
        }
        self.measure_ready(obs);
    }

    fn measure_ready(&mut self, obs: &Observation<'_>) {
        if let Some(p) = self.pending {
            if obs.ready >= p.to {
                self.ready_secs.push_back(obs.now.since(p.since).as_secs_f64());
                while self.ready_secs.len() > READY_SAMPLES {
                    self.ready_secs.pop_front();
                }
                self.pending = None;
                self.version += 1;
            } else if obs.current < p.to {
                // scaled back down before it was ready: no sample
                self.pending = None;
            }
        }
        if let Some(last) = self.last_current
            && obs.current > last
            && obs.ready < obs.current
            && self.pending.is_none()
        {
            // The count went up after the previous reading: at that tick's
            // scale action, as a rule, so time it from there (timed from this
            // tick, it came out up to an interval short). A reading older
            // than two intervals (restored after a restart) dates nothing.
            let since = match self.last_at {
                Some(at) if at <= obs.now && obs.now.since(at) <= obs.interval * 2 => at,
                _ => obs.now,
            };
            self.pending = Some(PendingReady { since, to: obs.current });
        }
        self.last_current = Some(obs.current);
        self.last_at = Some(obs.now);
    }

    /// The forecast for `now + lead`, from the closed steps, with its horizon
    /// in steps. The model is chosen again every [`RESELECT_STEPS`] closed
    /// steps; in between the chosen one forecasts alone when a step closed
    /// or the horizon moved.
    pub fn forecast_at(&mut self, cfg: &Predictive, now: Timestamp, lead: Duration) -> Option<(Forecast, usize)> {
        let start = self.start?;
        let step_ms = self.step_ms.max(1) as i64;
        let n = self.buckets.len();
        if n < MIN_STEPS {
            return None;
        }
        let target_idx = ((now.plus(lead).as_millis() - start.as_millis()).max(0) / step_ms) as usize;
        let h = target_idx.saturating_sub(n - 1).max(1);
        if let Some(fit) = &mut self.fit
            && self.closed - fit.chosen_at < RESELECT_STEPS
        {
            if fit.evaluated == (self.closed, h) {
                return Some((fit.forecast.clone(), h));
            }
            if let Some(value) = filled(&self.buckets).and_then(|y| rerun(&y, h, &fit.forecast.chosen)) {
                fit.forecast.value = value;
                fit.evaluated = (self.closed, h);
                return Some((fit.forecast.clone(), h));
            }
        }
        let y = filled(&self.buckets)?;
        let seasons = cfg.season_steps();
        let longest = seasons.iter().copied().max().unwrap_or(0);
        let holdout = (n / 4).max(longest.min(n / 2)).max(4);
        let f = forecast(&y, h, &seasons, holdout)?;
        self.fit = Some(Fit { chosen_at: self.closed, evaluated: (self.closed, h), forecast: f.clone() });
        Some((f, h))
    }
}

/// The buckets with gaps filled: from the same step a season... simply the
/// nearest earlier value (or the first known one at the start).
fn filled(b: &VecDeque<Option<f64>>) -> Option<Vec<f64>> {
    let first = b.iter().flatten().next().copied()?;
    let mut last = first;
    Some(
        b.iter()
            .map(|v| {
                if let Some(v) = v {
                    last = *v;
                }
                last
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{Point, Series};
    use std::collections::BTreeMap;

    fn cfg(step_secs: u64, seasons: &[&str]) -> Predictive {
        Predictive {
            metric: "rps".into(),
            target: Some(10.0),
            per_step: PerStep::Mean,
            step: Duration::from_secs(step_secs),
            seasons: seasons.iter().map(|s| s.to_string()).collect(),
            history: None,
            lead: Duration::from_secs(120),
            headroom: 0.0,
            forecast_only: false,
        }
    }

    /// Runs the check over `load(t)` every `tick` seconds for `secs`, with the
    /// target at `current` and `ready` given by `counts(t)`; returns the last recommendation.
    fn run(
        c: &Predictive,
        mem: &mut PredictiveMemory,
        secs: i64,
        tick: i64,
        load: impl Fn(i64) -> f64,
        counts: impl Fn(i64) -> (u32, u32),
    ) -> (Recommendation, Option<ForecastRecord>) {
        let mut last = (Recommendation::none("nothing"), None);
        let mut series = BTreeMap::from([("rps".to_string(), Series::new())]);
        for t in (0..secs).step_by(tick as usize) {
            let now = Timestamp::from_secs(1_000_000_000 + t);
            series.get_mut("rps").unwrap().push(Point { at: now, value: Some(load(t)) }, Duration::from_secs(60));
            let (current, ready) = counts(t);
            let obs = Observation {
                now,
                interval: Duration::from_secs(tick as u64),
                current,
                ready,
                min: 0,
                max: 1000,
                series: &series,
            };
            last = c.decide(&obs, mem);
        }
        last
    }

    #[test]
    fn it_provisions_ahead_for_a_daily_cycle_and_says_how() {
        // an hourly "day" (period 12 steps of 5 min) so the test stays small: 2 days of history
        let c = cfg(300, &["1h"]);
        let mut mem = PredictiveMemory::default();
        let load = |t: i64| 100.0 + 80.0 * (t as f64 * std::f64::consts::TAU / 3600.0).sin();
        let (r, rec) = run(&c, &mut mem, 4 * 3600, 30, load, |_| (10, 10));
        let rec = rec.expect("a forecast");
        let truth = load(4 * 3600 - 30 + 120);
        assert!((rec.value - truth).abs() < 25.0, "forecast {} vs {truth}: {}", rec.value, r.reason);
        assert!(rec.mae < rec.naive_mae, "{rec:?}");
        assert!(!rec.lead_measured);
        assert_eq!(r.desired, rec.replicas);
        assert!(r.reason.contains("rps in 2m (configured lead"), "{}", r.reason);
        // the memory saves and restores
        let json = serde_json::to_string(&mem).unwrap();
        let back: PredictiveMemory = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), mem.len());
    }

    #[test]
    fn lead_time_is_measured_from_scale_up_to_ready() {
        let c = cfg(60, &[]);
        let mut mem = PredictiveMemory::default();
        // the tick at t=90 scales 2 → 5 (seen from t=100); ready reaches 5 at
        // t=280 (190 s); again from t=990, ready at t=1120 (130 s)
        let counts = |t: i64| match t {
            ..100 => (2, 2),
            100..280 => (5, 2),
            280..1000 => (5, 5),
            1000..1120 => (8, 5),
            _ => (8, 8),
        };
        run(&c, &mut mem, 1500, 10, |_| 50.0, counts);
        assert_eq!(mem.ready_secs.iter().copied().collect::<Vec<_>>(), vec![190.0, 130.0]);
        assert_eq!(mem.lead_time(), Some(Duration::from_secs(190)), "the upper median: the cautious one");
        let (r, rec) = run(&c, &mut mem, 60, 10, |_| 50.0, |_| (8, 8));
        assert!(rec.unwrap().lead_measured, "{}", r.reason);
    }

    #[test]
    fn a_count_raised_across_a_restart_is_timed_from_when_it_was_seen() {
        let c = cfg(60, &[]);
        let series = BTreeMap::from([("rps".to_string(), Series::new())]);
        let tick = |mem: &mut PredictiveMemory, t: i64, current: u32, ready: u32| {
            let obs = Observation {
                now: Timestamp::from_secs(1_000_000_000 + t),
                interval: Duration::from_secs(10),
                current,
                ready,
                min: 0,
                max: 1000,
                series: &series,
            };
            mem.observe(&c, &obs);
        };
        let mut mem = PredictiveMemory::default();
        tick(&mut mem, 0, 2, 2);
        // saved, and restored an hour later, when the count has gone up
        let mut mem: PredictiveMemory = serde_json::from_str(&serde_json::to_string(&mem).unwrap()).unwrap();
        tick(&mut mem, 3600, 5, 2);
        tick(&mut mem, 3700, 5, 5);
        assert_eq!(mem.ready_secs.iter().copied().collect::<Vec<_>>(), vec![100.0], "not the hour offline");
        // a clock set back dates nothing either
        tick(&mut mem, 3600, 8, 5);
        tick(&mut mem, 3650, 8, 8);
        assert_eq!(mem.ready_secs.iter().copied().collect::<Vec<_>>(), vec![100.0, 50.0]);
    }

    #[test]
    fn a_step_may_be_summed_up_by_its_highest_reading() {
        // every minute: five readings of 10 and one spike of 70
        let spiky = |t: i64| if t % 60 == 50 { 70.0 } else { 10.0 };
        let mut c = cfg(60, &[]);
        let mut mem = PredictiveMemory::default();
        let (_, rec) = run(&c, &mut mem, 1200, 10, spiky, |_| (3, 3));
        assert!((rec.unwrap().value - 20.0).abs() < 1e-9, "the mean of a step");
        c.per_step = PerStep::Max;
        let (r, rec) = run(&c, &mut mem, 1200, 10, spiky, |_| (3, 3));
        let rec = rec.unwrap();
        assert_eq!(rec.value, 70.0, "the spike: {}", r.reason);
        assert_eq!(rec.replicas, Some(7));
        // steps are aligned to whole minutes of Unix time, so the first one is partial (no spike);
        // every later one is its spike: the history of means was dropped, not mixed in
        assert!(mem.buckets.iter().skip(1).all(|b| *b == Some(70.0)), "{:?}", mem.buckets);
        assert!(!mem.buckets.contains(&Some(20.0)), "{:?}", mem.buckets);
    }

    #[test]
    fn forecast_only_asks_for_nothing() {
        let mut c = cfg(60, &[]);
        c.forecast_only = true;
        let mut mem = PredictiveMemory::default();
        let (r, rec) = run(&c, &mut mem, 1200, 10, |_| 95.0, |_| (3, 3));
        assert_eq!(r.desired, None);
        assert!(r.reason.starts_with("forecast only:"), "{}", r.reason);
        assert_eq!(rec.unwrap().replicas, Some(10));
        // not forecast-only, it asks for them as a floor: never a scale-in on its own
        c.forecast_only = false;
        let (r, _) = run(&c, &mut PredictiveMemory::default(), 1200, 10, |_| 95.0, |_| (3, 3));
        assert_eq!(r.desired, Some(10), "{}", r.reason);
        assert!(r.floor);
    }

    #[test]
    fn validation_names_fields() {
        let mut c = cfg(300, &["1d", "5m", "soon"]);
        c.target = Some(0.0);
        c.headroom = -1.0;
        let errs = c.validate();
        assert!(errs.iter().any(|e| e.contains("`target`")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("`5m` must be at least two steps")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("`seasons`:") && e.contains("soon")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("`headroom`")), "{errs:?}");
        assert!(cfg(300, &["1d", "1w"]).validate().is_empty());
        let mut short = cfg(300, &["1d", "1w"]);
        short.history = Some(Duration::from_secs(10 * 86_400));
        let errs = short.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("`history` of 10d is shorter than two `1w` seasons (14d)"), "{errs:?}");
        let errs = cfg(420, &["1d"]).validate();
        assert!(errs.iter().any(|e| e.contains("`1d` is not a whole number of steps of 7m")), "{errs:?}");
        assert_eq!(cfg(300, &["1d", "1w"]).capacity(), (15 * 86_400) / 300);
        // 30 minutes of 5-minute steps is 6 steps: it would never forecast
        let mut tiny = cfg(300, &[]);
        tiny.history = Some(Duration::from_secs(1800));
        let errs = tiny.validate();
        assert!(errs.iter().any(|e| e.contains("`history` holds 6 steps of 5m")), "{errs:?}");
    }
}
