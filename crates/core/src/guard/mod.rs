//! Guards: what no strategy can bypass. They run in this fixed order, and
//! each one that changes the count says so in the decision:
//!
//! 1. `on_error`: a check failed to read its data → never below the current
//!    count; after `after` ticks in which every check failed, at least `fallback`.
//! 2. `stabilization`: scale up only to the lowest recommendation of the
//!    up-window, down only to the highest of the down-window (HPA's rule).
//! 3. `rate_limit`: at most so many replicas (or percent) per period, up and
//!    down separately, counting the changes already made in the period.
//! 4. `cooldown`: no scale-up within `scale_up.cooldown` of the last scale-up;
//!    no scale-down within `scale_down.cooldown` of the last scale action.
//! 5. `budget`: a spent budget (the policy's or the global one) caps scale-up.
//! 6. `bounds`: the count is clamped to [min, max], always, last.
//! 7. `dry_run`: the decision is recorded but not actuated.

mod behaviour;
mod budget;

pub use behaviour::{Behaviour, BehaviourConfig, ChangeLimit, Direction, DirectionConfig, OnError, Select};
pub use budget::{BUDGET_DAY, Budget, BudgetCap, Spend};

use crate::duration::format as fmt_d;
use crate::history::PolicyHistory;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The guards, in the order they run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// Missing or failed data.
    OnError,
    /// Stabilization windows.
    Stabilization,
    /// Change per period.
    RateLimit,
    /// Cooldowns after scale actions.
    Cooldown,
    /// Spend ceilings.
    Budget,
    /// min / max.
    Bounds,
    /// Decide, never actuate.
    DryRun,
    /// An operator's pause or override (applied by the engine after the guards).
    Operator,
}

impl GuardKind {
    /// The name used in config and decision records.
    pub fn name(self) -> &'static str {
        match self {
            GuardKind::OnError => "on_error",
            GuardKind::Stabilization => "stabilization",
            GuardKind::RateLimit => "rate_limit",
            GuardKind::Cooldown => "cooldown",
            GuardKind::Budget => "budget",
            GuardKind::Bounds => "bounds",
            GuardKind::DryRun => "dry_run",
            GuardKind::Operator => "operator",
        }
    }
}

/// What one guard did to the count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardEffect {
    /// Which guard.
    pub guard: GuardKind,
    /// The count it was given.
    pub before: u32,
    /// The count it passed on.
    pub after: u32,
    /// Why.
    pub note: String,
}

/// Everything the guards look at besides the recommendation.
#[derive(Clone, Copy, Debug)]
pub struct GuardContext<'a> {
    /// The tick's time.
    pub now: Timestamp,
    /// The current count.
    pub current: u32,
    /// Lower bound.
    pub min: u32,
    /// Upper bound.
    pub max: u32,
    /// The data errors of this tick's checks, if any.
    pub data_error: Option<&'a str>,
    /// True when every check failed and none recommended anything.
    pub all_failed: bool,
    /// The policy's guard settings.
    pub behaviour: &'a Behaviour,
    /// The policy's memory of recent ticks.
    pub history: &'a PolicyHistory,
    /// The ceilings budgets put on the count this tick.
    pub budgets: &'a [BudgetCap],
}

/// Runs all guards on `recommended`; returns the final count and every change made.
pub fn apply(ctx: &GuardContext<'_>, recommended: u32) -> (u32, Vec<GuardEffect>) {
    let mut effects = Vec::new();
    let mut n = recommended;
    let mut step = |guard: GuardKind, n: &mut u32, new: u32, note: String| {
        if new != *n || guard == GuardKind::OnError {
            effects.push(GuardEffect { guard, before: *n, after: new, note });
            *n = new;
        }
    };

    if let Some(err) = ctx.data_error {
        let b = ctx.behaviour;
        let streak = ctx.history.error_streak().saturating_add(1);
        let mut new = n;
        let mut notes = Vec::new();
        if let Some(f) = b.fallback.filter(|_| ctx.all_failed && streak >= b.fallback_after)
            && new < f
        {
            new = f;
            notes.push(format!("all checks failed {streak} tick(s) in a row: fallback to {f}"));
        }
        if new < ctx.current {
            new = ctx.current;
            notes.push(format!("scale-down blocked by a data error ({err})"));
        }
        if notes.is_empty() {
            notes.push(format!("data error ({err}); no scale-down"));
        }
        step(GuardKind::OnError, &mut n, new, notes.join("; "));
    }

    let (stable, note) = stabilize(ctx, n);
    step(GuardKind::Stabilization, &mut n, stable, note);

    let (limited, note) = rate_limit(ctx, n);
    step(GuardKind::RateLimit, &mut n, limited, note);

    let (cooled, note) = cooldown(ctx, n);
    step(GuardKind::Cooldown, &mut n, cooled, note);

    let (afforded, note) = budget::limit(ctx.current, n, ctx.budgets);
    step(GuardKind::Budget, &mut n, afforded, note);

    // max wins over min should a caller ever pass min > max (config validation rejects it)
    let bounded = n.max(ctx.min).min(ctx.max);
    let note = if bounded > n { format!("raised to min {}", ctx.min) } else { format!("capped at max {}", ctx.max) };
    step(GuardKind::Bounds, &mut n, bounded, note);

    if ctx.behaviour.dry_run && n != ctx.current {
        effects.push(GuardEffect {
            guard: GuardKind::DryRun,
            before: n,
            after: n,
            note: format!("dry-run: would scale {} → {n}", ctx.current),
        });
    }
    (n, effects)
}

