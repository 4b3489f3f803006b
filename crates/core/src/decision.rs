//! The record of one tick: what was read, what each check said, what each
//! guard changed, the final count and what the target did with it.

use crate::guard::{GuardEffect, GuardKind};
use crate::observation::Observation;
use crate::policy::Evaluation;
use crate::series::Input;
use crate::strategy::Recommendation;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One check's recommendation, with the check's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check's name (its key in `[policies.NAME.checks]`).
    pub check: String,
    /// The strategy it runs.
    pub strategy: String,
    /// What it recommended.
    #[serde(flatten)]
    pub recommendation: Recommendation,
    /// The check's own state after this tick (a Lua check's `ctx.state`), restored after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
    /// What a predictive check forecast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::strategy::ForecastRecord>,
}

/// What happened at the end of the tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The count stays as it is.
    Hold,
    /// The target was told to run `to` replicas and accepted.
    Scaled {
        /// Replicas before.
        from: u32,
        /// Replicas asked for.
        to: u32,
    },
    /// The policy is in dry-run: it would have scaled, and did not.
    DryRun {
        /// Replicas now.
        from: u32,
        /// Replicas it would have asked for.
        to: u32,
    },
    /// The tick decided nothing (target status unknown, for example).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The target was not asked: it is backing off after failures, or its circuit is open.
    Deferred {
        /// Replicas now.
        from: u32,
        /// Replicas it would have asked for.
        to: u32,
        /// Why it was not asked.
        reason: String,
    },
    /// The target refused or could not be reached.
    Failed {
        /// Replicas before.
        from: u32,
        /// Replicas asked for.
        to: u32,
        /// The target's error.
        error: String,
        /// The count actually reached, when part of the change happened.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reached: Option<u32>,
    },
}

impl Outcome {
    /// The change the target actually made: a full scale, or the part of a
    /// failed one that happened.
    pub fn change(&self) -> Option<(u32, u32)> {
        match *self {
            Outcome::Scaled { from, to } => Some((from, to)),
            Outcome::Failed { from, reached: Some(r), .. } if r != from => Some((from, r)),
            _ => None,
        }
    }

    /// A short word for the outcome ("hold", "scaled", ...), as stored and filtered on.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Hold => "hold",
            Outcome::Scaled { .. } => "scaled",
            Outcome::DryRun { .. } => "dry_run",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// How an actuation went at the wire level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Actuation {
    /// The idempotency key sent with every request of this actuation.
    pub key: String,
    /// Requests made, retries included.
    pub attempts: u32,
    /// What the target said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The record of one tick of one policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The policy.
    pub policy: String,
    /// The tick's time.
    pub at: Timestamp,
    /// Replicas the target reported (or Moontide tracked) at the start of the tick.
    pub current: u32,
    /// Replicas ready to serve.
    pub ready: u32,
    /// Every metric reading of the tick.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// Every check's recommendation.
    #[serde(default)]
    pub checks: Vec<CheckOutcome>,
    /// The combined recommendation before guards (safest wins).
    #[serde(default)]
    pub recommended: Option<u32>,
    /// What each guard changed, in the order applied.
    #[serde(default)]
    pub guards: Vec<GuardEffect>,
    /// The count after the guards.
    pub desired: u32,
    /// What happened.
    pub outcome: Outcome,
    /// How the actuation went, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actuation: Option<Actuation>,
    /// One line a person can read.
    pub reason: String,
}

impl Decision {
    /// A decision for a tick that decided nothing.
    pub fn skipped(policy: &str, at: Timestamp, current: u32, ready: u32, why: impl Into<String>) -> Self {
        let why = why.into();
        Decision {
            policy: policy.into(),
            at,
            current,
            ready,
            inputs: Vec::new(),
            checks: Vec::new(),
            recommended: None,
            guards: Vec::new(),
            desired: current,
            reason: format!("skipped: {why}"),
            outcome: Outcome::Skipped { reason: why },
            actuation: None,
        }
    }

    /// The decision an evaluation leads to, before actuation: outcome `Hold`
    /// (the caller sets what actuation did) and no reason yet.
    pub fn from_evaluation(policy: &str, obs: &Observation<'_>, inputs: Vec<Input>, eval: Evaluation) -> Self {
        Decision {
            policy: policy.into(),
            at: obs.now,
            current: obs.current,
            ready: obs.ready,
            inputs,
            checks: eval.checks,
            recommended: Some(eval.recommended),
            guards: eval.guards,
            desired: eval.desired,
            outcome: Outcome::Hold,
            actuation: None,
            reason: String::new(),
        }
    }

    /// Whether any check could not read its data.
    pub fn data_error(&self) -> bool {
        self.checks.iter().any(|c| c.recommendation.error.is_some())
    }

    /// The value the stabilization window remembers for this tick: the
    /// recommendation after the on-error guard.
    pub fn window_value(&self) -> Option<u32> {
        self.guards.iter().find(|g| g.guard == GuardKind::OnError).map(|g| g.after).or(self.recommended)
    }

    /// Builds the one-line reason from the checks, guards and outcome.
    pub fn summarize(&mut self) {
        let head = match &self.outcome {
            Outcome::Hold => format!("hold at {}", self.current),
            Outcome::Scaled { from, to } => format!("scaled {from} → {to}"),
            Outcome::DryRun { from, to } => format!("dry-run: would scale {from} → {to}"),
            Outcome::Deferred { from, to, reason } => format!("deferred {from} → {to}: {reason}"),
            Outcome::Skipped { reason } => format!("skipped: {reason}"),
            Outcome::Failed { from, to, error, reached: Some(r) } => {
                format!("scale {from} → {to} failed at {r}: {error}")
            }
            Outcome::Failed { from, to, error, .. } => format!("scale {from} → {to} failed: {error}"),
        };
        let mut parts = vec![head];
        for c in &self.checks {
            parts.push(format!("{}: {}", c.check, c.recommendation.reason));
        }
        for g in &self.guards {
            if g.guard != GuardKind::DryRun {
                parts.push(format!("{}: {}", g.guard.name(), g.note));
            }
        }
        self.reason = parts.join("; ");
    }
}
