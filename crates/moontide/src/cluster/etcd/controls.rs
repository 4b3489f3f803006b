//! What operators set (pause, hold, dry-run), shared through etcd under
//! `PREFIX/controls/POLICY`. A change made through any instance's API starts
//! from the value read there and is written back only if nobody changed it
//! meanwhile (a compare on the key's revision), so concurrent changes through
//! two instances never silently undo each other. Every instance takes the
//! newest value into the policy's control (and its own store, for its next
//! start) after each ownership round, and a new owner reads it before its
//! first tick.

use super::{Cluster, timed};
use crate::engine::control::OperatorState;
use crate::engine::shared::SharedControls;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use moontide_lua::script::BoxFuture;
use std::sync::Arc;

impl Cluster {
    /// Takes what operators set on `policy`, as of etcd revision `rev`,
    /// unless something newer was taken already (or, without `again`, that
    /// same revision: `again` puts it back over a local change that lost).
    /// Returns whether it changed anything.
    fn adopt(&self, policy: &str, rev: i64, state: OperatorState, again: bool) -> bool {
        // a policy another instance's config has and this one's lacks is not ours to follow
        let Some(control) = self.controls.get(policy) else { return false };
        let mut seen = self.controls_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(policy).is_some_and(|s| *s > rev || (*s == rev && !again)) {
            return false;
        }
        seen.insert(policy.to_string(), rev);
        if control.operator() == state {
            return false;
        }
        let now = self.clock.now();
        if let Err(e) = state.save(&self.store, policy, now) {
            tracing::warn!(policy = %policy, "cannot save what an operator set: {e}");
        }
        tracing::info!(policy = %policy, paused = state.paused.is_some(), hold = state.hold.is_some(),
            dry_run = ?state.dry_run, "took what an operator set from the cluster");
        control.restore(state, now);
        control.wake.notify_one();
        true
    }

    /// Reads what operators set on every policy and takes what is new.
    pub(super) async fn sync_controls(&self) -> Result<(), String> {
        let prefix = self.key(&["controls", ""]);
        let mut c = self.client.clone();
        let resp = timed("read controls", c.get(prefix.clone(), Some(GetOptions::new().with_prefix()))).await?;
        for kv in resp.kvs() {
            if let Some(policy) = kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix)) {
                self.take_kv(policy, kv.mod_revision(), kv.value(), false);
            }
        }
        Ok(())
    }

    /// Reads what operators set on one policy and takes it; returns the
    /// key's revision (0 when nothing was ever set).
    pub(super) async fn refresh_controls(&self, policy: &str) -> Result<i64, String> {
        let mut c = self.client.clone();
        let resp = timed("read controls", c.get(self.key(&["controls", policy]), None)).await?;
        Ok(resp.kvs().first().map(|kv| self.take_kv(policy, kv.mod_revision(), kv.value(), false)).unwrap_or(0))
    }

    /// Takes a value read from etcd ([`Cluster::adopt`]); an unreadable one is said once and skipped. Returns `rev`.
    fn take_kv(&self, policy: &str, rev: i64, value: &[u8], again: bool) -> i64 {
        match serde_json::from_slice::<OperatorState>(value) {
            Ok(state) => {
                self.adopt(policy, rev, state, again);
            }
            Err(e) => {
                let mut seen = self.controls_seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.insert(policy.to_string(), rev) != Some(rev) {
                    tracing::warn!(policy = %policy, "ignoring unreadable operator settings in etcd: {e}");
                }
            }
        }
        rev
    }
}

/// Shares operators' changes through the cluster this instance belongs to.
pub struct ControlSharing(pub Arc<Cluster>);

impl SharedControls for ControlSharing {
    fn refresh(&self, policy: String) -> BoxFuture<Result<i64, String>> {
        let cluster = self.0.clone();
        Box::pin(async move { cluster.refresh_controls(&policy).await })
    }

    fn publish(&self, policy: String, state: OperatorState, revision: i64) -> BoxFuture<Result<bool, String>> {
        let cluster = self.0.clone();
        Box::pin(async move {
            let json = serde_json::to_string(&state).map_err(|e| e.to_string())?;
            let mut c = cluster.client.clone();
            let key = cluster.key(&["controls", &policy]);
            // a key never written compares as revision 0
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
                .and_then([TxnOp::put(key.clone(), json, None)])
                .or_else([TxnOp::get(key, None)]);
            let resp = timed("share what the operator set", c.txn(txn)).await?;
            if resp.succeeded() {
                if let Some(h) = resp.header() {
                    cluster.adopt(&policy, h.revision(), state, false);
                }
                return Ok(true);
            }
            // someone changed them first: theirs stand, here too
            for r in resp.op_responses() {
                if let TxnOpResponse::Get(g) = r
                    && let Some(kv) = g.kvs().first()
                {
                    cluster.take_kv(&policy, kv.mod_revision(), kv.value(), true);
                }
            }
            Ok(false)
        })
    }
}
