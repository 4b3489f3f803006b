//! Moontide's core: metric series, strategies, guards and decisions.
//!
//! No IO and no async runtime here: given an [`Observation`] and a policy's
//! [`PolicyHistory`], [`policy::evaluate`] always gives the same answer. The
//! daemon and the simulator both drive this code, with different clocks.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decision;
pub mod duration;
pub mod forecast;
pub mod guard;
pub mod history;
pub mod observation;
pub mod policy;
pub mod sanity;
pub mod series;
pub mod strategy;
pub mod time;
pub mod window;

#[cfg(test)]
mod testkit;

pub use decision::{Actuation, CheckOutcome, Decision, Outcome};
pub use guard::{Behaviour, BehaviourConfig, Budget, BudgetCap, GuardEffect, GuardKind, Spend};
pub use history::{PolicyHistory, ScaleEvent};
pub use observation::Observation;
pub use policy::{Evaluation, PolicySpec, evaluate};
pub use series::{Input, Point, ReadingStatus, Series};
pub use strategy::{ForecastRecord, PredictiveMemory, Recommendation, StrategyConfig};
pub use time::{Clock, ManualClock, Timestamp};
