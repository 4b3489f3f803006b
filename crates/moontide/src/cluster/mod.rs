//! High availability (`[cluster]`): several `moontide run` instances share one
//! config and an etcd cluster, and each policy is owned by exactly one live
//! instance.
//!
//! - Every instance holds an etcd lease (`lease_ttl`, kept alive at a third
//!   of it) and registers under `PREFIX/members/INSTANCE` with it.
//! - A policy's owner holds `PREFIX/owners/POLICY`, created with its lease in
//!   a transaction that succeeds only if the key does not exist. The key's
//!   create revision is the ownership's **fencing token**: it grows with every
//!   new owner. Policies are spread by rendezvous hashing over the live
//!   members; an owner hands back a policy another member is preferred for.
//! - When an owner dies or is cut off, its lease expires after `lease_ttl` and
//!   its keys vanish; the preferred survivor takes the policy at its next
//!   round (a quarter of the TTL) and ticks at once.
//! - Only the owner actuates, and it re-checks ownership (its local lease
//!   deadline, then a transaction comparing the token) immediately before
//!   every actuation; the token also travels with the request (webhook:
//!   `Moontide-Fencing-Token`), so a receiver can refuse an older owner.
//! - Decisions, Lua check state and pending actuations are written to etcd
//!   (`PREFIX/decisions/POLICY/…`, `PREFIX/state/POLICY/CHECK`,
//!   `PREFIX/pending/POLICY`), each write guarded by the owner's token. A new
//!   owner imports them into its local SQLite store before its first tick, so
//!   windows, cooldowns, Lua state and a cut-short actuation carry over. The
//!   SQLite store stays each instance's own record and the API's source.
//! - What operators set through any instance's API is written to
//!   `PREFIX/controls/POLICY` if nobody changed it meanwhile (not guarded by
//!   ownership: any instance may write it); every instance takes the newest
//!   value into the policy's control after each round (`etcd/controls.rs`).
//! - A script-mode policy's script runs on the owner only (`drive_script`).
//!
//! Without `[cluster]` Moontide runs alone on its SQLite store and needs no etcd.

#[cfg(feature = "etcd")]
mod etcd;

#[cfg(feature = "etcd")]
pub use etcd::{Cluster, ControlSharing, Ownership, drive, drive_script};

use moontide_core::duration::{format as fmt_d, serde_text};
use serde::Deserialize;
use std::time::Duration;

/// `[cluster]` as written in config.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd endpoints, like `["http://127.0.0.1:2379"]`.
    pub etcd: Vec<String>,
    /// Prefix of every key Moontide writes (default `/moontide`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// This instance's name (default: `$MOONTIDE_INSTANCE`, else HOSTNAME-PID).
    #[serde(default)]
    pub instance: Option<String>,
    /// How long an instance that stops renewing keeps its policies (default 10s, whole seconds, at least 2s).
    #[serde(default = "default_ttl", with = "serde_text")]
    pub lease_ttl: Duration,
    /// etcd user, when etcd has authentication on.
    #[serde(default)]
    pub user: Option<String>,
    /// Environment variable holding the etcd user's password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the etcd user's password.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed etcd's certificate (needed for `https://` endpoints).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM file of this instance's client certificate, when etcd asks for one (`--client-cert-auth`).
    #[serde(default)]
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
}

fn default_prefix() -> String {
    "/moontide".into()
}

fn default_ttl() -> Duration {
    Duration::from_secs(10)
}

