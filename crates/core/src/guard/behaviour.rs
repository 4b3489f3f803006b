//! The guard settings of a policy (`[policies.NAME.behaviour]`) and their defaults.

use super::budget::Budget;
use crate::duration::{serde_text, serde_text_opt};
use crate::sanity::{Sanity, SanityConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A limit on how much the count may change within a sliding period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeLimit {
    /// At most this many replicas per period.
    #[serde(default)]
    pub pods: Option<u32>,
    /// At most this percentage of the count at the start of the period.
    #[serde(default)]
    pub percent: Option<u32>,
    /// The sliding period.
    #[serde(with = "serde_text")]
    pub period: Duration,
}

/// Which of several change limits wins.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The limit that allows the largest change (HPA's default).
    #[default]
    Max,
    /// The limit that allows the smallest change.
    Min,
    /// No change in this direction at all.
    Disabled,
}

/// Settings for one direction as written in config; unset fields take that direction's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    /// Stabilization window.
    #[serde(default, with = "serde_text_opt")]
    pub stabilization: Option<Duration>,
    /// Cooldown after a scale action.
    #[serde(default, with = "serde_text_opt")]
    pub cooldown: Option<Duration>,
    /// Change limits per period.
    #[serde(default)]
    pub limits: Option<Vec<ChangeLimit>>,
    /// Which limit wins.
    #[serde(default)]
    pub select: Option<Select>,
}

/// What to do when a check cannot read its data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnError {
    /// After `after` ticks in a row in which every check failed, run at least this many replicas.
    #[serde(default)]
    pub fallback: Option<u32>,
    /// Consecutive failing ticks before the fallback applies (default 1).
    #[serde(default)]
    pub after: Option<u32>,
}

/// `[policies.NAME.behaviour]` as written in config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourConfig {
    /// Scale-up settings.
    #[serde(default)]
    pub scale_up: DirectionConfig,
    /// Scale-down settings.
    #[serde(default)]
    pub scale_down: DirectionConfig,
    /// Data-error handling.
    #[serde(default)]
    pub on_error: OnError,
    /// Decide and record, never actuate.
    #[serde(default)]
    pub dry_run: bool,
    /// A ceiling on spend that caps scale-up.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Hold back a reading implausibly far from the metric's recent series.
    #[serde(default)]
    pub sanity: Option<SanityConfig>,
}

/// One direction's settings with defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    /// Stabilization window (up: lowest recommendation in it; down: highest).
    pub stabilization: Duration,
    /// Time after a scale action before another in this direction.
    pub cooldown: Duration,
    /// Change limits per period.
    pub limits: Vec<ChangeLimit>,
    /// Which limit wins.
    pub select: Select,
}

/// A policy's guard settings with defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Behaviour {
    /// Scale-up settings.
    pub scale_up: Direction,
    /// Scale-down settings.
    pub scale_down: Direction,
    /// Fallback count when all data fails.
    pub fallback: Option<u32>,
    /// Consecutive failing ticks before the fallback applies.
    pub fallback_after: u32,
    /// Decide and record, never actuate.
    pub dry_run: bool,
    /// The policy's own budget.
    pub budget: Option<Budget>,
    /// Whether a global budget covers the policy too (it then keeps a day of spend).
    pub shared_budget: bool,
    /// The metric sanity check, when on.
    pub sanity: Option<Sanity>,
}

fn limit(pods: Option<u32>, percent: Option<u32>, secs: u64) -> ChangeLimit {
    ChangeLimit { pods, percent, period: Duration::from_secs(secs) }
}

impl Default for Behaviour {
    fn default() -> Self {
        BehaviourConfig::default().resolve()
    }
}

impl BehaviourConfig {
    /// Fills unset fields with the defaults, which are Kubernetes HPA's:
    /// up: no stabilization, at most max(4 pods, 100 %) per 15 s;
    /// down: 300 s stabilization, at most 100 % per 15 s; no cooldowns.
    pub fn resolve(&self) -> Behaviour {
        let up = &self.scale_up;
        let down = &self.scale_down;
        Behaviour {
            scale_up: Direction {
                stabilization: up.stabilization.unwrap_or(Duration::ZERO),
                cooldown: up.cooldown.unwrap_or(Duration::ZERO),
                limits: up.limits.clone().unwrap_or_else(|| vec![limit(Some(4), None, 15), limit(None, Some(100), 15)]),
                select: up.select.unwrap_or_default(),
            },
            scale_down: Direction {
                stabilization: down.stabilization.unwrap_or(Duration::from_secs(300)),
                cooldown: down.cooldown.unwrap_or(Duration::ZERO),
                limits: down.limits.clone().unwrap_or_else(|| vec![limit(None, Some(100), 15)]),
                select: down.select.unwrap_or_default(),
            },
            fallback: self.on_error.fallback,
            fallback_after: self.on_error.after.unwrap_or(1),
            dry_run: self.dry_run,
            budget: self.budget.clone(),
            shared_budget: false,
            sanity: self.sanity.as_ref().map(SanityConfig::resolve),
        }
    }

    /// Problems with the settings, each naming the field.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (dir, d) in [("scale_up", &self.scale_up), ("scale_down", &self.scale_down)] {
            for (i, l) in d.limits.iter().flatten().enumerate() {
                let at = format!("behaviour.{dir}.limits[{i}]");
                match (l.pods, l.percent) {
                    (Some(_), Some(_)) | (None, None) => {
                        errs.push(format!("{at}: give exactly one of `pods` or `percent`"))
                    }
                    (Some(0), _) | (_, Some(0)) => errs.push(format!("{at}: the limit must be at least 1")),
                    _ => {}
                }
                if dir == "scale_down" && l.percent.is_some_and(|p| p > 100) {
                    errs.push(format!("{at}: `percent` cannot exceed 100 when scaling down"));
                }
                if l.period.is_zero() {
                    errs.push(format!("{at}: `period` must be longer than 0s"));
                }
            }
        }
        if let Some(b) = &self.budget {
            errs.extend(b.validate("behaviour.budget", false));
        }
        if let Some(s) = &self.sanity {
            errs.extend(s.validate("behaviour.sanity"));
        }
        if self.on_error.after == Some(0) {
            errs.push("behaviour.on_error.after: must be at least 1".into());
        }
        errs
    }
}
