//! `threshold`: scale up by a step when any metric stays above its upper bound
//! for a while; scale down by a step when every bounded metric stays below its
//! lower bound for a while; between the bounds, do nothing.

use super::{Recommendation, num};
use crate::duration::{format as fmt_d, serde_text};
use crate::observation::Observation;
use serde::{Deserialize, Serialize};
use std::time::Duration;

fn one() -> u32 {
    1
}

/// Parameters of the `threshold` strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Replicas added when a condition fires upward (default 1).
    #[serde(default = "one")]
    pub step_up: u32,
    /// Replicas removed when all conditions agree on going down (default 1).
    #[serde(default = "one")]
    pub step_down: u32,
    /// The metrics watched. Up: any of them (OR). Down: all that have a `lower` (AND).
    pub conditions: Vec<Condition>,
}

/// One watched metric with its bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The policy's metric name.
    pub metric: String,
    /// Scale up when the value stays above this.
    #[serde(default)]
    pub upper: Option<f64>,
    /// Scale down when the value stays below this.
    #[serde(default)]
    pub lower: Option<f64>,
    /// How long the value must stay above `upper` (default 0s: at once).
    #[serde(default, with = "serde_text")]
    pub up_for: Duration,
    /// How long the value must stay below `lower` (default 0s: at once).
    #[serde(default, with = "serde_text")]
    pub down_for: Duration,
}

impl Threshold {
    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.conditions.is_empty() {
            errs.push("`conditions` is empty: give at least one { metric, upper, lower }".into());
        }
        if self.step_up == 0 {
            errs.push("`step_up` must be at least 1".into());
        }
        if self.step_down == 0 {
            errs.push("`step_down` must be at least 1".into());
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let at = format!("conditions[{i}] (metric `{}`)", c.metric);
            match (c.upper, c.lower) {
                (None, None) => errs.push(format!("{at}: give `upper`, `lower` or both")),
                (Some(u), Some(l)) if l >= u => {
                    errs.push(format!("{at}: `lower` ({}) must be below `upper` ({})", num(l), num(u)))
                }
                _ => {}
            }
            for (name, v) in [("upper", c.upper), ("lower", c.lower)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    errs.push(format!("{at}: `{name}` must be a finite number"));
                }
            }
        }
        errs
    }

    /// Recommends current ± step, or nothing.
    pub fn decide(&self, obs: &Observation<'_>) -> Recommendation {
        let gap = obs.max_gap();
        let mut errors = Vec::new();
        let mut up_reasons = Vec::new();
        let mut waiting = Vec::new();
        let mut down_ok = 0usize;
        let mut down_needed = 0usize;
        let mut down_reasons = Vec::new();
        // a metric above its upper bound (even one still waiting out `up_for`) rules out scale-down
        let mut high = false;
        for c in &self.conditions {
            let value = match obs.latest(&c.metric) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(e);
                    if c.lower.is_some() {
                        down_needed += 1;
                    }
                    continue;
                }
            };
            let series = obs.series(&c.metric);
            let held = |pred: &dyn Fn(f64) -> bool| series.and_then(|s| s.held_for(pred, gap));
            if let Some(upper) = c.upper
                && let Some(d) = held(&|v| v > upper)
            {
                high = true;
                if d >= c.up_for {
                    up_reasons.push(format!("{} {} > {} for {}", c.metric, num(value), num(upper), fmt_d(d)));
                } else {
                    waiting.push(format!(
                        "{} {} > {} for {} of {}",
                        c.metric,
                        num(value),
                        num(upper),
                        fmt_d(d),
                        fmt_d(c.up_for)
                    ));
                }
            }
            if let Some(lower) = c.lower {
                down_needed += 1;
                match held(&|v| v < lower) {
                    Some(d) if d >= c.down_for => {
                        down_ok += 1;
                        down_reasons.push(format!("{} {} < {} for {}", c.metric, num(value), num(lower), fmt_d(d)));
                    }
                    Some(d) => waiting.push(format!(
                        "{} {} < {} for {} of {}",
                        c.metric,
                        num(value),
                        num(lower),
                        fmt_d(d),
                        fmt_d(c.down_for)
                    )),
                    None => {}
                }
            }
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        if !up_reasons.is_empty() {
            let n = obs.current.saturating_add(self.step_up);
            return Recommendation {
                desired: Some(n),
                reason: format!("{}: +{}", up_reasons.join(", "), self.step_up),
                error,
                floor: false,
            };
        }
        if let Some(e) = error {
            return Recommendation::failed(e);
        }
        if down_needed > 0 && down_ok == down_needed && !high {
            let n = obs.current.saturating_sub(self.step_down);
            return Recommendation::want(n, format!("{}: -{}", down_reasons.join(", "), self.step_down));
        }
        if !waiting.is_empty() {
            return Recommendation::none(format!("waiting: {}", waiting.join(", ")));
        }
        let within: Vec<String> = self
            .conditions
            .iter()
            .filter_map(|c| obs.latest(&c.metric).ok().map(|v| format!("{} {}", c.metric, num(v))))
            .collect();
        Recommendation::none(format!("within bounds: {}", within.join(", ")))
    }
}
