//! The etcd side of [`super`]: the lease, the ownership rounds, the guarded
//! writes of shared state and the import a new owner does.

mod controls;

pub use controls::ControlSharing;

use super::{ClusterConfig, preferred};
use crate::engine::PolicyRuntime;
use crate::engine::control::Control;
use crate::engine::shared::Shared;
use crate::script::ScriptRun;
use crate::store::{Pending, Store};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp,
    TxnOpResponse,
};
use moontide_core::{Clock, Decision, Timestamp};
use moontide_lua::script::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest wait for one etcd request.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);
/// Most decisions imported per policy on taking it over.
const IMPORT_LIMIT: i64 = 50_000;

/// The policies this instance owns, each with its fencing token.
pub type Owned = BTreeMap<String, i64>;

/// This instance's membership in the cluster.
pub struct Cluster {
    client: Client,
    prefix: String,
    instance: String,
    ttl: Duration,
    lease: AtomicI64,
    /// The lease is surely alive until this instant (last renewal sent + TTL).
    lease_until: Mutex<Instant>,
    policies: Vec<String>,
    owned: watch::Sender<Owned>,
    /// Rounds each policy has been seen without an owner.
    orphaned: Mutex<BTreeMap<String, u32>>,
    /// Decisions shared so far (old ones are pruned every 32nd).
    records: AtomicU64,
    /// Policies whose task stopped ticking after this instance gave them up
    /// (a hand-over deletes the owner key only then, so two owners never overlap).
    idle: Mutex<BTreeSet<String>>,
    /// Each policy's control (what operators set), kept in step with etcd.
    controls: BTreeMap<String, Arc<Control>>,
    /// The local store, where controls taken from etcd are saved too.
    store: Store,
    clock: Arc<dyn Clock>,
    /// The etcd revision of the controls last taken, per policy.
    controls_seen: Mutex<BTreeMap<String, i64>>,
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(ETCD_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("etcd {what}: {e}")),
        Err(_) => Err(format!("etcd {what}: no answer within {}s", ETCD_TIMEOUT.as_secs())),
    }
}