impl ClusterConfig {
    /// Problems with the settings, each naming the field.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.etcd.is_empty() {
            errs.push("cluster.etcd: list at least one endpoint, like \"http://127.0.0.1:2379\"".into());
        }
        for (i, url) in self.etcd.iter().enumerate() {
            if let Some(e) = crate::http::check_url_credentials(
                &format!("cluster.etcd[{i}]"),
                url,
                "`user` and password_env or password_file",
            ) {
                errs.push(e);
            }
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            errs.push(format!("cluster.prefix: `{}` must start with `/` and not end with one", self.prefix));
        }
        if self.lease_ttl < Duration::from_secs(2) || self.lease_ttl.subsec_nanos() != 0 {
            errs.push(format!("cluster.lease_ttl: {} must be whole seconds and at least 2s", fmt_d(self.lease_ttl)));
        }
        if self.instance.as_deref().is_some_and(|i| i.is_empty() || i.contains('/')) {
            errs.push("cluster.instance: must be non-empty and hold no `/`".into());
        }
        let https = self.etcd.iter().filter(|u| u.starts_with("https://")).count();
        if https > 0 && https < self.etcd.len() {
            errs.push("cluster.etcd: use https:// for every endpoint or for none".into());
        }
        if https > 0 && self.ca_file.is_none() {
            errs.push("cluster.ca_file: https:// endpoints need the CA that signed etcd's certificate".into());
        }
        if https == 0 && (self.ca_file.is_some() || self.cert_file.is_some()) {
            errs.push("cluster.etcd: TLS files are given but the endpoints are http://; use https://".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            errs.push("cluster.cert_file: give cert_file and key_file together".into());
        }
        if self.user.is_none() && (self.password_env.is_some() || self.password_file.is_some()) {
            errs.push("cluster.user: a password is given but no user".into());
        }
        if !cfg!(feature = "etcd") {
            errs.push(
                "cluster: this moontide was built without the `etcd` feature (cargo build --features etcd)".into(),
            );
        }
        errs
    }

    /// This instance's name.
    pub fn instance_name(&self) -> String {
        if let Some(i) = &self.instance {
            return i.clone();
        }
        if let Ok(i) = std::env::var("MOONTIDE_INSTANCE")
            && !i.is_empty()
        {
            return i.replace('/', "-");
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "moontide".into());
        format!("{}-{}", host.replace('/', "-"), std::process::id())
    }
}

/// The member a policy prefers among `members`: rendezvous (highest random
/// weight) hashing, so each member's share moves only when members come and go.
pub fn preferred<'a>(policy: &str, members: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    use sha2::{Digest, Sha256};
    members.into_iter().max_by_key(|m| {
        let h = Sha256::new().chain_update(m.as_bytes()).chain_update([0]).chain_update(policy.as_bytes()).finalize();
        (u64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8])), *m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_and_moves_only_what_it_must() {
        let policies: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
        let three = ["a", "b", "c"];
        let owner3: Vec<&str> = policies.iter().map(|p| preferred(p, three).unwrap()).collect();
        for m in three {
            let n = owner3.iter().filter(|o| **o == m).count();
            assert!((60..=140).contains(&n), "{m} owns {n} of 300");
        }
        // c leaves: only c's policies move
        let owner2: Vec<&str> = policies.iter().map(|p| preferred(p, ["a", "b"]).unwrap()).collect();
        for (before, after) in owner3.iter().zip(&owner2) {
            if *before != "c" {
                assert_eq!(before, after);
            }
        }
        assert_eq!(preferred("p", std::iter::empty::<&str>()), None);
    }

    #[test]
    fn validation_names_fields() {
        let c: ClusterConfig = toml::from_str("etcd = []\nprefix = \"x/\"\nlease_ttl = \"1500ms\"").unwrap();
        let errs = c.validate();
        assert!(errs.iter().any(|e| e.starts_with("cluster.etcd:")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("cluster.prefix:")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("cluster.lease_ttl:")), "{errs:?}");
        let ok: ClusterConfig = toml::from_str("etcd = [\"http://127.0.0.1:2379\"]").unwrap();
        assert_eq!(ok.lease_ttl, Duration::from_secs(10));
        assert_eq!(ok.prefix, "/moontide");
        assert_eq!(ok.validate().is_empty(), cfg!(feature = "etcd"));
    }
}
