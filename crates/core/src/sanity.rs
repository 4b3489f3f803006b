//! The metric sanity check (`[policies.NAME.behaviour.sanity]`): a reading
//! implausibly far from the metric's recent series is held back for one tick.
//! If the next reading confirms it (it lies within `factor` of the held one),
//! the new level is taken; if not, the held reading is dropped as a glitch.
//! So one spoofed or corrupt sample cannot trigger a large scale-up, and a real
//! jump in load costs one tick of delay.
//!
//! "Implausible" means above `factor` × the recent maximum, or below the
//! recent minimum ÷ `factor`, where both are taken at least as large as
//! `floor`, so that a metric near zero may rise to `floor × factor` freely.
//! The check needs `min_points` usable points within `window`; until then every reading passes.

use crate::duration::serde_text_opt;
use crate::series::Series;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The sanity check as written in config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanityConfig {
    /// How many times the recent maximum (or less than the minimum) counts as implausible.
    pub factor: f64,
    /// Values at or below this are never called implausibly low, and the recent
    /// maximum is taken as at least this (default 1).
    #[serde(default)]
    pub floor: Option<f64>,
    /// How far back "recent" reaches (default 5m).
    #[serde(default, with = "serde_text_opt")]
    pub window: Option<Duration>,
    /// Usable points needed in the window before the check applies (default 3).
    #[serde(default)]
    pub min_points: Option<usize>,
}

/// The sanity check with defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sanity {
    /// See [`SanityConfig::factor`].
    pub factor: f64,
    /// See [`SanityConfig::floor`].
    pub floor: f64,
    /// See [`SanityConfig::window`].
    pub window: Duration,
    /// See [`SanityConfig::min_points`].
    pub min_points: usize,
}

impl SanityConfig {
    /// Fills in the defaults.
    pub fn resolve(&self) -> Sanity {
        Sanity {
            factor: self.factor,
            floor: self.floor.unwrap_or(1.0),
            window: self.window.unwrap_or(Duration::from_secs(300)),
            min_points: self.min_points.unwrap_or(3),
        }
    }

    /// Problems with the settings, each naming the field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if !(self.factor.is_finite() && self.factor > 1.0) {
            errs.push(format!("{at}.factor: must be a number above 1 (got {})", self.factor));
        }
        if self.floor.is_some_and(|f| !f.is_finite() || f < 0.0) {
            errs.push(format!("{at}.floor: must be a number of at least 0"));
        }
        if self.window.is_some_and(|w| w.is_zero()) {
            errs.push(format!("{at}.window: must be longer than 0s"));
        }
        if self.min_points == Some(0) {
            errs.push(format!("{at}.min_points: must be at least 1"));
        }
        errs
    }
}

/// What to do with a fresh reading.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Use it.
    Accept,
    /// Use it: it confirms the reading held back last tick.
    Confirmed(String),
    /// Hold it back this tick; why.
    Hold(String),
}

impl Sanity {
    /// Judges `value`, read at `now`, against `series` (which does not hold it
    /// yet), given the reading held back last tick, if any.
    pub fn judge(&self, series: &Series, now: Timestamp, held: Option<f64>, value: f64) -> Verdict {
        if let Some(h) = held
            && self.near(h, value)
        {
            return Verdict::Confirmed(format!("confirms the reading {h} held back last tick"));
        }
        let cut = now.minus(self.window);
        let recent: Vec<f64> = series.points().filter(|p| p.at > cut && p.at < now).filter_map(|p| p.value).collect();
        if recent.len() < self.min_points || !value.is_finite() {
            return Verdict::Accept;
        }
        let hi = recent.iter().copied().fold(f64::MIN, f64::max).max(self.floor);
        let lo = recent.iter().copied().fold(f64::MAX, f64::min);
        let range = format!("recent {}–{} over {}", trim(lo), trim(hi), crate::duration::format(self.window));
        if value > hi * self.factor {
            return Verdict::Hold(format!(
                "{} is over {}× the {range}; held back until the next reading confirms it",
                trim(value),
                self.factor
            ));
        }
        if lo > self.floor && value < lo / self.factor {
            return Verdict::Hold(format!(
                "{} is under 1/{} of the {range}; held back until the next reading confirms it",
                trim(value),
                self.factor
            ));
        }
        Verdict::Accept
    }

    /// Whether two readings are within `factor` of each other.
    fn near(&self, a: f64, b: f64) -> bool {
        let (a, b) = (a.abs().max(self.floor), b.abs().max(self.floor));
        a.max(b) <= a.min(b) * self.factor
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Point;

    fn sanity() -> Sanity {
        SanityConfig { factor: 5.0, floor: None, window: None, min_points: None }.resolve()
    }

    fn make(values: &[f64]) -> (Series, Timestamp) {
        let mut s = Series::new();
        for (i, v) in values.iter().enumerate() {
            s.push(Point { at: Timestamp::from_secs(i as i64 * 10), value: Some(*v) }, Duration::from_secs(3600));
        }
        (s, Timestamp::from_secs(values.len() as i64 * 10))
    }

    #[test]
    fn a_lone_spike_is_held_and_a_confirmed_one_taken() {
        let s = sanity();
        let (series, now) = make(&[40.0, 55.0, 48.0]);
        assert_eq!(s.judge(&series, now, None, 200.0), Verdict::Accept, "under 5× the max");
        let Verdict::Hold(why) = s.judge(&series, now, None, 5000.0) else { panic!("a 100× spike passed") };
        assert!(why.contains("5000 is over 5× the recent 40–55"), "{why}");
        // the next reading is back to normal: the spike was a glitch and is not confirmed
        assert_eq!(s.judge(&series, now, Some(5000.0), 50.0), Verdict::Accept);
        // the next reading is near the held one: the new level is real
        assert!(matches!(s.judge(&series, now, Some(5000.0), 4200.0), Verdict::Confirmed(_)));
    }

    #[test]
    fn drops_are_held_but_not_near_the_floor() {
        let s = sanity();
        let (series, now) = make(&[400.0, 380.0, 420.0]);
        assert!(matches!(s.judge(&series, now, None, 3.0), Verdict::Hold(w) if w.contains("under 1/5")));
        let (quiet, now) = make(&[0.5, 0.0, 0.8]);
        assert_eq!(s.judge(&quiet, now, None, 0.0), Verdict::Accept);
        assert_eq!(s.judge(&quiet, now, None, 4.9), Verdict::Accept, "the floor lets a quiet metric rise to 5");
        assert!(matches!(s.judge(&quiet, now, None, 6.0), Verdict::Hold(_)));
    }

    #[test]
    fn too_little_history_passes_everything() {
        let s = sanity();
        let (series, now) = make(&[40.0, 55.0]);
        assert_eq!(s.judge(&series, now, None, 1e9), Verdict::Accept);
        let (old, _) = make(&[40.0, 55.0, 48.0]);
        let later = Timestamp::from_secs(3600);
        assert_eq!(s.judge(&old, later, None, 1e9), Verdict::Accept, "points outside the window do not count");
    }

    #[test]
    fn validation_names_fields() {
        let bad = SanityConfig { factor: 1.0, floor: Some(-1.0), window: Some(Duration::ZERO), min_points: Some(0) };
        let errs = bad.validate("behaviour.sanity");
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with("behaviour.sanity.factor"));
    }
}
