//! Forecasting load from a policy's own history, for the `predictive` strategy.
//!
//! The history is a regular grid (one mean per `step`). Candidates:
//! - `naive`: the last value;
//! - `seasonal_naive(P)`: the value one season `P` earlier (a day, a week);
//! - `holt_winters(P)`: additive Holt-Winters (level, trend, season of `P`),
//!   its smoothing factors picked from a small grid.
//!
//! Every candidate is backtested on the most recent part of the history at
//! the horizon asked for (each point forecast from the data `horizon` before
//! it); the one with the lowest mean absolute error wins. Its error band is
//! the 90th percentile of its absolute errors there. Choosing runs every
//! candidate; [`rerun`] runs only the chosen one on newer history, for
//! callers that re-choose less often than they forecast.

/// A candidate model with its parameters.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Model {
    /// The last value.
    Naive,
    /// The value one season (of so many steps) earlier.
    SeasonalNaive(usize),
    /// Additive Holt-Winters with a season of `p` steps and smoothing factors.
    HoltWinters {
        /// Season length in steps.
        p: usize,
        /// Level smoothing.
        alpha: f64,
        /// Trend smoothing.
        beta: f64,
        /// Season smoothing.
        gamma: f64,
    },
}

impl Model {
    /// Its name in decisions, like `holt_winters(288)`.
    pub fn name(&self) -> String {
        match self {
            Model::Naive => "naive".into(),
            Model::SeasonalNaive(p) => format!("seasonal_naive({p})"),
            Model::HoltWinters { p, .. } => format!("holt_winters({p})"),
        }
    }

    fn run(&self, y: &[f64], h: usize) -> Run {
        match *self {
            Model::Naive => naive(y, h),
            Model::SeasonalNaive(p) => seasonal_naive(y, h, p),
            Model::HoltWinters { p, alpha, beta, gamma } => holt_winters(y, h, p, alpha, beta, gamma),
        }
    }

    fn fits(&self, n: usize) -> bool {
        match *self {
            Model::Naive => n >= 1,
            Model::SeasonalNaive(p) | Model::HoltWinters { p, .. } => p >= 2 && n >= 2 * p,
        }
    }
}

/// A forecast `horizon` steps past the end of the history.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    /// The chosen model, like `holt_winters(1440)`.
    pub model: String,
    /// The chosen model with its parameters (for [`rerun`]).
    pub chosen: Model,
    /// The forecast value.
    pub value: f64,
    /// The 90th percentile of the chosen model's absolute backtest errors.
    pub band: f64,
    /// The chosen model's mean absolute backtest error.
    pub mae: f64,
    /// The last value's mean absolute error on the same backtest, for comparison.
    pub naive_mae: f64,
}

/// A model's forecasts for every point of the history: `fitted[i]` is the
/// forecast of `y[i]` made `h` steps earlier (NaN where it cannot be made),
/// and the forecast of the point `h` steps past the end.
type Run = (Vec<f64>, f64);

fn naive(y: &[f64], h: usize) -> Run {
    let n = y.len();
    let fitted = (0..n).map(|i| if i >= h { y[i - h] } else { f64::NAN }).collect();
    (fitted, y[n - 1])
}

fn seasonal_naive(y: &[f64], h: usize, p: usize) -> Run {
    let n = y.len();
    // go back whole seasons until the source point is at least h steps old
    let back = p * h.div_ceil(p).max(1);
    let fitted = (0..n).map(|i| if i >= back { y[i - back] } else { f64::NAN }).collect();
    let target = n - 1 + h;
    (fitted, y[target - back])
}

fn holt_winters(y: &[f64], h: usize, p: usize, alpha: f64, beta: f64, gamma: f64) -> Run {
    let n = y.len();
    let mut level = y[..p].iter().sum::<f64>() / p as f64;
    let second = y[p..2 * p].iter().sum::<f64>() / p as f64;
    let mut trend = (second - level) / p as f64;
    let mut season: Vec<f64> = y[..p].iter().map(|v| v - level).collect();
    let mut fitted = vec![f64::NAN; n];
    let ahead = |level: f64, trend: f64, season: &[f64], i: usize, k: usize| {
        // forecast of point i + k from the state after point i
        level + k as f64 * trend + season[(i + k) % p]
    };
    for i in p..n {
        let s_old = season[i % p];
        let prev_level = level;
        level = alpha * (y[i] - s_old) + (1.0 - alpha) * (level + trend);
        trend = beta * (level - prev_level) + (1.0 - beta) * trend;
        season[i % p] = gamma * (y[i] - level) + (1.0 - gamma) * s_old;
        if i + h < n {
            fitted[i + h] = ahead(level, trend, &season, i, h);
        }
    }
    let value = ahead(level, trend, &season, n - 1, h);
    (fitted, value)
}

