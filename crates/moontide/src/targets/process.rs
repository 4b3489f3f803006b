//! `process`: a local pool of copies of one command.
//!
//! Each copy gets an index (0, 1, ...) and a free TCP port on 127.0.0.1, both
//! substituted for `{index}` and `{port}` in the command, its arguments and
//! its environment. A copy that exits is restarted (with backoff), and
//! whatever it left running in its process group gets SIGKILL. Copies are
//! stopped with SIGTERM to their process group, then SIGKILL after `grace`.
//! Shutting the pool down stops every copy; if Moontide's runtime is torn down
//! without that, each direct child still gets SIGKILL (kill-on-drop).

use crate::targets::{ScaleError, Status};
use moontide_core::Actuation;
use moontide_core::duration::serde_text;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

fn default_grace() -> Duration {
    Duration::from_secs(5)
}

fn yes() -> bool {
    true
}

fn default_ready_path() -> String {
    "/".into()
}

/// When a copy counts as ready.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyCheck {
    /// As soon as it runs.
    #[default]
    Running,
    /// When its `{port}` accepts TCP connections.
    Port,
    /// When `http://127.0.0.1:{port}{ready_path}` answers 2xx.
    Http,
}

/// Where a copy's stdout and stderr go.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Discarded.
    #[default]
    Null,
    /// Moontide's own stdout / stderr.
    Inherit,
}

/// `type = "process"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Program and arguments; `{index}` and `{port}` are substituted.
    pub command: Vec<String>,
    /// Extra environment; values are templated like the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: Moontide's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL when stopping a copy (default 5s).
    #[serde(default = "default_grace", with = "serde_text")]
    pub grace: Duration,
    /// When a copy counts as ready (default `running`).
    #[serde(default)]
    pub ready: ReadyCheck,
    /// Path for `ready = "http"` (default "/").
    #[serde(default = "default_ready_path")]
    pub ready_path: String,
    /// Restart copies that exit (default true).
    #[serde(default = "yes")]
    pub restart: bool,
    /// Where the copies' output goes (default `null`).
    #[serde(default)]
    pub output: Output,
}

impl ProcessConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.command.first().is_none_or(|c| c.trim().is_empty()) {
            errs.push(
                "command is empty: give the program and its arguments, like [\"my-server\", \"--port\", \"{port}\"]"
                    .into(),
            );
        }
        if !self.ready_path.starts_with('/') {
            errs.push(format!("ready_path `{}` must start with /", self.ready_path));
        }
        errs
    }
}

/// One copy as others may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Its index, 0-based, reused after a copy is removed.
    pub index: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
    /// Whether it passed its ready check.
    pub ready: bool,
    /// How often it was restarted.
    pub restarts: u32,
}

enum Cmd {
    Scale(u32, oneshot::Sender<Result<String, String>>),
    Shutdown(oneshot::Sender<()>),
}

/// A running pool; see the module docs.
pub struct ProcessPool {
    name: String,
    tx: mpsc::Sender<Cmd>,
    instances: watch::Receiver<Vec<Instance>>,
}

impl ProcessPool {
    /// Starts the pool's supervisor with no copies running.
    pub fn start(name: &str, config: ProcessConfig) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let (wtx, wrx) = watch::channel(Vec::new());
        tokio::spawn(supervise(name.to_string(), config, rx, wtx));
        ProcessPool { name: name.to_string(), tx, instances: wrx }
    }

    /// The copies now, for those who route traffic to them.
    pub fn instances(&self) -> watch::Receiver<Vec<Instance>> {
        self.instances.clone()
    }

    /// Copies asked for, and copies ready.
    pub async fn status(&self) -> Result<Status, String> {
        if self.tx.is_closed() {
            return Err(format!("process pool `{}` is shut down", self.name));
        }
        let list = self.instances.borrow();
        Ok(Status { current: list.len() as u32, ready: list.iter().filter(|i| i.ready).count() as u32, note: None })
    }

    /// Starts or stops copies until `desired` run.
    pub async fn scale(&self, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
        let fail = |message: String| ScaleError {
            message,
            reached: None,
            actuation: Actuation { key: key.into(), attempts: 1, detail: String::new() },
        };
        let (reply, answer) = oneshot::channel();
        self.tx.send(Cmd::Scale(desired, reply)).await.map_err(|_| fail("process pool is shut down".into()))?;
        match answer.await {
            Ok(Ok(detail)) => Ok(Actuation { key: key.into(), attempts: 1, detail }),
            Ok(Err(e)) => Err(fail(e)),
            Err(_) => Err(fail("process pool supervisor stopped".into())),
        }
    }

    /// Stops every copy (SIGTERM, then SIGKILL after the grace period) and the supervisor.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

