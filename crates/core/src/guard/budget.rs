//! Budgets: a ceiling on spend that caps scale-up, per policy
//! (`[policies.NAME.behaviour.budget]`) and for all policies together (`[budget]`).
//!
//! Two kinds of limit, either or both:
//! - `replica_hours_per_day`: replica-hours over the last 24 hours (a sliding
//!   day). A scale-up is allowed only to a count that what is left of the
//!   day's budget can pay for one more hour.
//! - `max_cost_per_hour` with `price_per_replica_hour`: the running cost per
//!   hour may not pass the ceiling.
//!
//! A budget never scales down: when it is spent the count stays where it is,
//! and `min` still wins over a budget.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How far back replica-hours are counted.
pub const BUDGET_DAY: Duration = Duration::from_secs(24 * 3600);

/// A budget as written in config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most replica-hours over the last 24 hours.
    #[serde(default)]
    pub replica_hours_per_day: Option<f64>,
    /// Most cost per hour (needs a price per replica-hour).
    #[serde(default)]
    pub max_cost_per_hour: Option<f64>,
    /// What one replica costs per hour; in the global `[budget]`, the price of
    /// policies that set none of their own.
    #[serde(default)]
    pub price_per_replica_hour: Option<f64>,
}

/// What has been spent, as one budget sees it.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Spend {
    /// Replica-hours used in the last 24 hours (this policy's, or all policies' for the global budget).
    pub used_replica_hours: f64,
    /// Replicas now running in the other policies the budget covers.
    pub others_replicas: u32,
    /// Cost per hour of the other policies the budget covers.
    pub others_cost_per_hour: f64,
}

/// One budget's ceiling on this tick's count.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetCap {
    /// `policy` or `global`.
    pub scope: &'static str,
    /// The most replicas the budget allows now.
    pub max: u32,
    /// How the ceiling was worked out.
    pub why: String,
}

impl Budget {
    /// Problems with the settings, each naming the field under `at`.
    /// `price_known` says whether a price applies from elsewhere (the global default).
    pub fn validate(&self, at: &str, price_known: bool) -> Vec<String> {
        let mut errs = Vec::new();
        let positive = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0);
        for (field, v) in [
            ("replica_hours_per_day", self.replica_hours_per_day),
            ("max_cost_per_hour", self.max_cost_per_hour),
            ("price_per_replica_hour", self.price_per_replica_hour),
        ] {
            if !positive(v) {
                errs.push(format!("{at}.{field}: must be a positive number"));
            }
        }
        if self.max_cost_per_hour.is_some() && self.price_per_replica_hour.is_none() && !price_known {
            errs.push(format!("{at}.max_cost_per_hour: needs `price_per_replica_hour` to turn replicas into cost"));
        }
        if self.replica_hours_per_day.is_none()
            && self.max_cost_per_hour.is_none()
            && self.price_per_replica_hour.is_none()
        {
            errs.push(format!("{at}: set `replica_hours_per_day`, `max_cost_per_hour` or `price_per_replica_hour`"));
        }
        errs
    }

    /// The ceiling this budget puts on the count now, if it sets one.
    /// `price` is the price per replica-hour of the policy being decided.
    pub fn cap(&self, scope: &'static str, price: Option<f64>, spend: &Spend) -> Option<BudgetCap> {
        let mut best: Option<BudgetCap> = None;
        let mut offer = |max: f64, why: String| {
            let max = if max.is_finite() { max.floor().clamp(0.0, u32::MAX as f64) as u32 } else { u32::MAX };
            if best.as_ref().is_none_or(|b| max < b.max) {
                best = Some(BudgetCap { scope, max, why });
            }
        };
        if let Some(day) = self.replica_hours_per_day {
            let left = (day - spend.used_replica_hours).max(0.0);
            let max = left - spend.others_replicas as f64;
            offer(
                max,
                format!(
                    "{:.1} of {day} replica-hours used in the last 24h; what is left pays for {} replica(s) for an hour",
                    spend.used_replica_hours,
                    max.max(0.0).floor()
                ),
            );
        }
        if let (Some(ceiling), Some(price)) = (self.max_cost_per_hour, price.or(self.price_per_replica_hour)) {
            let max = (ceiling - spend.others_cost_per_hour).max(0.0) / price;
            let others = if spend.others_cost_per_hour > 0.0 {
                format!(" ({:.2}/h already spent elsewhere)", spend.others_cost_per_hour)
            } else {
                String::new()
            };
            offer(max, format!("{ceiling}/h at {price}/replica-hour allows {}{others}", max.floor()));
        }
        best
    }
}