/// Mean and 90th percentile of |y − fitted| over `from..`, where both are known.
fn errors(y: &[f64], fitted: &[f64], from: usize) -> Option<(f64, f64)> {
    let mut e: Vec<f64> =
        (from..y.len()).filter(|&i| fitted[i].is_finite()).map(|i| (y[i] - fitted[i]).abs()).collect();
    if e.len() < 3 {
        return None;
    }
    let mae = e.iter().sum::<f64>() / e.len() as f64;
    let k = ((e.len() as f64 * 0.9).ceil() as usize).clamp(1, e.len()) - 1;
    let (_, p90, _) = e.select_nth_unstable_by(k, f64::total_cmp);
    Some((mae, *p90))
}

/// Forecasts `h` steps (at least 1) past the end of `y` with the candidate
/// that backtests best over the last `holdout` points, trying seasonal
/// models for each period in `seasons` (in steps) that the history holds
/// twice over. `None` when the history is too short to backtest.
pub fn forecast(y: &[f64], h: usize, seasons: &[usize], holdout: usize) -> Option<Forecast> {
    let h = h.max(1);
    let n = y.len();
    if n < h + 4 || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let from = n.saturating_sub(holdout.max(3)).max(h);
    let (nf, nv) = naive(y, h);
    let (naive_mae, naive_band) = errors(y, &nf, from)?;
    let mut best = Forecast {
        model: "naive".into(),
        chosen: Model::Naive,
        value: nv,
        band: naive_band,
        mae: naive_mae,
        naive_mae,
    };
    let mut consider = |model: Model| {
        let (fitted, value) = model.run(y, h);
        if let Some((mae, band)) = errors(y, &fitted, from)
            && value.is_finite()
            && mae < best.mae
        {
            best = Forecast { model: model.name(), chosen: model, value, band, mae, naive_mae };
        }
    };
    for &p in seasons.iter().filter(|&&p| p >= 2 && n >= 2 * p && from >= p) {
        consider(Model::SeasonalNaive(p));
        for alpha in [0.05, 0.2, 0.5] {
            for beta in [0.0, 0.02] {
                for gamma in [0.05, 0.2, 0.5] {
                    consider(Model::HoltWinters { p, alpha, beta, gamma });
                }
            }
        }
    }
    Some(best)
}

