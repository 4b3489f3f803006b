//! The engine: builds sources and targets from a config, restores each
//! policy's memory from the store, and ticks every policy on its own task.

pub mod breaker;
pub mod control;
pub mod ledger;
pub mod shared;
mod tick;
mod wake_timer;

pub use tick::PolicyRuntime;

use crate::config::Config;
use crate::script::ScriptConfig;
use crate::sources::Source;
use crate::sources::push::Push;
use crate::store::Store;
use crate::targets::Target;
use moontide_core::{Clock, Decision, ManualClock, Timestamp};
use moontide_lua::script::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The wall clock, for live runs.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// How a script's `socket.sleep` waits.
pub trait Sleeper: Send + Sync + 'static {
    /// Waits `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<()>;
}

/// Waits on the wall clock.
pub struct RealTime;

impl Sleeper for RealTime {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Waits on a manual clock: moves it forward at once (tests and replays).
pub struct VirtualTime(pub Arc<ManualClock>);

impl Sleeper for VirtualTime {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        self.0.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}

/// A script-mode policy: its runtime is shared with the script's requests.
struct ScriptPolicy {
    field: String,
    config: ScriptConfig,
    control: Arc<control::Control>,
    runtime: Arc<tokio::sync::Mutex<PolicyRuntime>>,
}

/// A running set of policies with their sources and targets.
pub struct Engine {
    policies: Vec<PolicyRuntime>,
    scripts: Vec<ScriptPolicy>,
    sources: BTreeMap<String, Arc<Source>>,
    targets: BTreeMap<String, Arc<Target>>,
    decisions: broadcast::Sender<Decision>,
    /// The store, where a cluster saves what operators set through another instance.
    #[cfg(feature = "etcd")]
    store: Store,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    /// In a cluster: this instance's membership; policies then tick only while owned.
    #[cfg(feature = "etcd")]
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// How long a stopping engine waits for ticks in flight before abandoning them.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

impl Engine {
    /// Builds everything the config declares and restores each policy's
    /// windows, cooldowns and metric history from the store. `force_dry_run`
    /// puts every policy in dry-run.
    pub fn build(config: &Config, store: Store, clock: Arc<dyn Clock>, force_dry_run: bool) -> Result<Engine, String> {
        Engine::build_with(config, store, clock, force_dry_run, broadcast::channel(1024).0)
    }

    /// [`Engine::build`], sending decisions on `decisions` (kept across config reloads, so the
    /// API's event stream outlives an engine).
    pub fn build_with(
        config: &Config,
        store: Store,
        clock: Arc<dyn Clock>,
        force_dry_run: bool,
        decisions: broadcast::Sender<Decision>,
    ) -> Result<Engine, String> {
        let mut sources = BTreeMap::new();
        for (name, c) in &config.sources {
            sources.insert(name.clone(), Arc::new(Source::build(name, c)?));
        }
        let mut targets = BTreeMap::new();
        for (name, c) in &config.targets {
            // a target has one policy (the config refuses two)
            if let Some(p) = config.policies.iter().find(|p| &p.target == name) {
                targets.insert(name.clone(), Arc::new(Target::build(name, c)?.for_policy(&p.spec.name)));
            }
        }
        let ledger = config.budget.clone().map(|b| Arc::new(ledger::Ledger::new(b)));
        let mut policies = Vec::new();
        let mut scripts = Vec::new();
        for p in &config.policies {
            let mut policy = p.clone();
            if force_dry_run {
                policy.spec.behaviour.dry_run = true;
            }
            let target = targets[&policy.target].clone();
            let script = policy.script.clone();
            let field = format!("policies.{}.script", policy.spec.name);
            let breaker = Arc::new(breaker::Breaker::new(&policy.target, config.breaker.clone()));
            let mut rt = PolicyRuntime::new(policy, target, &sources, store.clone(), clock.clone(), decisions.clone())?;
            if force_dry_run {
                // an operator's "dry-run off", now or saved from before, does not undo --dry-run
                rt.control().force_dry_run();
            }
            rt.share(breaker, ledger.clone());
            // load pushed to a fleet at zero is a first request waiting: tick now, not at the
            // next interval (a script-mode loop is woken from its sleep)
            let pushes: Vec<(Arc<Push>, Option<Vec<String>>)> = match &script {
                None => rt.push_sources().into_iter().map(|(push, names)| (push, Some(names))).collect(),
                // a script reads the whole document: any name pushed counts
                Some(sc) => {
                    let mut mapped: Vec<(Arc<Push>, Option<Vec<String>>)> = Vec::new();
                    for m in sc.urls.values() {
                        if let Some(Source::Push(p)) =
                            m.source.as_ref().and_then(|n| sources.get(n)).map(|s| s.as_ref())
                            && !mapped.iter().any(|(q, _)| Arc::ptr_eq(q, p))
                        {
                            mapped.push((p.clone(), None));
                        }
                    }
                    mapped
                }
            };
            for (push, names) in pushes {
                let (control, clock) = (rt.control(), clock.clone());
                push.on_push(Box::new(move |pushed| {
                    if pushed.iter().any(|(k, v)| *v > 0.0 && names.as_ref().is_none_or(|n| n.contains(k))) {
                        control.wake_if_at_zero(clock.now());
                    }
                }));
            }
            match script {
                Some(config) => scripts.push(ScriptPolicy {
                    field,
                    config,
                    control: rt.control(),
                    runtime: Arc::new(tokio::sync::Mutex::new(rt)),
                }),
                None => policies.push(rt),
            }
        }
        Ok(Engine {
            policies,
            scripts,
            sources,
            targets,
            decisions,
            #[cfg(feature = "etcd")]
            store,
            clock,
            sleeper: Arc::new(RealTime),
            #[cfg(feature = "etcd")]
            cluster: None,
        })
    }