/// HPA's stabilization: within the up-window take the lowest recommendation,
/// within the down-window the highest, and move from `current` only as far as both allow.
fn stabilize(ctx: &GuardContext<'_>, n: u32) -> (u32, String) {
    let up = &ctx.behaviour.scale_up;
    let down = &ctx.behaviour.scale_down;
    let up_cut = ctx.now.minus(up.stabilization);
    let down_cut = ctx.now.minus(down.stabilization);
    let (mut up_rec, mut down_rec) = (n, n);
    for &(at, v) in ctx.history.recommendations() {
        if at > up_cut && !up.stabilization.is_zero() {
            up_rec = up_rec.min(v);
        }
        if at > down_cut && !down.stabilization.is_zero() {
            down_rec = down_rec.max(v);
        }
    }
    let result = ctx.current.max(up_rec).min(down_rec);
    let note = if result > n {
        format!("highest recommendation in the last {} is {down_rec}", fmt_d(down.stabilization))
    } else {
        format!("lowest recommendation in the last {} is {up_rec}", fmt_d(up.stabilization))
    };
    (result, note)
}

/// HPA's behaviour policies: the change allowed within each sliding period,
/// counting changes already made in it.
fn rate_limit(ctx: &GuardContext<'_>, n: u32) -> (u32, String) {
    let cur = ctx.current as i64;
    if n > ctx.current {
        let dir = &ctx.behaviour.scale_up;
        let limit = match dir.select {
            Select::Disabled => cur,
            select => {
                let proposals = dir.limits.iter().map(|l| {
                    let cut = ctx.now.minus(l.period);
                    let start = period_start(ctx, cut);
                    match (l.pods, l.percent) {
                        (Some(p), _) => start + p as i64,
                        // at least one more: a percent of zero replicas would keep a fleet at zero for good
                        (_, Some(pc)) => ((start as f64 * (1.0 + pc as f64 / 100.0)).ceil() as i64).max(start + 1),
                        _ => i64::MAX,
                    }
                });
                let chosen = if select == Select::Max { proposals.max() } else { proposals.min() };
                chosen.unwrap_or(i64::MAX).max(cur)
            }
        };
        let allowed = (n as i64).min(limit) as u32;
        (allowed, format!("scale-up limited to {allowed} by the per-period limits"))
    } else if n < ctx.current {
        let dir = &ctx.behaviour.scale_down;
        let limit = match dir.select {
            Select::Disabled => cur,
            select => {
                let proposals = dir.limits.iter().map(|l| {
                    let cut = ctx.now.minus(l.period);
                    let start = period_start(ctx, cut);
                    match (l.pods, l.percent) {
                        (Some(p), _) => start - p as i64,
                        (_, Some(pc)) => (start as f64 * (1.0 - pc as f64 / 100.0)) as i64,
                        _ => i64::MIN,
                    }
                });
                // "max" allows the largest change: the lowest floor.
                let chosen = if select == Select::Max { proposals.min() } else { proposals.max() };
                chosen.unwrap_or(i64::MIN).min(cur)
            }
        };
        let allowed = (n as i64).max(limit).max(0) as u32;
        (allowed, format!("scale-down limited to {allowed} by the per-period limits"))
    } else {
        (n, String::new())
    }
}

/// The count at the start of a limit's period (after `cut`), as HPA counts
/// it: the current count less what was added and plus what was removed
/// since, in either direction.
fn period_start(ctx: &GuardContext<'_>, cut: Timestamp) -> i64 {
    let changed: i64 = ctx.history.actions().filter(|a| a.at > cut).map(|a| a.to as i64 - a.from as i64).sum();
    ctx.current as i64 - changed
}

/// Cooldowns: up after the last scale-up, down after the last action of either kind.
fn cooldown(ctx: &GuardContext<'_>, n: u32) -> (u32, String) {
    let b = ctx.behaviour;
    let (word, dir, last, what) = if n > ctx.current {
        ("scale-up", &b.scale_up, ctx.history.actions().rev().find(|a| a.to > a.from), "last scale-up")
    } else if n < ctx.current {
        ("scale-down", &b.scale_down, ctx.history.actions().next_back(), "last scale action")
    } else {
        return (n, String::new());
    };
    if let Some(a) = last
        && !dir.cooldown.is_zero()
        && ctx.now < a.at.plus(dir.cooldown)
    {
        let left = a.at.plus(dir.cooldown).since(ctx.now);
        let note = format!("{word} cooldown: {what} {} ago, {} left", fmt_d(ctx.now.since(a.at)), fmt_d(left));
        return (ctx.current, note);
    }
    (n, String::new())
}

#[cfg(test)]
mod tests;