impl Cluster {
    /// Connects, takes a lease and registers this instance. `controls` are the
    /// config's policies (every instance must run the same config); what
    /// operators set on them is kept in step with etcd and saved in `store`.
    pub async fn join(
        cfg: &ClusterConfig,
        controls: Vec<Arc<Control>>,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Cluster>, String> {
        let mut opts = ConnectOptions::new().with_connect_timeout(ETCD_TIMEOUT).with_timeout(ETCD_TIMEOUT);
        if let Some(user) = &cfg.user {
            let password = crate::secret::SecretRef::new(cfg.password_env.clone(), cfg.password_file.clone())
                .load()
                .map_err(|e| format!("cluster: {e}"))?
                .ok_or("cluster.user: give password_env or password_file")?;
            // a token expires (JWT) or is forgotten by a restarted etcd: fetch a new one then
            opts = opts.with_user(user.clone(), password.expose().to_string()).with_auto_token_refresh(true);
        }
        if let Some(ca) = &cfg.ca_file {
            let read = |what: &str, path: &std::path::Path| {
                std::fs::read(path).map_err(|e| format!("cluster.{what}: cannot read {}: {e}", path.display()))
            };
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read("ca_file", ca)?));
            if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
                tls = tls.identity(Identity::from_pem(read("cert_file", cert)?, read("key_file", key)?));
            }
            opts = opts.with_tls(tls);
        }
        let unreachable = |e: String| {
            let hint = if cfg.ca_file.is_some() && cfg.cert_file.is_none() {
                " (if etcd runs with --client-cert-auth, give cluster.cert_file and cluster.key_file)"
            } else {
                ""
            };
            format!("cluster: cannot reach etcd at {}: {e}{hint}", cfg.etcd.join(", "))
        };
        let client = timed("connect", Client::connect(cfg.etcd.clone(), Some(opts))).await.map_err(unreachable)?;
        let cluster = Arc::new(Cluster {
            client,
            prefix: cfg.prefix.clone(),
            instance: cfg.instance_name(),
            ttl: cfg.lease_ttl,
            lease: AtomicI64::new(0),
            lease_until: Mutex::new(Instant::now()),
            policies: controls.iter().map(|c| c.policy.clone()).collect(),
            owned: watch::channel(Owned::new()).0,
            orphaned: Mutex::new(BTreeMap::new()),
            records: AtomicU64::new(0),
            idle: Mutex::new(BTreeSet::new()),
            controls: controls.into_iter().map(|c| (c.policy.clone(), c)).collect(),
            store,
            clock,
            controls_seen: Mutex::new(BTreeMap::new()),
        });
        // the connection is made lazily: the first request is where a refused handshake shows
        cluster.register().await.map_err(unreachable)?;
        tracing::info!(instance = %cluster.instance, ttl = ?cluster.ttl, "joined the cluster");
        Ok(cluster)
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The policies owned now, with their tokens; changes as ownership moves.
    pub fn owned(&self) -> watch::Receiver<Owned> {
        self.owned.subscribe()
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push('/');
            k.push_str(p);
        }
        k
    }

    fn decision_key(&self, policy: &str, at: Timestamp) -> String {
        self.key(&["decisions", policy, &format!("{:020}", at.as_millis().max(0))])
    }

    /// Grants a fresh lease and registers under it (at start, and after the lease was lost).
    async fn register(&self) -> Result<(), String> {
        let sent = Instant::now();
        let mut c = self.client.clone();
        let lease = timed("lease grant", c.lease_grant(self.ttl.as_secs() as i64, None)).await?;
        self.lease.store(lease.id(), Ordering::SeqCst);
        *self.lease_until.lock().unwrap_or_else(|p| p.into_inner()) = sent + self.ttl;
        let member = self.key(&["members", &self.instance]);
        let opts = PutOptions::new().with_lease(lease.id());
        timed("register", c.put(member, self.instance.clone(), Some(opts))).await?;
        Ok(())
    }

    fn lease_alive(&self) -> bool {
        Instant::now() < *self.lease_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the lease alive and runs ownership rounds until `shutdown`; then
    /// revokes the lease, so the other instances take over at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let keep = tokio::spawn(self.clone().keep_alive());
        let round = (self.ttl / 4).max(Duration::from_millis(250));
        let mut every = tokio::time::interval(round);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
                _ = every.tick() => {
                    if let Err(e) = self.round().await {
                        tracing::warn!(instance = %self.instance, "ownership round failed: {e}");
                    }
                    // after the round, so a slow etcd never delays noticing a lost lease
                    if self.lease_alive() && let Err(e) = self.sync_controls().await {
                        tracing::warn!(instance = %self.instance, "cannot read what operators set: {e}");
                    }
                }
            }
        }
        keep.abort();
        self.owned.send_replace(Owned::new());
        let mut c = self.client.clone();
        let lease = self.lease.load(Ordering::SeqCst);
        if let Err(e) = timed("lease revoke", c.lease_revoke(lease)).await {
            tracing::warn!("could not hand back the policies at once ({e}); they move when the lease expires");
        }
    }

    /// Renews the lease at a third of its TTL; takes a new one when it was lost.
    async fn keep_alive(self: Arc<Self>) {
        let every = self.ttl / 3;
        loop {
            let lease = self.lease.load(Ordering::SeqCst);
            let mut c = self.client.clone();
            let (mut keeper, mut stream) = match timed("keep-alive", c.lease_keep_alive(lease)).await {
                Ok(ks) => ks,
                // out of reach past the TTL, the lease is gone (etcd says "lease not found"
                // once it answers again): join again with a new one
                Err(e) if !self.lease_alive() => {
                    tracing::warn!("{e}");
                    self.rejoin().await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            loop {
                let sent = Instant::now();
                let answer = async {
                    keeper.keep_alive().await?;
                    stream.message().await
                };
                match tokio::time::timeout(ETCD_TIMEOUT, answer).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {
                        *self.lease_until.lock().unwrap_or_else(|p| p.into_inner()) = sent + self.ttl;
                    }
                    Ok(Ok(Some(_))) => {
                        self.rejoin().await;
                        break;
                    }
                    // the stream ended, the lease may still hold: a new stream for it
                    Ok(Ok(None)) => {
                        tracing::warn!("etcd keep-alive: the stream ended");
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("etcd keep-alive: {e}");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!("etcd keep-alive: no answer within {}s", ETCD_TIMEOUT.as_secs());
                        break;
                    }
                }
                tokio::time::sleep(every).await;
            }
        }
    }

    /// After the lease was lost: drops what this instance owned and registers
    /// under a new lease (retrying until etcd answers).
    async fn rejoin(&self) {
        tracing::warn!(instance = %self.instance, "the lease expired: every policy this instance owned is gone; joining again");
        self.owned.send_replace(Owned::new());
        while let Err(e) = self.register().await {
            tracing::warn!("{e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// One ownership round: see who is alive and who owns what, take the
    /// policies this instance is preferred for (or that stayed orphaned), hand
    /// back the ones another member is preferred for.
    async fn round(&self) -> Result<(), String> {
        if !self.lease_alive() {
            self.owned.send_replace(Owned::new());
            return Ok(());
        }
        let mut c = self.client.clone();
        let members_prefix = self.key(&["members", ""]);
        let resp = timed("list members", c.get(members_prefix.clone(), Some(GetOptions::new().with_prefix()))).await?;
        let mut members: BTreeSet<String> = resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&members_prefix).map(str::to_string))
            .collect();
        members.insert(self.instance.clone());
        let owners_prefix = self.key(&["owners", ""]);
        let resp = timed("list owners", c.get(owners_prefix.clone(), Some(GetOptions::new().with_prefix()))).await?;
        let owners: BTreeMap<String, (String, i64)> = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let policy = kv.key_str().ok()?.strip_prefix(&owners_prefix)?.to_string();
                Some((policy, (kv.value_str().ok()?.to_string(), kv.create_revision())))
            })
            .collect();
        let mut owned = self.owned.borrow().clone();
        let lease = self.lease.load(Ordering::SeqCst);
        for policy in &self.policies {
            let want = preferred(policy, members.iter().map(String::as_str)) == Some(self.instance.as_str());
            let key = self.key(&["owners", policy]);
            match owners.get(policy) {
                Some((owner, token)) if *owner == self.instance => {
                    self.orphaned.lock().unwrap_or_else(|p| p.into_inner()).remove(policy);
                    if !want {
                        // another live member is preferred: stop ticking, then hand it over
                        owned.remove(policy);
                        if self.idle.lock().unwrap_or_else(|p| p.into_inner()).contains(policy) {
                            let txn = Txn::new()
                                .when([Compare::create_revision(key.clone(), CompareOp::Equal, *token)])
                                .and_then([TxnOp::delete(key, None)]);
                            timed("hand over", c.txn(txn)).await?;
                            // only once it is done: a failed hand-over is tried again next round
                            self.idle.lock().unwrap_or_else(|p| p.into_inner()).remove(policy);
                            tracing::info!(policy = %policy, instance = %self.instance, "handed the policy to its preferred member");
                        }
                    } else {
                        owned.insert(policy.clone(), *token);
                    }
                }
                Some(_) => {
                    self.orphaned.lock().unwrap_or_else(|p| p.into_inner()).remove(policy);
                    owned.remove(policy);
                }
                None => {
                    owned.remove(policy);
                    let rounds = {
                        let mut o = self.orphaned.lock().unwrap_or_else(|p| p.into_inner());
                        let n = o.entry(policy.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    // the preferred member takes it; anyone does after two rounds without
                    if !want && rounds < 3 {
                        continue;
                    }
                    let txn = Txn::new().when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)]).and_then([
                        TxnOp::put(key.clone(), self.instance.clone(), Some(PutOptions::new().with_lease(lease))),
                        TxnOp::get(key, None),
                    ]);
                    let resp = timed("take ownership", c.txn(txn)).await?;
                    if !resp.succeeded() {
                        continue;
                    }
                    let token = resp.op_responses().into_iter().find_map(|r| match r {
                        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.create_revision()),
                        _ => None,
                    });
                    if let Some(token) = token {
                        tracing::info!(policy = %policy, instance = %self.instance, token, "took ownership");
                        owned.insert(policy.clone(), token);
                        self.orphaned.lock().unwrap_or_else(|p| p.into_inner()).remove(policy);
                    }
                }
            }
        }
        self.owned.send_if_modified(|o| {
            let changed = *o != owned;
            *o = owned;
            changed
        });
        Ok(())
    }

    /// The guard every shared write and every actuation goes through: this
    /// instance still holds `policy` with `token`.
    fn owner_guard(&self, policy: &str, token: i64) -> Vec<Compare> {
        let key = self.key(&["owners", policy]);
        vec![
            Compare::create_revision(key.clone(), CompareOp::Equal, token),
            Compare::value(key, CompareOp::Equal, self.instance.clone()),
        ]
    }

    /// The policy's task has stopped ticking (it lost or gave up ownership).
    pub fn idle(&self, policy: &str) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).insert(policy.to_string());
    }

    /// The policy's task is about to tick as owner.
    fn busy(&self, policy: &str) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).remove(policy);
    }

    fn lost(&self, policy: &str, token: i64) {
        self.owned.send_if_modified(|o| {
            if o.get(policy) == Some(&token) {
                o.remove(policy);
                true
            } else {
                false
            }
        });
    }

    /// Confirms, immediately before an actuation, that this instance still
    /// owns `policy` under `token`: its lease has not run out locally, and
    /// etcd agrees. On a loss the policy is dropped from [`Cluster::owned`].
    pub async fn confirm(&self, policy: &str, token: i64) -> Result<(), String> {
        if !self.lease_alive() {
            self.lost(policy, token);
            return Err("this instance's lease may have expired (no renewal within the TTL)".into());
        }
        let mut c = self.client.clone();
        let txn = Txn::new().when(self.owner_guard(policy, token));
        let resp = timed("confirm ownership", c.txn(txn)).await?;
        if !resp.succeeded() {
            self.lost(policy, token);
            return Err(format!("another instance owns the policy now (token {token} is stale)"));
        }
        Ok(())
    }

    async fn guarded_put(&self, policy: &str, token: i64, key: String, value: String) -> Result<(), String> {
        let mut c = self.client.clone();
        let txn = Txn::new().when(self.owner_guard(policy, token)).and_then([TxnOp::put(key, value, None)]);
        let resp = timed("write", c.txn(txn)).await?;
        if !resp.succeeded() {
            self.lost(policy, token);
            return Err("not written: another instance owns the policy now".into());
        }
        Ok(())
    }

    async fn guarded_delete(&self, policy: &str, token: i64, key: String, end: Option<String>) -> Result<(), String> {
        let mut c = self.client.clone();
        let opts = end.map(|e| etcd_client::DeleteOptions::new().with_range(e));
        let txn = Txn::new().when(self.owner_guard(policy, token)).and_then([TxnOp::delete(key, opts)]);
        timed("delete", c.txn(txn)).await.map(|_| ())
    }

    /// Shares a decision; every 32nd also drops shared decisions older than `keep`.
    pub async fn record(&self, token: i64, d: &Decision, keep: Duration) -> Result<(), String> {
        let json = serde_json::to_string(d).map_err(|e| e.to_string())?;
        self.guarded_put(&d.policy, token, self.decision_key(&d.policy, d.at), json).await?;
        if self.records.fetch_add(1, Ordering::Relaxed).is_multiple_of(32) {
            let from = self.key(&["decisions", &d.policy, ""]);
            let until = self.decision_key(&d.policy, d.at.minus(keep));
            self.guarded_delete(&d.policy, token, from, Some(until)).await?;
        }
        Ok(())
    }

    /// Shares a check's state.
    pub async fn save_state(&self, token: i64, policy: &str, check: &str, state: &str) -> Result<(), String> {
        self.guarded_put(policy, token, self.key(&["state", policy, check]), state.to_string()).await
    }

    /// Shares an actuation about to start.
    pub async fn begin_actuation(&self, token: i64, policy: &str, p: &Pending) -> Result<(), String> {
        let v = serde_json::json!({ "at": p.at.as_millis(), "from": p.from, "to": p.to, "key": p.key });
        self.guarded_put(policy, token, self.key(&["pending", policy]), v.to_string()).await?;
        // the last word before the target is told: etcd agreed when it answered, but an answer
        // slower than the lease's time left means another owner may be acting by now
        if !self.lease_alive() {
            self.lost(policy, token);
            return Err("this instance's lease may have expired while etcd answered".into());
        }
        Ok(())
    }

    /// Clears a shared pending actuation.
    pub async fn end_actuation(&self, token: i64, policy: &str) -> Result<(), String> {
        self.guarded_delete(policy, token, self.key(&["pending", policy]), None).await
    }

    /// Copies the policy's shared decisions, check states and pending
    /// actuation into the local store (what is there already is kept), so a
    /// runtime restored from the store carries on where the last owner stopped.
    pub async fn import(&self, policy: &str, store: &Store) -> Result<usize, String> {
        let mut c = self.client.clone();
        let prefix = self.key(&["decisions", policy, ""]);
        let opts = GetOptions::new().with_prefix().with_limit(IMPORT_LIMIT);
        let resp = timed("read decisions", c.get(prefix, Some(opts))).await?;
        let mut decisions = Vec::new();
        for kv in resp.kvs() {
            match serde_json::from_slice::<Decision>(kv.value()) {
                Ok(d) => decisions.push(d),
                Err(e) => tracing::warn!(policy = %policy, "skipping an unreadable shared decision: {e}"),
            }
        }
        let state_prefix = self.key(&["state", policy, ""]);
        let resp = timed("read states", c.get(state_prefix.clone(), Some(GetOptions::new().with_prefix()))).await?;
        let mut states = Vec::new();
        for kv in resp.kvs() {
            if let (Some(check), Ok(v)) =
                (kv.key_str().ok().and_then(|k| k.strip_prefix(&state_prefix)), kv.value_str())
            {
                states.push((check.to_string(), v.to_string()));
            }
        }
        let resp = timed("read pending", c.get(self.key(&["pending", policy]), None)).await?;
        let pending = resp.kvs().first().and_then(|kv| {
            let v: serde_json::Value = serde_json::from_slice(kv.value()).ok()?;
            Some(Pending {
                at: Timestamp::from_millis(v["at"].as_i64()?),
                from: u32::try_from(v["from"].as_u64()?).ok()?,
                to: u32::try_from(v["to"].as_u64()?).ok()?,
                key: v["key"].as_str()?.to_string(),
            })
        });
        let n = store.import(policy, &decisions, &states, pending).await.map_err(|e| e.to_string())?;
        Ok(n)
    }
}

