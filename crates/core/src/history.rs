//! What a policy remembers between ticks: recent recommendations (for
//! stabilization windows), recent scale actions (for rate limits and
//! cooldowns) and the current run of ticks in which every check failed. It is
//! rebuilt from the stored decisions after a restart, so windows and cooldowns carry on.

use crate::decision::{Decision, Outcome};
use crate::time::Timestamp;
use std::collections::VecDeque;
use std::time::Duration;

/// A scale action that the target accepted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When.
    pub at: Timestamp,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
}

/// A policy's memory of recent ticks.
#[derive(Clone, Debug, Default)]
pub struct PolicyHistory {
    recommendations: VecDeque<(Timestamp, u32)>,
    actions: VecDeque<ScaleEvent>,
    error_streak: u32,
    retention: Duration,
}

impl PolicyHistory {
    /// An empty history that forgets what is older than `retention`.
    pub fn new(retention: Duration) -> Self {
        PolicyHistory { retention, ..Default::default() }
    }

    /// Takes a decision into account (in time order).
    pub fn note(&mut self, d: &Decision) {
        if let Outcome::Skipped { .. } = d.outcome {
            return;
        }
        if let Some(v) = d.window_value() {
            self.recommendations.push_back((d.at, v));
        }
        if let Some((from, to)) = d.outcome.change() {
            self.actions.push_back(ScaleEvent { at: d.at, from, to });
        }
        // the on-error fallback counts ticks in which every check failed, not ticks with any error
        let all_failed = !d.checks.is_empty()
            && d.checks.iter().all(|c| c.recommendation.error.is_some() && c.recommendation.desired.is_none());
        self.error_streak = if all_failed { self.error_streak.saturating_add(1) } else { 0 };
        let cutoff = d.at.minus(self.retention);
        while self.recommendations.front().is_some_and(|r| r.0 < cutoff) {
            self.recommendations.pop_front();
        }
        while self.actions.front().is_some_and(|a| a.at < cutoff) {
            self.actions.pop_front();
        }
    }

    /// Recommendations remembered, oldest first.
    pub fn recommendations(&self) -> impl DoubleEndedIterator<Item = &(Timestamp, u32)> {
        self.recommendations.iter()
    }

    /// Scale actions remembered, oldest first.
    pub fn actions(&self) -> impl DoubleEndedIterator<Item = &ScaleEvent> {
        self.actions.iter()
    }

    /// How many ticks in a row, up to the last one, every check failed (no opinion, a data error).
    pub fn error_streak(&self) -> u32 {
        self.error_streak
    }
}
