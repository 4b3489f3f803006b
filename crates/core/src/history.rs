//! What a policy remembers between ticks: recent recommendations (for
//! stabilization windows), recent scale actions (for rate limits and
//! cooldowns) and the current run of ticks in which every check failed. It is
//! rebuilt from the stored decisions after a restart, so windows and cooldowns carry on.

use crate::decision::{Decision, Outcome};
use crate::guard::BUDGET_DAY;
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
    /// The replica count from each time it changed (run-length), the last day of it.
    usage: VecDeque<(Timestamp, u32)>,
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
        let running = d.outcome.change().map_or(d.current, |(_, to)| to);
        if self.usage.back().is_none_or(|&(_, n)| n != running) {
            self.usage.push_back((d.at, running));
        }
        let day_ago = d.at.minus(BUDGET_DAY);
        while self.usage.get(1).is_some_and(|next| next.0 <= day_ago) {
            self.usage.pop_front();
        }
        // the on-error fallback counts ticks in which every check failed, not ticks with any
        // error; a tick with a reading the sanity check held back neither counts nor breaks the run
        let held = d.inputs.iter().any(|i| i.status == crate::series::ReadingStatus::Held);
        self.error_streak = match crate::policy::all_failed(&d.checks) {
            true if held => self.error_streak,
            true => self.error_streak.saturating_add(1),
            false => 0,
        };
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

    /// Replica-hours run in the last 24 hours up to `now`, as far as the
    /// remembered decisions tell (the count holds from one decision to the next).
    pub fn replica_hours(&self, now: Timestamp) -> f64 {
        let day_ago = now.minus(BUDGET_DAY);
        let mut ms = 0.0;
        for (i, &(at, n)) in self.usage.iter().enumerate() {
            let end = self.usage.get(i + 1).map_or(now, |next| next.0).min(now);
            let start = at.max(day_ago);
            if end > start {
                ms += n as f64 * (end.as_millis() - start.as_millis()) as f64;
            }
        }
        ms / 3_600_000.0
    }

    /// The replicas running after the last decision, if any was noted.
    pub fn running(&self) -> Option<u32> {
        self.usage.back().map(|&(_, n)| n)
    }

    /// How many ticks in a row, up to the last one, every check failed (no opinion, a data error).
    pub fn error_streak(&self) -> u32 {
        self.error_streak
    }
}
