//! The global budget (`[budget]`): what every policy runs and has spent, so
//! that each policy's tick can see how much of the shared budget is left.

use moontide_core::{Budget, BudgetCap, Spend};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    running: u32,
    price: Option<f64>,
    used_replica_hours: f64,
}

/// Spend across all policies, against one budget.
#[derive(Debug)]
pub struct Ledger {
    budget: Budget,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Ledger {
    /// An empty ledger for `budget`.
    pub fn new(budget: Budget) -> Self {
        Ledger { budget, entries: Mutex::new(BTreeMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ceiling the global budget puts on `policy` now (its own price, if it has one).
    pub fn cap(&self, policy: &str, price: Option<f64>) -> Option<BudgetCap> {
        let entries = self.entries();
        let default_price = self.budget.price_per_replica_hour;
        let mut spend = Spend::default();
        for (name, e) in entries.iter() {
            spend.used_replica_hours += e.used_replica_hours;
            if name != policy {
                spend.others_replicas += e.running;
                spend.others_cost_per_hour += e.running as f64 * e.price.or(default_price).unwrap_or(0.0);
            }
        }
        self.budget.cap("global", price.or(default_price), &spend)
    }

    /// Records what `policy` runs after its tick and what it used in the last day.
    pub fn note(&self, policy: &str, running: u32, price: Option<f64>, used_replica_hours: f64) {
        self.entries().insert(policy.to_string(), Entry { running, price, used_replica_hours });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_sees_what_the_others_spend() {
        let ledger = Ledger::new(Budget {
            max_cost_per_hour: Some(10.0),
            price_per_replica_hour: Some(1.0),
            replica_hours_per_day: Some(1000.0),
        });
        ledger.note("a", 4, None, 40.0);
        ledger.note("b", 2, Some(2.0), 10.0);
        // a pays 1/h per replica; b's 2 replicas cost 4/h: a may run 6
        assert_eq!(ledger.cap("a", None).unwrap().max, 6);
        // b pays 2/h; a's 4 replicas cost 4/h: b may run 3
        assert_eq!(ledger.cap("b", Some(2.0)).unwrap().max, 3);
        // a new policy sees all of it
        assert_eq!(ledger.cap("c", None).unwrap().max, 2);
    }
}