/// The forecast `h` steps past the end of `y` by a model already chosen
/// (no backtest: its error band and backtest errors stay those of the
/// choice). `None` when the history no longer suits the model.
pub fn rerun(y: &[f64], h: usize, model: &Model) -> Option<f64> {
    let h = h.max(1);
    if !model.fits(y.len()) || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (_, value) = model.run(y, h);
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily sine (period `p` steps) around `base`, with seeded noise.
    fn sine(n: usize, p: usize, base: f64, amp: f64, noise: f64, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                // xorshift: deterministic noise in [-1, 1]
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let r = (s % 2001) as f64 / 1000.0 - 1.0;
                base + amp * (i as f64 * std::f64::consts::TAU / p as f64).sin() + noise * r
            })
            .collect()
    }

    #[test]
    fn seasonal_models_beat_the_last_value_on_a_seasonal_series() {
        // a "day" of 96 steps (15 min), 10 days of history, forecast 8 steps (2 h) ahead
        let (p, h) = (96, 8);
        for seed in [1, 7, 42] {
            let all = sine(10 * p + h, p, 100.0, 50.0, 5.0, seed);
            let (hist, truth) = (&all[..10 * p], all[10 * p + h - 1]);
            let f = forecast(hist, h, &[p], 3 * p).unwrap();
            assert!(f.model.contains("(96)"), "{f:?}");
            assert!(f.mae < 0.5 * f.naive_mae, "seed {seed}: backtest MAE {} vs naive {}", f.mae, f.naive_mae);
            assert!((f.value - truth).abs() < 20.0, "seed {seed}: forecast {} vs truth {truth}", f.value);
            assert!(f.band >= f.mae && f.band < 30.0, "{f:?}");
        }
    }

    #[test]
    fn on_errors_out_of_sample_too() {
        // forecast every point of two further days from the history before it, h ahead
        let (p, h) = (48, 4);
        let all = sine(12 * p, p, 50.0, 20.0, 2.0, 3);
        let (mut model_err, mut naive_err) = (0.0, 0.0);
        for end in (10 * p)..(12 * p - h) {
            let f = forecast(&all[..end], h, &[p], 2 * p).unwrap();
            let truth = all[end + h - 1];
            model_err += (f.value - truth).abs();
            naive_err += (all[end - 1] - truth).abs();
        }
        assert!(model_err < 0.4 * naive_err, "model {model_err:.1} vs naive {naive_err:.1}");
    }

    /// Out of sample: each model's and the last value's summed absolute error
    /// forecasting every point from `from` on, `h` steps ahead, from the history before it.
    fn out_of_sample(all: &[f64], from: usize, h: usize, model: &Model) -> (f64, f64) {
        let (mut model_err, mut naive_err) = (0.0, 0.0);
        for end in from..(all.len() - h) {
            let truth = all[end + h - 1];
            model_err += (rerun(&all[..end], h, model).unwrap() - truth).abs();
            naive_err += (all[end - 1] - truth).abs();
        }
        (model_err, naive_err)
    }

    #[test]
    fn each_seasonal_model_beats_the_last_value_on_a_daily_sine_with_noise() {
        // 24 steps a day, 8 days of history, forecasts 3 steps ahead over 2 more days
        let (p, h) = (24, 3);
        let all = sine(10 * p, p, 100.0, 40.0, 8.0, 11);
        let models = [
            Model::SeasonalNaive(p),
            Model::HoltWinters { p, alpha: 0.2, beta: 0.0, gamma: 0.2 },
            Model::HoltWinters { p, alpha: 0.5, beta: 0.02, gamma: 0.05 },
        ];
        for model in models {
            let (m, naive) = out_of_sample(&all, 8 * p, h, &model);
            assert!(m < 0.6 * naive, "{}: {m:.0} vs naive {naive:.0}", model.name());
        }
    }

    #[test]
    fn a_weekly_season_is_learned_when_weekends_differ() {
        // 24 steps a day; weekdays a daily sine around 100, weekends around 30; noise ±5
        let (day, h) = (24, 2);
        let week = 7 * day;
        let daily = sine(4 * week, day, 0.0, 30.0, 5.0, 5);
        let all: Vec<f64> =
            daily.iter().enumerate().map(|(i, v)| v + if (i / day) % 7 >= 5 { 30.0 } else { 100.0 }).collect();
        // the whole fourth week, forecast from the three before it
        for model in [Model::SeasonalNaive(week), Model::HoltWinters { p: week, alpha: 0.2, beta: 0.0, gamma: 0.2 }] {
            let (m, naive) = out_of_sample(&all, 3 * week, h, &model);
            assert!(m < 0.7 * naive, "{}: {m:.0} vs naive {naive:.0}", model.name());
        }
        // chosen by backtest over the last week, a weekly model wins over the daily ones
        let f = forecast(&all[..3 * week], h, &[day, week], week).unwrap();
        assert_eq!(f.model.rsplit('(').next(), Some("168)"), "{f:?}");
        assert!(f.mae < 0.5 * f.naive_mae, "{f:?}");
    }

    #[test]
    fn holt_winters_follows_a_trend_with_a_season() {
        let p = 24;
        let y: Vec<f64> = (0..(8 * p)).map(|i| 10.0 + 0.5 * i as f64 + 5.0 * ((i % p) as f64 / p as f64)).collect();
        let f = forecast(&y, 6, &[p], 2 * p).unwrap();
        let truth = 10.0 + 0.5 * (8 * p + 5) as f64 + 5.0 * (((8 * p + 5) % p) as f64 / p as f64);
        assert!(f.model.starts_with("holt_winters"), "{f:?}");
        assert!((f.value - truth).abs() < 2.0, "{} vs {truth}", f.value);
    }

    #[test]
    fn without_a_season_in_the_history_it_falls_back_to_the_last_value() {
        let flat = vec![5.0; 50];
        let f = forecast(&flat, 3, &[96], 20).unwrap();
        assert_eq!(f.model, "naive");
        assert_eq!(f.value, 5.0);
        assert_eq!(forecast(&flat[..5], 3, &[96], 20), None, "too short to backtest");
        assert_eq!(forecast(&[1.0, f64::NAN, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 1, &[], 4), None);
    }

    #[test]
    fn rerunning_the_chosen_model_gives_its_forecast() {
        let (p, h) = (24, 3);
        let y = sine(10 * p, p, 100.0, 50.0, 5.0, 9);
        let f = forecast(&y[..9 * p], h, &[p], 3 * p).unwrap();
        assert_eq!(rerun(&y[..9 * p], h, &f.chosen), Some(f.value), "same history, same forecast");
        // on newer history the chosen model forecasts anew, still close to the truth
        let later = rerun(&y[..10 * p - h], h, &f.chosen).unwrap();
        assert!((later - y[10 * p - 1]).abs() < 20.0, "{later} vs {}", y[10 * p - 1]);
        assert_eq!(rerun(&y[..p], h, &f.chosen), None, "too short for its season");
    }
}
