//! Baselines run on the same model as the policy under test: static peak
//! provisioning and the oracle. (Kubernetes HPA runs as a Moontide policy
//! with HPA's rule and defaults: see `policy::hpa`.)

use crate::oracle;
use crate::run::{Autoscaler, Load, View};
use crate::service::Model;

/// A fixed count: the peak the load ever needs.
pub struct StaticPeak {
    count: u32,
}

impl StaticPeak {
    /// The peak demand of `load` (see [`oracle::demand`]) at steps of `dt`.
    pub fn new(model: &Model, load: &Load<'_>, dt: f64) -> Self {
        let count = oracle::demand(model, &load.steps(dt), dt).into_iter().max().unwrap_or(1).max(1);
        StaticPeak { count }
    }

    /// The count it holds.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl Autoscaler for StaticPeak {
    fn name(&self) -> String {
        "static peak".into()
    }
    fn interval(&self) -> f64 {
        f64::INFINITY
    }
    fn decide(&mut self, _: &View) -> u32 {
        self.count
    }
}

/// Perfect foresight (see [`oracle::plan`]).
pub struct Oracle {
    plan: Vec<u32>,
    dt: f64,
    start: f64,
}

impl Oracle {
    /// Plans for `load` at steps of `dt`.
    pub fn new(model: &Model, load: &Load<'_>, dt: f64) -> Self {
        Oracle { plan: oracle::plan(model, &load.steps(dt), dt), dt, start: load.start }
    }
}

impl Oracle {
    /// The count to start with: foresight reaches before the first step too.
    pub fn initial(&self) -> u32 {
        self.plan.first().copied().unwrap_or(0)
    }
}

impl Autoscaler for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }
    fn interval(&self) -> f64 {
        self.dt
    }
    fn decide(&mut self, view: &View) -> u32 {
        // decided at the start of step i, for step i
        let i = ((view.now - self.start) / self.dt).round() as usize;
        self.plan.get(i).or(self.plan.last()).copied().unwrap_or(0)
    }
}