/// One owned policy, as the engine's [`Shared`] sees it.
pub struct Ownership {
    cluster: Arc<Cluster>,
    policy: String,
    token: i64,
}

impl Ownership {
    /// `policy`, owned under `token`.
    pub fn new(cluster: Arc<Cluster>, policy: &str, token: i64) -> Self {
        Ownership { cluster, policy: policy.to_string(), token }
    }
}

impl Shared for Ownership {
    fn token(&self) -> i64 {
        self.token
    }

    fn confirm(&self) -> BoxFuture<Result<(), String>> {
        let (c, p, t) = (self.cluster.clone(), self.policy.clone(), self.token);
        Box::pin(async move { c.confirm(&p, t).await })
    }

    fn record(&self, d: Decision, keep: Duration) -> BoxFuture<Result<(), String>> {
        let (c, t) = (self.cluster.clone(), self.token);
        Box::pin(async move { c.record(t, &d, keep).await })
    }

    fn save_state(&self, check: String, state: String) -> BoxFuture<Result<(), String>> {
        let (c, p, t) = (self.cluster.clone(), self.policy.clone(), self.token);
        Box::pin(async move { c.save_state(t, &p, &check, &state).await })
    }

    fn begin_actuation(&self, pending: Pending) -> BoxFuture<Result<(), String>> {
        let (c, p, t) = (self.cluster.clone(), self.policy.clone(), self.token);
        Box::pin(async move { c.begin_actuation(t, &p, &pending).await })
    }