/// Applies the ceilings to a scale-up; never takes the count below `current`.
pub(super) fn limit(current: u32, n: u32, caps: &[BudgetCap]) -> (u32, String) {
    if n <= current {
        return (n, String::new());
    }
    let Some(tightest) = caps.iter().min_by_key(|c| c.max) else { return (n, String::new()) };
    let allowed = n.min(tightest.max.max(current));
    let note = format!("{} budget: {}; scale-up capped at {allowed}", tightest.scope, tightest.why);
    (allowed, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(h: f64) -> Budget {
        Budget { replica_hours_per_day: Some(h), ..Default::default() }
    }

    #[test]
    fn replica_hours_left_pay_for_an_hour() {
        let b = day(100.0);
        let cap = b.cap("policy", None, &Spend { used_replica_hours: 88.5, ..Default::default() }).unwrap();
        assert_eq!(cap.max, 11);
        assert!(cap.why.contains("88.5 of 100"), "{}", cap.why);
        let spent = b.cap("policy", None, &Spend { used_replica_hours: 130.0, ..Default::default() }).unwrap();
        assert_eq!(spent.max, 0);
    }

    #[test]
    fn global_budget_counts_the_other_policies() {
        let b = day(100.0);
        let spend = Spend { used_replica_hours: 50.0, others_replicas: 30, others_cost_per_hour: 0.0 };
        assert_eq!(b.cap("global", None, &spend).unwrap().max, 20);
    }

    #[test]
    fn cost_ceiling_needs_a_price_and_takes_the_tightest() {
        let b = Budget { max_cost_per_hour: Some(10.0), price_per_replica_hour: Some(0.5), ..Default::default() };
        assert_eq!(b.cap("policy", None, &Spend::default()).unwrap().max, 20);
        // the policy's own price wins over the budget's default
        assert_eq!(b.cap("policy", Some(2.0), &Spend::default()).unwrap().max, 5);
        let spend = Spend { others_cost_per_hour: 4.0, ..Default::default() };
        assert_eq!(b.cap("global", None, &spend).unwrap().max, 12);
        let both = Budget { replica_hours_per_day: Some(240.0), ..b };
        let cap = both.cap("policy", None, &Spend { used_replica_hours: 235.0, ..Default::default() }).unwrap();
        assert_eq!(cap.max, 5, "the day's budget is tighter than the cost ceiling");
        let no_price = Budget { max_cost_per_hour: Some(10.0), ..Default::default() };
        assert_eq!(no_price.cap("policy", None, &Spend::default()), None);
    }

    #[test]
    fn limit_caps_scale_up_only() {
        let caps = [BudgetCap { scope: "policy", max: 6, why: "x".into() }];
        assert_eq!(limit(4, 10, &caps).0, 6);
        assert_eq!(limit(8, 10, &caps).0, 8, "a spent budget holds the count, never lowers it");
        assert_eq!(limit(8, 3, &caps).0, 3, "scale-down passes");
        assert_eq!(limit(4, 10, &[]).0, 10);
    }

    #[test]
    fn validation_names_fields() {
        let errs = Budget { max_cost_per_hour: Some(-1.0), ..Default::default() }.validate("budget", false);
        assert!(errs.iter().any(|e| e.contains("budget.max_cost_per_hour: must be a positive")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("needs `price_per_replica_hour`")), "{errs:?}");
        assert!(Budget::default().validate("b", false)[0].contains("set `replica_hours_per_day`"));
        let price_only = Budget { price_per_replica_hour: Some(0.2), ..Default::default() };
        assert!(price_only.validate("b", false).is_empty(), "a price alone serves the global budget");
        let ok = Budget { max_cost_per_hour: Some(3.0), ..Default::default() };
        assert!(ok.validate("b", true).is_empty());
    }
}
