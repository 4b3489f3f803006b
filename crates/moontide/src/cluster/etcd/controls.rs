//! What operators set (pause, hold, dry-run), shared through etcd under
//! `PREFIX/controls/POLICY`. A change made through any instance's API is
//! written there; every instance takes the newest value (by etcd revision)
//! into the policy's control and its own store before each ownership round,
//! so the owner's ticks follow it wherever the request landed, and a new
//! owner starts from it.

use super::{Cluster, timed};
use crate::engine::control::OperatorState;
use crate::engine::shared::SharedControls;
use etcd_client::GetOptions;
use moontide_lua::script::BoxFuture;
use std::sync::Arc;

impl Cluster {
    /// Takes what operators set on `policy`, as of etcd revision `rev`,
    /// unless something newer was taken already. Returns whether it changed anything.
    fn adopt(&self, policy: &str, rev: i64, state: OperatorState) -> bool {
        // a policy another instance's config has and this one's lacks is not ours to follow
        let Some(control) = self.controls.get(policy) else { return false };
        let mut seen = self.controls_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(policy).is_some_and(|s| *s >= rev) {
            return false;
        }
        seen.insert(policy.to_string(), rev);
        if control.operator() == state {
            return false;
        }
        let now = self.clock.now();
        // the store first: a policy taken over meanwhile is restored from it
        let saved = serde_json::to_string(&state).map_err(|e| e.to_string());
        if let Err(e) = saved.and_then(|s| self.store.save_control(policy, now, &s).map_err(|e| e.to_string())) {
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
            let Some(policy) = kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix)) else { continue };
            match serde_json::from_slice::<OperatorState>(kv.value()) {
                Ok(state) => {
                    self.adopt(policy, kv.mod_revision(), state);
                }
                Err(e) => {
                    let mut seen = self.controls_seen.lock().unwrap_or_else(|p| p.into_inner());
                    // said once per value, not every round
                    if seen.insert(policy.to_string(), kv.mod_revision()) != Some(kv.mod_revision()) {
                        tracing::warn!(policy = %policy, "ignoring unreadable operator settings in etcd: {e}");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Shares operators' changes through the cluster this instance belongs to.
pub struct ControlSharing(pub Arc<Cluster>);

impl SharedControls for ControlSharing {
    fn publish(&self, policy: String, state: OperatorState) -> BoxFuture<Result<(), String>> {
        let cluster = self.0.clone();
        Box::pin(async move {
            let json = serde_json::to_string(&state).map_err(|e| e.to_string())?;
            let mut c = cluster.client.clone();
            let key = cluster.key(&["controls", &policy]);
            let resp = timed("share what the operator set", c.put(key, json, None)).await?;
            // a round that read the older value while this was in flight must not win
            if let Some(h) = resp.header() {
                cluster.adopt(&policy, h.revision(), state);
            }
            Ok(())
        })
    }
}