    fn end_actuation(&self) -> BoxFuture<Result<(), String>> {
        let (c, p, t) = (self.cluster.clone(), self.policy.clone(), self.token);
        Box::pin(async move { c.end_actuation(t, &p).await })
    }
}

/// Waits until this instance owns `name` (marking it idle meanwhile); `None`
/// when shutting down.
async fn wait_owned(
    cluster: &Cluster,
    name: &str,
    owned: &mut watch::Receiver<Owned>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<i64> {
    cluster.idle(name);
    loop {
        if let Some(t) = owned.borrow_and_update().get(name) {
            return Some(*t);
        }
        tokio::select! {
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return None,
            changed = owned.changed() => if changed.is_err() { return None },
        }
    }
}

/// Takes a policy over under `token`: imports the shared history into the
/// local store and rebuilds the runtime from it, sharing through the
/// ownership from then on. On failure it waits a moment; the caller tries again.
async fn take_over(rt: &mut PolicyRuntime, cluster: &Arc<Cluster>, token: i64) -> Result<(), ()> {
    let name = rt.name().to_string();
    cluster.busy(&name);
    // what operators set is read first: the first tick must not act through a pause
    let imported = match cluster.refresh_controls(&name).await {
        Ok(_) => cluster.import(&name, rt.store()).await,
        Err(e) => Err(e),
    };
    match imported {
        Ok(n) => {
            tracing::info!(policy = %name, imported = n, token, "owner now: carrying on from the shared history")
        }
        Err(e) => {
            tracing::warn!(policy = %name, "cannot import the shared history ({e}); waiting for the next round");
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Err(());
        }
    }
    *rt = match rt.fresh() {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!(policy = %name, "cannot restore the policy: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Err(());
        }
    };
    rt.set_shared(Arc::new(Ownership::new(cluster.clone(), &name, token)));
    Ok(())
}

/// Runs one policy in a cluster: waits until this instance owns it, imports
/// the shared history, restores a fresh runtime from it and ticks until the
/// ownership is lost or `shutdown` turns true; then waits again.
pub async fn drive(mut rt: PolicyRuntime, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    let name = rt.name().to_string();
    let mut owned = cluster.owned();
    loop {
        let Some(token) = wait_owned(&cluster, &name, &mut owned, &mut shutdown).await else { return };
        if take_over(&mut rt, &cluster, token).await.is_err() {
            continue;
        }
        let control = rt.control();
        let mut every = tokio::time::interval(rt.interval());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                _ = every.tick() => { rt.tick().await; }
                _ = control.wake.notified() => { rt.tick().await; }
                changed = owned.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if owned.borrow_and_update().get(&name) != Some(&token) {
                        tracing::info!(policy = %name, token, "no longer the owner");
                        break;
                    }
                }
            }
            let next = rt.clock().now().plus(rt.interval());
            control.note(|s| s.next_tick = Some(next));
        }
    }
}

