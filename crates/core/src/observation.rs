//! What a strategy sees in one tick.

use crate::series::Series;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// The inputs of one tick of one policy: the time, the replica counts and the
/// recent history of every metric the policy declares (newest point = this tick).
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The tick's time.
    pub now: Timestamp,
    /// The policy's tick interval.
    pub interval: Duration,
    /// Replicas the target has now (asked for, ready or not).
    pub current: u32,
    /// Replicas ready to serve.
    pub ready: u32,
    /// The policy's lower bound.
    pub min: u32,
    /// The policy's upper bound.
    pub max: u32,
    /// Each metric's recent history by the policy's name for it.
    pub series: &'a BTreeMap<String, Series>,
}

impl Observation<'_> {
    /// This tick's value of `metric`, or why there is none.
    pub fn latest(&self, metric: &str) -> Result<f64, String> {
        let series =
            self.series.get(metric).ok_or_else(|| format!("metric `{metric}` is not declared by the policy"))?;
        match series.latest() {
            Some(p) if p.at < self.now.minus(self.interval) => {
                Err(format!("metric `{metric}` has no reading this tick"))
            }
            Some(p) => p.value.ok_or_else(|| format!("metric `{metric}` reading failed, is stale or was held back")),
            None => Err(format!("metric `{metric}` has no reading yet")),
        }
    }

    /// The series of `metric`, if declared.
    pub fn series(&self, metric: &str) -> Option<&Series> {
        self.series.get(metric)
    }

    /// The longest silence between two readings that still counts as "continuous".
    pub fn max_gap(&self) -> Duration {
        self.interval * 2 + Duration::from_secs(1)
    }
}
