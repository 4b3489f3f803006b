//! The command line: `moontide run | validate | history | demo | worker`.

mod history;
mod lua;
mod script_check;
mod simulate;
mod status;
mod token;

use crate::config::{Config, DEFAULT_STATE_DIR};
use crate::engine::{Engine, SystemClock};
use crate::logging::{self, LogFormat};
use crate::store::Store;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status for bad input (config, arguments).
pub const EXIT_BAD_INPUT: u8 = 2;

/// Moontide: an autoscaler whose policies are built-in strategies or Lua.
#[derive(Parser, Debug)]
#[command(name = "moontide", version, about, long_about = None)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level: error, warn, info, debug or trace (default: info; warn for `demo` and `lua`, which print their own lines).
    /// RUST_LOG overrides it (and takes per-module directives).
    #[arg(long, global = true, value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Run the autoscaler with a config file until SIGINT or SIGTERM.
    Run {
        /// The config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Where decisions are stored (default: the config's state_dir, else moontide-state beside the config).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Decide and record, never actuate, for every policy.
        #[arg(long)]
        dry_run: bool,
        /// Run one tick of every policy, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Check a config file; print its problems with file, line and field. Exit 2 if any.
    Validate {
        /// The config file (TOML).
        file: PathBuf,
    },
    /// Print recorded decisions, newest first, one line each.
    History(history::HistoryArgs),
    /// Autoscale a real local pool of CPU-burning workers under replayed traffic (no setup needed).
    Demo(crate::demo::DemoArgs),
    /// Replay a trace through a policy and the baselines (HPA, KPA, static peak, oracle) and compare scores.
    Simulate(simulate::SimulateArgs),
    /// Replay a per-request LLM trace (prompt and output tokens) against the LLM serving model, with each policy and baselines.
    SimulateLlm(simulate::llm::LlmArgs),
    /// Check and test Lua policies.
    #[command(subcommand)]
    Lua(lua::LuaCommand),
    /// Show what a running Moontide is doing: every policy's counts, state and last reason (needs an API token).
    Status(status::ApiArgs),
    /// Explain one decision of a running Moontide: readings, checks, guards, outcome (needs an API token).
    Explain(status::ExplainArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Run the demo's HTTP worker: GET /work burns CPU, GET /metrics reports cpuUsage and memoryUsage.
    Worker(crate::demo::worker::WorkerArgs),
}

/// Parses arguments, runs the command, returns the exit status.
pub fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    if let Command::Worker(args) = cli.command {
        return crate::demo::worker::main(args);
    }
    // the demo and the Lua checks print what they do themselves
    let default_level = if matches!(cli.command, Command::Demo(_) | Command::Lua(_)) { "warn" } else { "info" };
    logging::init(cli.log_format, cli.log_level.as_deref().unwrap_or(default_level));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moontide: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(dispatch(cli.command));
    // A Lua call stuck in a C library function holds a blocking thread that
    // cannot be interrupted: do not wait for it to exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// `moontide simulate ... 2>&1 | head` closes the pipe early; Rust ignores
/// SIGPIPE, so the next `println!` or `eprintln!` panics. Changing the
/// signal's disposition needs unsafe code, which this crate forbids: end the
/// process the way a tool killed by SIGPIPE does (status 141, nothing more
/// printed) instead.
fn exit_quietly_on_closed_pipe() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let printing =
            message.starts_with("failed printing to stdout") || message.starts_with("failed printing to stderr");
        if printing && message.contains("Broken pipe") {
            std::process::exit(128 + 13);
        }
        default_hook(info);
    }));
}

