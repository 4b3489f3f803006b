//! `target_tracking`: the Kubernetes HPA rule,
//! desired = ceil(current × value / target), skipped within a tolerance,
//! the largest over all tracked metrics.

use super::{Recommendation, num};
use crate::observation::Observation;
use serde::{Deserialize, Serialize};

fn default_tolerance() -> f64 {
    0.1
}

/// Parameters of the `target_tracking` strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTracking {
    /// No change while |value / target − 1| ≤ tolerance (default 0.1, as HPA).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// The metrics tracked; the check recommends the largest count among them.
    pub targets: Vec<TrackedMetric>,
}

/// One metric held near its target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackedMetric {
    /// The policy's metric name.
    pub metric: String,
    /// The value to hold each replica at (for example 60 for "60 % CPU").
    pub target: f64,
    /// Whether the metric is already a per-replica average or the fleet's total.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// Scale to and from zero (KEDA's activation threshold, `total` metrics
    /// only): at or below it the metric asks for 0 replicas; above it, at least 1.
    #[serde(default)]
    pub activation: Option<f64>,
}

/// How a tracked metric relates to replicas.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The value is the average over ready replicas (CPU %, latency):
    /// desired = ceil(current × value / target); when scaling up with
    /// replicas still starting, those count as idle (as HPA does):
    /// desired = ceil(ready × value / target), never below current.
    #[default]
    Average,
    /// The value is the fleet's total (requests/s, queue length) and the target
    /// is per replica: desired = ceil(value / target). Can scale from zero.
    Total,
}

/// Ceiling that ignores floating-point dust (3 × 50 / 50 must stay 3).
fn ceil(x: f64) -> u32 {
    let c = (x - 1e-9).ceil();
    if c <= 0.0 {
        0
    } else if c >= u32::MAX as f64 {
        u32::MAX
    } else {
        c as u32
    }
}

/// Keeps the largest of the metrics' counts, after `t`'s activation threshold.
fn consider(best: &mut Option<(u32, String)>, t: &TrackedMetric, value: f64, n: u32, why: String) {
    let (n, why) = match t.activation {
        Some(a) if value <= a => (0, format!("{} {} ≤ activation {}: inactive, 0", t.metric, num(value), num(a))),
        Some(a) if n == 0 => (1, format!("{why}; above activation {}: at least 1", num(a))),
        _ => (n, why),
    };
    if best.as_ref().is_none_or(|(b, _)| n > *b) {
        *best = Some((n, why));
    }
}

impl TargetTracking {
    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.targets.is_empty() {
            errs.push("`targets` is empty: give at least one { metric, target }".into());
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            errs.push(format!("`tolerance` must be in [0, 1), got {}", self.tolerance));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if !(t.target.is_finite() && t.target > 0.0) {
                errs.push(format!("targets[{i}] (metric `{}`): `target` must be a positive number", t.metric));
            }
            if let Some(a) = t.activation {
                if !(a.is_finite() && a >= 0.0) {
                    errs.push(format!("targets[{i}] (metric `{}`): `activation` must be 0 or more", t.metric));
                }
                if t.aggregate != Aggregate::Total {
                    errs.push(format!(
                        "targets[{i}] (metric `{}`): `activation` needs aggregate = \"total\" (with no replicas there is no per-replica average)",
                        t.metric
                    ));
                }
            }
        }
        errs
    }

    /// Recommends the HPA count for each metric, and the largest of them.
    pub fn decide(&self, obs: &Observation<'_>) -> Recommendation {
        let mut best: Option<(u32, String)> = None;
        let mut errors = Vec::new();
        let mut idle = Vec::new();
        for t in &self.targets {
            let value = match obs.latest(&t.metric) {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                Ok(v) => {
                    errors.push(format!("metric `{}` has an unusable value {v}", t.metric));
                    continue;
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let (ratio, proposed, how) = match t.aggregate {
                Aggregate::Average => {
                    if obs.current == 0 {
                        // nothing to average: no opinion, and not a failed reading (which would
                        // set off `on_error`'s fallback at every tick of a fleet left at zero)
                        idle.push(format!("metric `{}` is a per-replica average and there are no replicas", t.metric));
                        continue;
                    }
                    let ratio = value / t.target;
                    if ratio > 1.0 && obs.ready < obs.current {
                        // HPA: replicas not ready yet count as idle when scaling up,
                        // so replicas still starting are not multiplied again
                        let raw = ceil(obs.ready as f64 * ratio);
                        let adjusted = obs.ready as f64 * ratio / obs.current as f64;
                        let formula = format!("{} ready × {} / {}", obs.ready, num(value), num(t.target));
                        let starting = obs.current - obs.ready;
                        let within = (adjusted - 1.0).abs() <= self.tolerance;
                        let head = format!(
                            "{} {} vs target {} with {starting} starting: ceil({formula}) = {raw}",
                            t.metric,
                            num(value),
                            num(t.target)
                        );
                        let why = if raw <= obs.current {
                            format!("{head}, covered by the {} asked for: hold", obs.current)
                        } else if within {
                            format!(
                                "{head}; {} for the {} asked for is within tolerance {}: hold",
                                num(obs.ready as f64 * ratio),
                                obs.current,
                                num(self.tolerance)
                            )
                        } else {
                            head
                        };
                        let n = if within { obs.current } else { raw.max(obs.current) };
                        consider(&mut best, t, value, n, why);
                        continue;
                    } else {
                        let n = ceil(obs.current as f64 * ratio);
                        (ratio, n, format!("ceil({} × {} / {})", obs.current, num(value), num(t.target)))
                    }
                }
                Aggregate::Total => {
                    let ratio = if obs.current == 0 { f64::INFINITY } else { value / (t.target * obs.current as f64) };
                    let n = ceil(value / t.target);
                    (ratio, n, format!("ceil({} / {})", num(value), num(t.target)))
                }
            };
            let (n, why) = if obs.current > 0 && (ratio - 1.0).abs() <= self.tolerance {
                (
                    obs.current,
                    format!(
                        "{} {} ≈ target {} (within tolerance {})",
                        t.metric,
                        num(value),
                        num(t.target),
                        num(self.tolerance)
                    ),
                )
            } else {
                (proposed, format!("{} {} vs target {}: {how} = {proposed}", t.metric, num(value), num(t.target)))
            };
            consider(&mut best, t, value, n, why);
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        match (best, error) {
            (Some((n, why)), None) => Recommendation::want(n, why),
            // with part of the data missing, only a recommendation for more capacity stands
            (Some((n, why)), Some(e)) if n > obs.current => {
                Recommendation { error: Some(e), ..Recommendation::want(n, why) }
            }
            (_, Some(e)) => Recommendation::failed(e),
            (None, None) if !idle.is_empty() => Recommendation::none(idle.join("; ")),
            (None, None) => Recommendation::none("no metrics tracked"),
        }
    }
}