    /// Joins the cluster `[cluster]` describes: from then on each policy
    /// ticks only while this instance owns it.
    pub async fn join(&mut self, cfg: &crate::cluster::ClusterConfig) -> Result<(), String> {
        #[cfg(feature = "etcd")]
        {
            let controls = self.controls();
            let store = self.store.clone();
            self.cluster = Some(crate::cluster::Cluster::join(cfg, controls, store, self.clock.clone()).await?);
            Ok(())
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = cfg;
            Err("cluster: this moontide was built without the `etcd` feature".into())
        }
    }

    /// In a cluster: where operators' changes are shared with the other instances.
    pub fn shared_controls(&self) -> Option<Arc<dyn shared::SharedControls>> {
        #[cfg(feature = "etcd")]
        if let Some(c) = &self.cluster {
            return Some(Arc::new(crate::cluster::ControlSharing(c.clone())));
        }
        None
    }

    /// Makes scripts' `socket.sleep` wait with `sleeper` (a [`VirtualTime`] in tests and replays).
    pub fn set_sleeper(&mut self, sleeper: Arc<dyn Sleeper>) {
        self.sleeper = sleeper;
    }

    /// The `push` sources, for the server that receives their values.
    pub fn push_sources(&self) -> BTreeMap<String, Arc<crate::sources::push::Push>> {
        self.sources
            .iter()
            .filter_map(|(name, s)| match s.as_ref() {
                Source::Push(p) => Some((name.clone(), p.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every policy's control (pause, hold, dry-run), script-mode ones too, in name order.
    pub fn controls(&self) -> Vec<Arc<control::Control>> {
        let mut all: Vec<Arc<control::Control>> =
            self.policies.iter().map(|p| p.control()).chain(self.scripts.iter().map(|s| s.control.clone())).collect();
        all.sort_by(|a, b| a.policy.cmp(&b.policy));
        all
    }

    /// The channel every decision is sent on (the API's event stream subscribes to it).
    pub fn decision_sender(&self) -> broadcast::Sender<Decision> {
        self.decisions.clone()
    }

    /// The engine's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Every decision, as it is made.
    pub fn subscribe(&self) -> broadcast::Receiver<Decision> {
        self.decisions.subscribe()
    }

    /// A target by name (the demo routes traffic to a process pool's copies).
    pub fn target(&self, name: &str) -> Option<Arc<Target>> {
        self.targets.get(name).cloned()
    }

    /// Runs one tick of the named policy now (tests and one-shot runs).
    pub async fn tick(&mut self, policy: &str) -> Option<Decision> {
        let rt = self.policies.iter_mut().find(|p| p.name() == policy)?;
        Some(rt.tick().await)
    }

    /// Runs one tick of every policy, one after another.
    pub async fn tick_all(&mut self) -> Vec<Decision> {
        let mut out = Vec::new();
        for rt in &mut self.policies {
            out.push(rt.tick().await);
        }
        out
    }

    /// Ticks every policy on its own task at its own interval until
    /// `shutdown` turns true, then stops the targets it owns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        #[cfg(feature = "etcd")]
        if let Some(cluster) = self.cluster.clone() {
            tasks.spawn(cluster.clone().run(shutdown.clone()));
        }
        for mut rt in self.policies {
            #[cfg(feature = "etcd")]
            if let Some(cluster) = self.cluster.clone() {
                tasks.spawn(crate::cluster::drive(rt, cluster, shutdown.clone()));
                continue;
            }
            let mut stop = shutdown.clone();
            let clock = self.clock.clone();
            tasks.spawn(async move {
                let control = rt.control();
                let mut every = tokio::time::interval(rt.interval());
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
                        _ = every.tick() => { rt.tick().await; }
                        // an operator changed something: act on it now
                        _ = control.wake.notified() => { rt.tick().await; }
                    }
                    let next = clock.now().plus(rt.interval());
                    control.note(|s| s.next_tick = Some(next));
                }
            });
        }
        for sp in self.scripts {
            let run = crate::script::ScriptRun {
                field: sp.field,
                config: sp.config,
                runtime: sp.runtime,
                sources: self.sources.clone(),
                clock: self.clock.clone(),
                sleeper: self.sleeper.clone(),
            };
            #[cfg(feature = "etcd")]
            if let Some(cluster) = self.cluster.clone() {
                tasks.spawn(crate::cluster::drive_script(run, cluster, shutdown.clone()));
                continue;
            }
            tasks.spawn(crate::script::drive(run, shutdown.clone()));
        }
        let _ = shutdown.wait_for(|s| *s).await;
        tracing::info!("stopping: waiting for ticks in flight");
        if tokio::time::timeout(SHUTDOWN_WAIT, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("ticks still running after {SHUTDOWN_WAIT:?}; abandoning them");
            tasks.abort_all();
        }
        for (name, t) in &self.targets {
            tracing::debug!(target_name = %name, "shutting down target");
            t.shutdown().await;
        }
    }

    /// Stops the targets the engine owns without running (after one-shot ticks).
    pub async fn shutdown(&self) {
        for t in self.targets.values() {
            t.shutdown().await;
        }
    }
}