async fn dispatch(cmd: Command) -> ExitCode {
    match cmd {
        Command::Validate { file } => validate(&file),
        Command::Run { config, state_dir, dry_run, once } => run(&config, state_dir, dry_run, once).await,
        Command::History(args) => history::run(args),
        Command::Lua(cmd) => lua::run(cmd).await,
        Command::Simulate(args) => simulate::run_cmd(args),
        Command::SimulateLlm(args) => simulate::llm::run_cmd(args),
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Explain(args) => status::explain(args).await,
        Command::Token(cmd) => token::run(cmd),
        Command::Worker(_) => unreachable!("handled before the runtime starts"),
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        for p in e.problems() {
            eprintln!("error: {p}");
        }
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

fn validate(file: &Path) -> ExitCode {
    match load(file) {
        Ok(c) => {
            println!(
                "{}: ok ({} source(s), {} target(s), {} polic{})",
                file.display(),
                c.sources.len(),
                c.targets.len(),
                c.policies.len(),
                if c.policies.len() == 1 { "y" } else { "ies" }
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// SIGINT and SIGTERM, registered at once so that a signal arriving during
/// start-up is held until the caller waits for it instead of killing the
/// process with its children still running.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers (needs a running Tokio runtime).
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    /// Waits for SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

async fn run(path: &Path, state_dir: Option<PathBuf>, dry_run: bool, once: bool) -> ExitCode {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dir = state_dir.unwrap_or_else(|| config.state_dir.clone());
    let store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clock: Arc<dyn moontide_core::Clock> = Arc::new(SystemClock);
    let decisions = tokio::sync::broadcast::channel(1024).0;
    let mut engine = match Engine::build_with(&config, store.clone(), clock.clone(), dry_run, decisions.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if let Some(cluster) = &config.cluster {
        if once {
            eprintln!("error: --once ticks every policy regardless of ownership: it cannot run with [cluster]");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if let Err(e) = engine.join(cluster).await {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    tracing::info!(config = %path.display(), state_dir = %dir.display(), policies = config.policies.len(), "moontide running");
    if once {
        let decisions = engine.tick_all().await;
        engine.shutdown().await;
        // a tick that could not act (the target refused, or its count could not be read) fails the run
        let failed: Vec<&moontide_core::Decision> = decisions
            .iter()
            .filter(|d| {
                matches!(d.outcome, moontide_core::Outcome::Failed { .. } | moontide_core::Outcome::Skipped { .. })
            })
            .collect();
        for d in &failed {
            eprintln!("error: policy {}: {}", d.policy, d.reason);
        }
        return if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let addr = match config.server.addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: server: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let (reload_tx, mut reloads) = tokio::sync::mpsc::channel::<crate::server::ReloadRequest>(1);
    let api = crate::server::ApiState {
        store: store.clone(),
        decisions: decisions.clone(),
        clock: clock.clone(),
        reload: Some(reload_tx),
    };
    let state = crate::server::State::new(live(&engine, &config), Some(api));
    let (server_stop, server_stopped) = tokio::sync::watch::channel(false);
    let server = match crate::server::start(addr, state.clone(), config.server.tls.as_ref(), server_stopped).await {
        Ok((bound, task)) => {
            tracing::info!(%bound, tokens = config.server.tokens.len(), "API on http://{bound}/api/v1");
            task
        }
        Err(e) => {
            eprintln!("error: {e} (set [server] listen to another address)");
            engine.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let mut running = start_engine(engine);
    let mut listen = config.server.listen.clone();
    let mut keep_decisions = keep_for(&config);
    // the first tick is now: a store grown while Moontide was stopped is pruned at start
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = prune.tick() => prune_decisions(&store, clock.now(), keep_decisions),
            Some(req) = reloads.recv() => {
                tracing::info!(by = %req.by, config = %path.display(), "reloading the config");
                // the new config is checked and built before the running one stops: a bad one changes nothing
                let answer = match Config::load(path) {
                    Err(e) => Err(e.problems()),
                    Ok(new) => match Engine::build_with(&new, store.clone(), clock.clone(), dry_run, decisions.clone()) {
                        Err(e) => Err(vec![e]),
                        Ok(mut engine) => 'reload: {
                            if let Some(cluster) = &new.cluster {
                                // the old membership ends with the old engine; the policies move back at the next rounds
                                running.stop().await;
                                running = RunningEngine::stopped();
                                if let Err(e) = engine.join(cluster).await {
                                    // never run a cluster's policies outside it: that would act beside their owners
                                    tracing::error!("cannot rejoin the cluster after the reload: {e}");
                                    break 'reload Err(vec![format!(
                                        "the new config is sound, but this instance cannot rejoin the cluster ({e}); it runs no policy now (the other instances take them): reload again once etcd answers, or restart"
                                    )]);
                                }
                            }
                            running.stop().await;
                            state.swap(live(&engine, &new));
                            keep_decisions = keep_for(&new);
                            running = start_engine(engine);
                            let mut done = format!(
                                "reloaded {}: {} polic{}",
                                path.display(),
                                new.policies.len(),
                                if new.policies.len() == 1 { "y" } else { "ies" }
                            );
                            if new.server.listen != listen {
                                done.push_str(&format!("; [server] listen changed to {}: restart to apply", new.server.listen));
                                listen = new.server.listen.clone();
                            }
                            Ok(done)
                        }
                    },
                };
                match &answer {
                    Ok(done) => tracing::info!("{done}"),
                    Err(problems) => tracing::warn!("config reload refused: {}", problems.join("; ")),
                }
                let _ = req.reply.send(answer);
            }
        }
    }
    tracing::info!("signal received, shutting down");
    running.stop().await;
    let _ = server_stop.send(true);
    let _ = server.await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// How often stored decisions older than `keep_decisions` are deleted.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How long decisions are kept: `keep_decisions`, but never less than the
/// longest a policy reads back at a restart (its windows and cooldowns).
fn keep_for(config: &Config) -> std::time::Duration {
    config
        .policies
        .iter()
        .map(|p| p.spec.history_retention().max(p.spec.series_retention()))
        .fold(config.keep_decisions, std::time::Duration::max)
}

/// Deletes, in the background, the decisions older than `keep`, and refused
/// requests older than that or beyond the newest `store::KEEP_REFUSED` from
/// the audit log (logged, never fatal).
fn prune_decisions(store: &Store, now: moontide_core::Timestamp, keep: std::time::Duration) {
    let store = store.clone();
    tokio::spawn(async move {
        match store.prune_async(now.minus(keep)).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(deleted = n, kept_for = %moontide_core::duration::format(keep), "deleted old decisions")
            }
            Err(e) => tracing::warn!("cannot delete old decisions: {e}"),
        }
        match store.prune_audit_async(now.minus(keep)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "deleted old or surplus refused requests from the audit log"),
            Err(e) => tracing::warn!("cannot prune the audit log: {e}"),
        }
    });
}

/// What the server serves from one engine and its config.
fn live(engine: &Engine, config: &Config) -> crate::server::Live {
    crate::server::Live {
        pushes: engine.push_sources(),
        controls: engine.controls().into_iter().map(|c| (c.policy.clone(), c)).collect(),
        tokens: config.server.tokens.clone(),
        shared_controls: engine.shared_controls(),
    }
}

/// A running engine and the way to stop it.
struct RunningEngine {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningEngine {
    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }

    /// A handle to nothing (the engine it stood for is already stopped).
    fn stopped() -> RunningEngine {
        RunningEngine { stop: tokio::sync::watch::channel(true).0, task: tokio::spawn(async {}) }
    }
}

fn start_engine(engine: Engine) -> RunningEngine {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    RunningEngine { stop, task: tokio::spawn(engine.run(stopped)) }
}

/// The state directory `history` reads when given neither `--state-dir` nor `--config`.
pub fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
