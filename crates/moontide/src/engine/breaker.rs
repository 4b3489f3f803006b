//! Backoff and a circuit breaker per target (`[breaker]` in config).
//!
//! After a failed actuation the target is left alone for `backoff`, doubled
//! with each further failure up to `max_backoff`; ticks meanwhile still decide
//! and record, with the outcome `deferred`. After `open_after` failures in a
//! row the circuit opens: no actuation for `half_open_after`, then one trial;
//! a success closes it, a failure opens it again. Policies on other targets
//! are not affected: each target has its own breaker.

use moontide_core::Timestamp;
use moontide_core::duration::{format as fmt_d, serde_text};
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;

/// `[breaker]` as written in config; every field has a default.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// The wait after the first failure, doubled per failure in a row (default 5s).
    #[serde(with = "serde_text")]
    pub backoff: Duration,
    /// The longest wait between tries while the circuit is closed (default 5m).
    #[serde(with = "serde_text")]
    pub max_backoff: Duration,
    /// Failures in a row that open the circuit (default 5).
    pub open_after: u32,
    /// How long the circuit stays open before one trial actuation (default 1m).
    #[serde(with = "serde_text")]
    pub half_open_after: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            open_after: 5,
            half_open_after: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// Problems with the settings, each naming the field.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.backoff.is_zero() || self.backoff > self.max_backoff {
            errs.push(format!(
                "breaker.backoff: must be positive and no longer than max_backoff ({})",
                fmt_d(self.max_backoff)
            ));
        }
        if self.open_after == 0 {
            errs.push("breaker.open_after: must be at least 1".into());
        }
        if self.half_open_after.is_zero() {
            errs.push("breaker.half_open_after: must be longer than 0s".into());
        }
        errs
    }
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    retry_at: Option<Timestamp>,
    open: bool,
}

/// One target's breaker, shared by the policies that scale it.
#[derive(Debug)]
pub struct Breaker {
    target: String,
    cfg: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker for `target`.
    pub fn new(target: &str, cfg: BreakerConfig) -> Self {
        Breaker { target: target.to_string(), cfg, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `None` when an actuation may go ahead now (when the circuit is open and
    /// its wait is over, this is the half-open trial); otherwise why not.
    pub fn check(&self, now: Timestamp) -> Option<String> {
        let s = self.state();
        let at = s.retry_at?;
        if now >= at {
            return None;
        }
        let left = fmt_d(at.since(now));
        Some(if s.open {
            format!("circuit open after {} failures in a row; one trial in {left}", s.failures)
        } else {
            format!("backing off after {} failure(s) in a row; next try in {left}", s.failures)
        })
    }

    /// The target accepted an actuation: close the circuit.
    pub fn success(&self) {
        let mut s = self.state();
        if s.open {
            tracing::info!(target_name = %self.target, "circuit closed: the trial actuation succeeded");
        }
        *s = State::default();
        self.publish(&s);
    }

    /// The target failed an actuation at `now`: back off, or open the circuit.
    pub fn failure(&self, now: Timestamp) {
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        let wait = if s.failures >= self.cfg.open_after {
            if !s.open {
                tracing::warn!(target_name = %self.target, failures = s.failures, "circuit open: no actuation for {}", fmt_d(self.cfg.half_open_after));
            }
            s.open = true;
            self.cfg.half_open_after
        } else {
            let doubled = 2u32.saturating_pow(s.failures - 1);
            self.cfg.backoff.saturating_mul(doubled).min(self.cfg.max_backoff)
        };
        s.retry_at = Some(now.plus(wait));
        self.publish(&s);
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.state().failures
    }

    /// Whether the circuit is open.
    pub fn is_open(&self) -> bool {
        self.state().open
    }

    fn publish(&self, s: &State) {
        let m = crate::metrics::get();
        let label = crate::metrics::label("target", &self.target);
        m.circuit_open.get_or_create(&label).set(s.open as i64);
        m.target_failures.get_or_create(&label).set(s.failures as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn backoff_doubles_then_the_circuit_opens_and_half_opens() {
        let cfg = BreakerConfig {
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(15),
            open_after: 4,
            half_open_after: Duration::from_secs(60),
        };
        let b = Breaker::new("web", cfg);
        assert_eq!(b.check(at(0)), None);
        b.failure(at(0));
        assert!(b.check(at(4)).unwrap().contains("next try in 1s"));
        assert_eq!(b.check(at(5)), None);
        b.failure(at(5)); // 10 s
        assert!(b.check(at(14)).is_some());
        assert_eq!(b.check(at(15)), None);
        b.failure(at(15)); // 20 s, capped at 15 s
        assert!(b.check(at(29)).is_some());
        assert_eq!(b.check(at(30)), None);
        b.failure(at(30)); // fourth in a row: open
        assert!(b.is_open());
        let why = b.check(at(60)).unwrap();
        assert!(why.contains("circuit open after 4 failures"), "{why}");
        assert_eq!(b.check(at(90)), None, "half-open: one trial");
        b.failure(at(90));
        assert!(b.check(at(149)).is_some(), "a failed trial opens it again for the full wait");
        assert_eq!(b.check(at(150)), None);
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.failures(), 0);
        assert_eq!(b.check(at(150)), None);
    }

    #[test]
    fn validation_names_fields() {
        let bad = BreakerConfig {
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            open_after: 0,
            half_open_after: Duration::ZERO,
        };
        let errs = bad.validate();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("breaker.backoff"));
    }
}
