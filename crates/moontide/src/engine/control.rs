//! What operators change on a running policy, through the HTTP API: pause
//! and resume, a held count ("hold N replicas until T"), and dry-run on or
//! off. Each policy's tick reads its [`Control`] before it acts; the API
//! writes it and wakes the policy so the change takes effect at once.
//!
//! What operators set is saved in the store ([`OperatorState`]) and put
//! back when the policy is built again, after a restart or a reload.
//!
//! A push of load to a policy left at zero wakes it here too
//! ([`Control::wake_if_at_zero`]), so a first request does not wait for the
//! next interval.

use moontide_core::{Decision, GuardEffect, GuardKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// A paused policy: it keeps reading and deciding, and never changes the count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// The API token's name.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
}

/// A count held by an operator until a time, whatever the checks say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The count to hold.
    pub replicas: u32,
    /// When the hold ends (the policy's own decisions resume).
    pub until: Timestamp,
    /// The API token's name.
    pub by: String,
    /// Why (required).
    pub reason: String,
}

/// What operators set, and what the policy last did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ControlState {
    /// What operators set (saved in the store).
    #[serde(flatten)]
    pub operator: OperatorState,
    /// The policy's latest decision.
    #[serde(skip)]
    pub last: Option<Decision>,
    /// When the policy ticks next.
    pub next_tick: Option<Timestamp>,
}

/// What operators set on a policy, as saved in the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorState {
    /// Set while paused.
    #[serde(default)]
    pub paused: Option<Pause>,
    /// Dry-run as set by an operator (None: as the config says).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Set while a count is held.
    #[serde(default)]
    pub hold: Option<Hold>,
}

impl OperatorState {
    /// Saves it in `store` as what operators set on `policy`, for the next start.
    pub fn save(&self, store: &crate::store::Store, policy: &str, at: Timestamp) -> Result<(), String> {
        let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        store.save_control(policy, at, &json).map_err(|e| e.to_string())
    }
}

/// One policy's control, shared by its tick and the API.
#[derive(Debug)]
pub struct Control {
    /// The policy.
    pub policy: String,
    /// Its target.
    pub target: String,
    /// Its tick interval.
    pub interval: Duration,
    /// Its bounds.
    pub min: u32,
    /// Its bounds.
    pub max: u32,
    /// Dry-run as the config says.
    pub config_dry_run: bool,
    /// Set by `run --dry-run`: dry-run whatever operators set.
    forced_dry_run: std::sync::atomic::AtomicBool,
    state: Mutex<ControlState>,
    /// Wakes the policy's task for an immediate tick.
    pub wake: Notify,
}

impl Control {
    /// A control with nothing set.
    pub fn new(policy: &str, target: &str, interval: Duration, min: u32, max: u32, config_dry_run: bool) -> Self {
        Control {
            policy: policy.into(),
            target: target.into(),
            interval,
            min,
            max,
            config_dry_run,
            forced_dry_run: Default::default(),
            state: Mutex::new(ControlState::default()),
            wake: Notify::new(),
        }
    }