struct Slot {
    index: u32,
    port: u16,
    child: Option<Child>,
    /// The copy's process group, noted at spawn: once the copy is reaped,
    /// `Child::id` is gone, and what it left in the group must still be killed.
    group: Option<Pid>,
    ready: bool,
    restarts: u32,
    retry_at: Option<Instant>,
    backoff: Duration,
    started: Instant,
}

impl Slot {
    fn info(&self) -> Instance {
        Instance {
            index: self.index,
            port: self.port,
            pid: self.child.as_ref().and_then(|c| c.id()),
            ready: self.ready,
            restarts: self.restarts,
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A copy up this long gets its restart backoff reset.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Longest wait for one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

async fn supervise(name: String, cfg: ProcessConfig, mut rx: mpsc::Receiver<Cmd>, out: watch::Sender<Vec<Instance>>) {
    let mut slots: Vec<Slot> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the probes go to 127.0.0.1 itself, never through a proxy from HTTP_PROXY and the like
    let http = crate::http::builder(PROBE_TIMEOUT).no_proxy().build().ok();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Scale(n, reply)) => {
                    let result = scale_to(&name, &cfg, &mut slots, n).await;
                    out.send_replace(slots.iter().map(Slot::info).collect());
                    let _ = reply.send(result);
                }
                Some(Cmd::Shutdown(reply)) => {
                    stop_all(&cfg, &mut slots).await;
                    out.send_replace(Vec::new());
                    let _ = reply.send(());
                    return;
                }
                None => {
                    stop_all(&cfg, &mut slots).await;
                    out.send_replace(Vec::new());
                    return;
                }
            },
            _ = tick.tick() => {
                check(&name, &cfg, &mut slots, http.as_ref()).await;
                out.send_if_modified(|old| {
                    let new: Vec<Instance> = slots.iter().map(Slot::info).collect();
                    if *old != new { *old = new; true } else { false }
                });
            }
        }
    }
}