/// Runs one script-mode policy in a cluster: its script runs on the owner
/// only, started afresh by each new owner (the policy's windows, cooldowns
/// and decisions carry over through the shared history; the script's own
/// Lua variables do not), and stopped when the ownership is lost.
pub async fn drive_script(run: ScriptRun, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    let name = run.runtime.lock().await.name().to_string();
    let mut owned = cluster.owned();
    loop {
        let Some(token) = wait_owned(&cluster, &name, &mut owned, &mut shutdown).await else { return };
        if take_over(&mut *run.runtime.lock().await, &cluster, token).await.is_err() {
            continue;
        }
        tracing::info!(policy = %name, token, "starting the script as its owner");
        let (stop, stopped) = watch::channel(false);
        let script = tokio::spawn(crate::script::drive(run.clone(), stopped));
        let shutting_down = loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break true,
                changed = owned.changed() => {
                    if changed.is_err() {
                        break true;
                    }
                    if owned.borrow_and_update().get(&name) != Some(&token) {
                        tracing::info!(policy = %name, token, "no longer the owner: stopping the script");
                        break false;
                    }
                }
            }
        };
        // the script's decision in flight, if any, is finished first
        let _ = stop.send(true);
        let _ = script.await;
        if shutting_down {
            return;
        }
    }
}