    /// A copy of the state.
    pub fn state(&self) -> ControlState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the state and wakes the policy.
    pub fn update(&self, f: impl FnOnce(&mut ControlState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.wake.notify_one();
    }

    /// Wakes the policy for a tick now if its last decision left it at zero
    /// replicas and was made before `now − 1 s` (so that a stream of pushes
    /// to a fleet at zero ticks it at most once a second). A decision that
    /// could not read the target (skipped) or was held back by its breaker
    /// (deferred) knows no count: it never wakes.
    pub fn wake_if_at_zero(&self, now: Timestamp) {
        use moontide_core::Outcome;
        let at_zero = self.state.lock().unwrap_or_else(|p| p.into_inner()).last.as_ref().is_some_and(|d| {
            let known = !matches!(d.outcome, Outcome::Skipped { .. } | Outcome::Deferred { .. });
            let after = d.outcome.change().map_or(d.current, |(_, to)| to);
            known && after == 0 && d.at.plus(Duration::from_secs(1)) <= now
        });
        if at_zero {
            self.wake.notify_one();
        }
    }

    /// Changes the state without waking the policy (the tick's own bookkeeping).
    pub fn note(&self, f: impl FnOnce(&mut ControlState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// What operators set now, to be saved.
    pub fn operator(&self) -> OperatorState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).operator.clone()
    }

    /// Puts back what operators had set (a hold that ended meanwhile is dropped).
    pub fn restore(&self, mut o: OperatorState, now: Timestamp) {
        o.hold = o.hold.filter(|h| h.until > now);
        self.note(|s| s.operator = o);
    }

    /// Whether dry-run is on now.
    pub fn dry_run(&self) -> bool {
        self.dry_run_forced() || self.operator().dry_run.unwrap_or(self.config_dry_run)
    }

    /// Keeps the policy in dry-run whatever operators set or had set (`run --dry-run`).
    pub fn force_dry_run(&self) {
        self.forced_dry_run.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether `run --dry-run` keeps the policy in dry-run.
    pub fn dry_run_forced(&self) -> bool {
        self.forced_dry_run.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Applies a pause or a held count to a decision the guards produced
    /// (and ends a hold that is due). Returns the count to act on.
    pub fn apply(&self, d: &mut Decision, now: Timestamp) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = st.operator.hold.clone() {
            if now >= h.until {
                st.operator.hold = None;
                d.guards.push(GuardEffect {
                    guard: GuardKind::Operator,
                    before: d.desired,
                    after: d.desired,
                    note: format!("{}'s hold at {} ended at {}", h.by, h.replicas, wall(h.until)),
                });
            } else {
                // a hold set before the bounds changed stays within the new ones
                let n = h.replicas.clamp(self.min, self.max.max(self.min));
                let within = if n == h.replicas {
                    String::new()
                } else {
                    format!(" (as {n}: the bounds are {}..={} now)", self.min, self.max)
                };
                d.guards.push(GuardEffect {
                    guard: GuardKind::Operator,
                    before: d.desired,
                    after: n,
                    note: format!("held at {}{within} by {} until {}: {}", h.replicas, h.by, wall(h.until), h.reason),
                });
                d.desired = n;
            }
        }
        if let Some(p) = &st.operator.paused {
            d.guards.push(GuardEffect {
                guard: GuardKind::Operator,
                before: d.desired,
                after: d.current,
                note: format!("paused by {} since {}: {}", p.by, wall(p.since), p.reason),
            });
            d.desired = d.current;
        }
    }
}

/// A time as people read it (decision history, operator notes): RFC 3339,
/// UTC, to the second (`2026-11-18T10:26:40Z`).
pub fn wall(t: Timestamp) -> String {
    // RFC 3339 holds years 0000 to 9999; the rest (a bad reply, a clock far off) as Unix seconds
    const LAST: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    match u64::try_from(t.as_millis()) {
        Ok(ms) if t.as_millis() <= LAST => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        _ => format!("{t} (Unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(current: u32, desired: u32) -> Decision {
        let mut d = Decision::skipped("p", Timestamp::from_secs(0), current, current, "x");
        d.desired = desired;
        d
    }

    #[test]
    fn a_hold_overrides_until_due_and_a_pause_keeps_the_count() {
        let c = Control::new("p", "t", Duration::from_secs(10), 1, 10, false);
        let until = Timestamp::from_secs(100);
        c.update(|s| s.operator.hold = Some(Hold { replicas: 7, until, by: "bob".into(), reason: "launch".into() }));
        let mut d = decision(3, 4);
        c.apply(&mut d, Timestamp::from_secs(50));
        assert_eq!(d.desired, 7);
        assert!(d.guards[0].note.contains("held at 7 by bob"));
        let mut d = decision(3, 4);
        c.apply(&mut d, until);
        assert_eq!(d.desired, 4, "due: the policy decides again");
        assert!(d.guards[0].note.contains("ended"));
        assert!(c.operator().hold.is_none());

        c.update(|s| {
            s.operator.paused =
                Some(Pause { by: "alice".into(), reason: "maintenance".into(), since: Timestamp::from_secs(1) })
        });
        let mut d = decision(3, 9);
        c.apply(&mut d, Timestamp::from_secs(60));
        assert_eq!(d.desired, 3);
        assert!(d.guards[0].note.contains("paused by alice"));
    }

    #[test]
    fn a_hold_set_before_the_bounds_narrowed_stays_within_them() {
        // saved at 7 under max 10; the config now says max 5 (a reload builds a new control)
        let c = Control::new("p", "t", Duration::from_secs(10), 1, 5, false);
        let until = Timestamp::from_secs(1_800_000_000);
        c.update(|s| s.operator.hold = Some(Hold { replicas: 7, until, by: "bob".into(), reason: "launch".into() }));
        let mut d = decision(3, 4);
        c.apply(&mut d, Timestamp::from_secs(1_700_000_000));
        assert_eq!(d.desired, 5);
        let note = &d.guards[0].note;
        assert!(
            note.contains("held at 7 (as 5: the bounds are 1..=5 now) by bob until 2027-01-15T08:00:00Z"),
            "{note}"
        );
    }

    #[test]
    fn wall_times_are_rfc_3339_within_its_years() {
        assert_eq!(wall(Timestamp::from_secs(1_800_000_000)), "2027-01-15T08:00:00Z");
        assert_eq!(wall(Timestamp::from_secs(-5)), "-5.000 (Unix seconds)");
        assert_eq!(wall(Timestamp::from_millis(9_000_000_000_000_000)), "9000000000000.000 (Unix seconds)");
    }

    #[test]
    fn run_dry_run_outweighs_an_operators_off() {
        let c = Control::new("p", "t", Duration::from_secs(10), 1, 5, false);
        c.restore(OperatorState { dry_run: Some(false), ..Default::default() }, Timestamp::from_secs(0));
        assert!(!c.dry_run());
        c.force_dry_run();
        assert!(c.dry_run());
    }

    #[test]
    fn restoring_puts_back_what_operators_set_but_not_a_hold_that_ended() {
        let c = Control::new("web", "cloud", Duration::from_secs(10), 1, 10, false);
        let hold = |until| Hold { replicas: 5, until, by: "olga".into(), reason: "launch".into() };
        let saved = OperatorState {
            paused: Some(Pause { by: "alice".into(), reason: "maintenance".into(), since: Timestamp::from_secs(1) }),
            dry_run: Some(true),
            hold: Some(hold(Timestamp::from_secs(100))),
        };
        c.restore(saved.clone(), Timestamp::from_secs(50));
        assert_eq!(c.operator(), saved);
        assert!(c.dry_run());
        c.restore(saved, Timestamp::from_secs(100));
        assert_eq!(c.operator().hold, None, "the hold was due while the policy was down");
        assert!(c.operator().paused.is_some());
    }

    #[tokio::test]
    async fn a_push_wakes_a_policy_left_at_zero_at_most_once_a_second() {
        let c = Control::new("p", "t", Duration::from_secs(3600), 0, 10, false);
        // a wake-up waiting (or not) right now
        let woken = |c: &Control| {
            let mut n = std::pin::pin!(c.wake.notified());
            n.as_mut().enable()
        };
        let at = |s| Timestamp::from_secs(s);
        c.wake_if_at_zero(at(5));
        assert!(!woken(&c), "no decision yet");
        let mut held = decision(0, 0);
        held.at = at(10);
        held.outcome = moontide_core::Outcome::Hold;
        c.note(|s| s.last = Some(held.clone()));
        c.wake_if_at_zero(at(10));
        assert!(!woken(&c), "decided less than a second ago");
        c.wake_if_at_zero(at(12));
        assert!(woken(&c), "at zero: tick now");
        let mut up = decision(0, 2);
        up.at = at(10);
        up.outcome = moontide_core::Outcome::Scaled { from: 0, to: 2 };
        c.note(|s| s.last = Some(up));
        c.wake_if_at_zero(at(20));
        assert!(!woken(&c), "scaled up already: the interval decides");
        let mut running = decision(3, 3);
        running.at = at(10);
        running.outcome = moontide_core::Outcome::Hold;
        c.note(|s| s.last = Some(running));
        c.wake_if_at_zero(at(20));
        assert!(!woken(&c), "not at zero");
        // a target whose status could not be read is recorded at 0: not a fleet at zero
        let mut unread = decision(0, 0);
        unread.at = at(10);
        c.note(|s| s.last = Some(unread));
        c.wake_if_at_zero(at(20));
        assert!(!woken(&c), "skipped: the count is unknown");
        // a scale-up from zero that failed part-way reached 1
        let mut failed = decision(0, 3);
        failed.at = at(10);
        failed.outcome = moontide_core::Outcome::Failed { from: 0, to: 3, error: "x".into(), reached: Some(1) };
        c.note(|s| s.last = Some(failed.clone()));
        c.wake_if_at_zero(at(20));
        assert!(!woken(&c), "part of the scale-up happened");
        failed.outcome = moontide_core::Outcome::Failed { from: 0, to: 3, error: "x".into(), reached: None };
        c.note(|s| s.last = Some(failed));
        c.wake_if_at_zero(at(20));
        assert!(woken(&c), "still at zero after a failed scale-up");
    }
}
