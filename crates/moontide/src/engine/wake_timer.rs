//! Times a scale-up from zero: from the decision that left zero to the first
//! tick that sees a replica ready, the first request's wait for a server as
//! near as the ticks tell it.

use moontide_core::{Decision, Outcome, Timestamp};

/// The scale-up from zero being timed, if any.
#[derive(Debug, Default)]
pub struct WakeTimer {
    since: Option<Timestamp>,
}

impl WakeTimer {
    /// Follows one decision; returns the wait in seconds when this decision
    /// is the first to see a replica ready after a scale-up from zero. A
    /// scale-up cut short counts by the count it reached; a decision that
    /// knows nothing of the count (skipped, deferred) changes nothing.
    pub fn note(&mut self, d: &Decision) -> Option<f64> {
        if matches!(d.outcome, Outcome::Skipped { .. } | Outcome::Deferred { .. }) {
            return None;
        }
        if let Some(since) = self.since
            && d.ready >= 1
        {
            self.since = None;
            return Some(d.at.since(since).as_secs_f64());
        }
        match d.outcome.change() {
            Some((0, to)) if to > 0 && d.ready == 0 => {
                self.since.get_or_insert(d.at);
            }
            Some((_, 0)) => self.since = None,
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(at: i64, ready: u32, outcome: Outcome) -> Decision {
        Decision { outcome, ..Decision::skipped("p", Timestamp::from_secs(at), 0, ready, "") }
    }

    #[test]
    fn times_from_the_scale_up_to_the_first_ready_replica() {
        let mut w = WakeTimer::default();
        assert_eq!(w.note(&decision(0, 0, Outcome::Hold)), None);
        assert_eq!(w.note(&decision(10, 0, Outcome::Scaled { from: 0, to: 2 })), None);
        // a further scale-up while the first servers load does not restart the clock
        assert_eq!(w.note(&decision(20, 0, Outcome::Scaled { from: 2, to: 3 })), None);
        assert_eq!(w.note(&decision(30, 0, Outcome::Skipped { reason: "status unknown".into() })), None);
        assert_eq!(w.note(&decision(190, 1, Outcome::Hold)), Some(180.0));
        // reported once
        assert_eq!(w.note(&decision(200, 2, Outcome::Hold)), None);
    }

    #[test]
    fn a_scale_up_cut_short_is_timed_by_what_it_reached() {
        let mut w = WakeTimer::default();
        let cut = Outcome::Failed { from: 0, to: 3, error: "cut short".into(), reached: Some(1) };
        assert_eq!(w.note(&decision(10, 0, cut)), None);
        assert_eq!(w.note(&decision(70, 1, Outcome::Hold)), Some(60.0));
        // one that reached nothing left the fleet at zero: nothing to time
        let none = Outcome::Failed { from: 0, to: 3, error: "refused".into(), reached: None };
        assert_eq!(w.note(&decision(100, 0, none)), None);
        assert_eq!(w.note(&decision(110, 1, Outcome::Hold)), None);
    }

    #[test]
    fn going_back_to_zero_before_a_replica_was_ready_stops_the_clock() {
        let mut w = WakeTimer::default();
        w.note(&decision(10, 0, Outcome::Scaled { from: 0, to: 1 }));
        w.note(&decision(20, 0, Outcome::Scaled { from: 1, to: 0 }));
        assert_eq!(w.note(&decision(30, 1, Outcome::Hold)), None);
    }
}