fn template(s: &str, index: u32, port: u16) -> String {
    s.replace("{index}", &index.to_string()).replace("{port}", &port.to_string())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn spawn(cfg: &ProcessConfig, index: u32, port: u16) -> Result<Child, String> {
    let args: Vec<String> = cfg.command.iter().map(|a| template(a, index, port)).collect();
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .envs(cfg.env.iter().map(|(k, v)| (k, template(v, index, port))))
        .env("MOONTIDE_INDEX", index.to_string())
        .env("MOONTIDE_PORT", port.to_string())
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let (o, e) = match cfg.output {
        Output::Null => (Stdio::null(), Stdio::null()),
        Output::Inherit => (Stdio::inherit(), Stdio::inherit()),
    };
    cmd.stdout(o).stderr(e);
    if let Some(dir) = &cfg.cwd {
        cmd.current_dir(dir);
    }
    cmd.spawn().map_err(|e| format!("cannot start `{}`: {e}", args[0]))
}

/// A copy's process group: it leads its own (`process_group(0)`), so the group's id is its pid.
fn group_of(child: &Child) -> Option<Pid> {
    child.id().map(|pid| Pid::from_raw(pid as i32))
}

async fn scale_to(name: &str, cfg: &ProcessConfig, slots: &mut Vec<Slot>, n: u32) -> Result<String, String> {
    let before = slots.len();
    while slots.len() < n as usize {
        let index = (0..).find(|i| !slots.iter().any(|s| s.index == *i)).unwrap_or(0);
        let port = free_port()?;
        let child = spawn(cfg, index, port)?;
        tracing::info!(target: "moontide::process", pool = name, index, port, pid = child.id(), "started copy");
        slots.push(Slot {
            index,
            port,
            group: group_of(&child),
            child: Some(child),
            ready: false,
            restarts: 0,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            started: Instant::now(),
        });
    }
    slots.sort_by_key(|s| s.index);
    let mut stopping = Vec::new();
    while slots.len() > n as usize {
        stopping.extend(slots.pop());
    }
    let stopped = stopping.len();
    let handles: Vec<_> = stopping
        .into_iter()
        .filter_map(|s| {
            tracing::info!(target: "moontide::process", pool = name, index = s.index, "stopping copy");
            s.child.map(|c| tokio::spawn(stop(c, s.group, cfg.grace)))
        })
        .collect();
    for h in handles {
        let _ = h.await;
    }
    Ok(match (slots.len() as i64 - before as i64).signum() {
        1 => format!("started {} copies", slots.len() - before),
        -1 => format!("stopped {stopped} copies"),
        _ => "no change".into(),
    })
}

/// SIGTERM to the copy's process `group` (noted at spawn), SIGKILL after `grace`.
async fn stop(mut child: Child, group: Option<Pid>, grace: Duration) {
    let Some(group) = group.or_else(|| group_of(&child)) else {
        // no group to signal: the copy itself is all there is to stop
        let _ = child.kill().await;
        return;
    };
    if killpg(group, Signal::SIGTERM).is_ok() && tokio::time::timeout(grace, child.wait()).await.is_ok() {
        // The leader is gone; make sure nothing it started lingers in its group.
        let _ = killpg(group, Signal::SIGKILL);
        return;
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.kill().await;
    let _ = child.wait().await;
}

async fn stop_all(cfg: &ProcessConfig, slots: &mut Vec<Slot>) {
    let handles: Vec<_> =
        slots.drain(..).filter_map(|s| s.child.map(|c| tokio::spawn(stop(c, s.group, cfg.grace)))).collect();
    for h in handles {
        let _ = h.await;
    }
}

async fn check(name: &str, cfg: &ProcessConfig, slots: &mut Vec<Slot>, http: Option<&reqwest::Client>) {
    let now = Instant::now();
    let mut gone = Vec::new();
    for slot in slots.iter_mut() {
        if let Some(child) = slot.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            tracing::warn!(target: "moontide::process", pool = name, index = slot.index, %status, "copy exited");
            // Reap anything the copy left in its group (by the id noted at spawn:
            // `child.id()` is None now that it has been waited for).
            if let Some(group) = slot.group.take() {
                let _ = killpg(group, Signal::SIGKILL);
            }
            slot.child = None;
            slot.ready = false;
            if cfg.restart {
                slot.retry_at = Some(now + slot.backoff);
                slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
            } else {
                gone.push(slot.index);
            }
        }
        if slot.child.is_none() && slot.retry_at.is_some_and(|t| t <= now) {
            slot.retry_at = None;
            match spawn(cfg, slot.index, slot.port) {
                Ok(child) => {
                    slot.restarts += 1;
                    slot.started = now;
                    tracing::info!(target: "moontide::process", pool = name, index = slot.index, pid = child.id(), restarts = slot.restarts, "restarted copy");
                    slot.group = group_of(&child);
                    slot.child = Some(child);
                }
                Err(e) => {
                    tracing::warn!(target: "moontide::process", pool = name, index = slot.index, "restart failed: {e}");
                    slot.retry_at = Some(now + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // A copy that has stayed up a while has earned a fresh backoff.
        if slot.child.is_some() && now.duration_since(slot.started) >= STABLE_AFTER {
            slot.backoff = FIRST_BACKOFF;
        }
    }
    slots.retain(|s| !gone.contains(&s.index));

    // Readiness: probe every running, not-yet-ready copy at once.
    let mut probes = tokio::task::JoinSet::new();
    for (i, slot) in slots.iter().enumerate() {
        if slot.child.is_none() || slot.ready {
            continue;
        }
        let (mode, port, url, client) =
            (cfg.ready, slot.port, format!("http://127.0.0.1:{}{}", slot.port, cfg.ready_path), http.cloned());
        probes.spawn(async move {
            let ok = match mode {
                ReadyCheck::Running => true,
                ReadyCheck::Port => {
                    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(("127.0.0.1", port)))
                        .await
                        .is_ok_and(|r| r.is_ok())
                }
                ReadyCheck::Http => match client {
                    Some(c) => c.get(url).send().await.is_ok_and(|r| r.status().is_success()),
                    None => false,
                },
            };
            (i, ok)
        });
    }
    while let Some(Ok((i, ok))) = probes.join_next().await {
        if let Some(slot) = slots.get_mut(i) {
            slot.ready = ok;
        }
    }
}
