//! What an owned policy shares with the other instances of a cluster (see
//! `crate::cluster`): alone, a policy has none of this.

use crate::store::Pending;
use moontide_core::Decision;
use moontide_lua::script::BoxFuture;
use std::time::Duration;

/// A policy's ownership in a cluster, with its fencing token.
pub trait Shared: Send + Sync {
    /// The fencing token: grows with each new owner.
    fn token(&self) -> i64;
    /// Confirms, right before an actuation, that this instance still owns the policy.
    fn confirm(&self) -> BoxFuture<Result<(), String>>;
    /// Shares a decision; shared decisions older than `keep` may be dropped.
    fn record(&self, d: Decision, keep: Duration) -> BoxFuture<Result<(), String>>;
    /// Shares a check's state.
    fn save_state(&self, check: String, state: String) -> BoxFuture<Result<(), String>>;
    /// Shares an actuation about to start.
    fn begin_actuation(&self, p: Pending) -> BoxFuture<Result<(), String>>;
    /// Clears the shared pending actuation.
    fn end_actuation(&self) -> BoxFuture<Result<(), String>>;
}

/// Where a cluster keeps what operators set (pause, hold, dry-run), so that
/// a change made through any instance's API reaches the policy's owner.
pub trait SharedControls: Send + Sync {
    /// Reads what operators set on `policy` from the cluster and takes it
    /// into the policy's control; returns the revision a change starts from.
    fn refresh(&self, policy: String) -> BoxFuture<Result<i64, String>>;
    /// Shares `state` as the policy's settings if nobody changed them since
    /// `revision`: `Ok(false)` when someone did (their settings are taken instead).
    fn publish(
        &self,
        policy: String,
        state: super::control::OperatorState,
        revision: i64,
    ) -> BoxFuture<Result<bool, String>>;
}
