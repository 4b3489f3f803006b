//! `moontide simulate`: replay a trace through a policy and the baselines on
//! the simulated service, and compare their scores.

pub mod llm;
mod output;
mod suite;

use crate::config::{Config, Policy};
use clap::{Args, ValueEnum};
use moontide_core::{ManualClock, StrategyConfig, Timestamp};
use moontide_sim::baseline::{Oracle, StaticPeak};
use moontide_sim::kpa::{Kpa, KpaConfig};
use moontide_sim::policy::{PolicyScaler, SimMetric, hpa};
use moontide_sim::run::{Autoscaler, Load, Options, Run, run};
use moontide_sim::service::Model;
use moontide_sim::trace::{Format, Layout, Trace};
use output::{Row, Style};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How the trace file is laid out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    /// Guess from the first line.
    Auto,
    /// Numbers separated by whitespace, one per --step.
    Values,
    /// CSV: a time column and a count column.
    RateCsv,
    /// CSV: one row per request.
    Requests,
}

pub(super) fn duration(s: &str) -> Result<Duration, String> {
    moontide_core::duration::parse(s)
}

/// Arguments of `moontide simulate`.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true, group(clap::ArgGroup::new("input").required(true).args(["trace", "suite"])))]
pub struct SimulateArgs {
    /// The trace to replay (.gz is read compressed); several with --sweep.
    #[arg(long)]
    pub trace: Vec<PathBuf>,
    /// Run the traces listed in a suite file, each with its own settings (see BENCHMARKS.md).
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["trace", "sweep"])]
    pub suite: Option<PathBuf>,
    /// The trace's layout.
    #[arg(long, value_enum, default_value_t = TraceFormat::Auto)]
    pub format: TraceFormat,
    /// For plain values: the time each value covers (default 1s); refused for a CSV.
    #[arg(long, value_parser = duration)]
    pub step: Option<Duration>,
    /// For CSV traces: the time column (name or 0-based index; default: the first); refused for plain values.
    #[arg(long)]
    pub time_column: Option<String>,
    /// For rate CSVs: the count column (default: the second); refused for other layouts.
    #[arg(long)]
    pub count_column: Option<String>,
    /// A config holding a policy under test (repeatable: one policy from each; without it, only the
    /// baselines run).
    #[arg(long, short)]
    pub config: Vec<PathBuf>,
    /// The policy under test in each config (default: the config's only policy).
    #[arg(long, short)]
    pub policy: Option<String>,
    /// Bind a policy metric to a simulated one: NAME=cpu|rps|served|queue|latency_ms|ready (and, in
    /// simulate-llm, running|kv_cache|tokens_per_second); repeatable; by default each metric is
    /// matched by its name and query.
    #[arg(long = "bind", value_name = "NAME=METRIC")]
    pub bind: Vec<String>,
    /// Requests per second one ready replica serves.
    #[arg(long, default_value_t = 10.0)]
    pub capacity: f64,
    /// Delay before a new replica serves.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub startup: Duration,
    /// How long a removed replica keeps serving.
    #[arg(long, value_parser = duration, default_value = "0s")]
    pub drain: Duration,
    /// Time one request takes without queueing.
    #[arg(long, value_parser = duration, default_value = "50ms")]
    pub service_time: Duration,
    /// Latency objective.
    #[arg(long, value_parser = duration, default_value = "500ms")]
    pub slo: Duration,
    /// Multiply the trace's rates by this.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Play the trace this many times faster (its rates unchanged).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// How late the metrics are.
    #[arg(long, value_parser = duration, default_value = "0s")]
    pub scrape_delay: Duration,
    /// Relative noise on the metrics (0.05 = 5 %).
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// Seed of the noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replicas at the start (default: the oracle's, what the load over the first startup delay needs, so no
    /// policy starts behind).
    #[arg(long)]
    pub initial: Option<u32>,
    /// The HPA baseline's CPU target, %.
    #[arg(long, default_value_t = 60.0)]
    pub hpa_target: f64,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown tables (one per trace, with its settings) instead of a table.
    #[arg(long)]
    pub markdown: bool,
    /// Also write a self-contained HTML report (score table and plots) to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Run every trace with every combination of the --set values and print the score grid.
    #[arg(long)]
    pub sweep: bool,
    /// With --sweep: values to try for a setting, KEY=V1,V2,... (keys: capacity, startup, slo, scale,
    /// speed, scrape-delay, noise, hpa-target); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUES")]
    pub set: Vec<String>,
}

pub(super) fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(super::EXIT_BAD_INPUT)
}

/// Runs `simulate`.
pub fn run_cmd(a: SimulateArgs) -> ExitCode {
    let style = if a.json {
        Style::Json
    } else if a.markdown {
        Style::Markdown
    } else {
        Style::Table
    };
    if a.sweep || a.suite.is_some() {
        if a.report.is_some() {
            return bad("--report writes one simulation; leave it out with --sweep and --suite");
        }
        let rows = match if a.sweep { sweep(&a) } else { run_suite(&a) } {
            Ok(rows) => rows,
            Err(e) => return bad(e),
        };
        output::print(&rows, style, false);
        output::warn_problems(&rows);
        return ExitCode::SUCCESS;
    }
    if !a.set.is_empty() {
        return bad("--set gives values to sweep: add --sweep");
    }
    if a.trace.len() > 1 {
        return bad("several --trace values are a sweep: add --sweep (or give one trace)");
    }
    // a report that cannot be written fails now, not after the simulation
    if let Some(dir) =
        a.report.as_deref().map(|p| p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
        && !dir.is_dir()
    {
        return bad(format!("--report: no directory {} to write the report in", dir.display()));
    }
    let row = match simulate(&a, &a.trace[0], suite::file_label(&a.trace[0]), String::new()) {
        Ok(o) => o,
        Err(e) => return bad(e),
    };
    if let Some(path) = &a.report {
        let header = moontide_sim::report::ReportHeader {
            title: "Moontide simulation",
            trace: &row.trace_line,
            model: &row.model_line,
        };
        if let Err(e) = std::fs::write(path, moontide_sim::report::html(&header, &row.runs)) {
            eprintln!("error: cannot write the report to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("report written to {}", path.display());
    }
    let rows = std::slice::from_ref(&row);
    output::print(rows, style, true);
    output::warn_problems(rows);
    ExitCode::SUCCESS
}

/// Every trace of the suite file, with its settings.
fn run_suite(a: &SimulateArgs) -> Result<Vec<Row>, String> {
    let path = a.suite.as_deref().unwrap_or(Path::new(""));
    let mut rows = Vec::new();
    for e in suite::load(path, a)? {
        let row =
            simulate(&e.args, &e.file, e.name.clone(), String::new()).map_err(|err| format!("{}: {err}", e.name))?;
        eprintln!("{}: done", e.name);
        rows.push(row);
    }
    Ok(rows)
}

/// Applies one `--set` value to a copy of the arguments.
fn apply(a: &mut SimulateArgs, key: &str, value: &str) -> Result<(), String> {
    let num = || value.parse::<f64>().map_err(|_| format!("--set {key}: `{value}` is not a number"));
    let dur = || duration(value).map_err(|e| format!("--set {key}: {e}"));
    match key {
        "capacity" => a.capacity = num()?,
        "startup" => a.startup = dur()?,
        "slo" => a.slo = dur()?,
        "scale" => a.scale = num()?,
        "speed" => a.speed = num()?,
        "scrape-delay" => a.scrape_delay = dur()?,
        "noise" => a.noise = num()?,
        "hpa-target" => a.hpa_target = num()?,
        other => {
            return Err(format!(
                "--set: `{other}` is not a setting to sweep (capacity, startup, slo, scale, speed, scrape-delay, noise, hpa-target)"
            ));
        }
    }
    Ok(())
}

/// Every trace × every combination of the `--set` values.
fn sweep(a: &SimulateArgs) -> Result<Vec<Row>, String> {
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for s in &a.set {
        let Some((k, vs)) = s.split_once('=') else { return Err(format!("--set `{s}`: write KEY=V1,V2,...")) };
        let values: Vec<String> = vs.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Err(format!("--set `{s}`: no values"));
        }
        axes.push((k.trim().to_string(), values));
    }
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (k, vs) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vs.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((k.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let mut rows = Vec::new();
    for trace in &a.trace {
        for combo in &combos {
            let mut b = a.clone();
            for (k, v) in combo {
                apply(&mut b, k, v)?;
            }
            let label = combo.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            let row = simulate(&b, trace, suite::file_label(trace), label.clone())
                .map_err(|e| format!("{} [{label}]: {e}", trace.display()))?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Runs the policy under test (if any) and the baselines on one trace.
fn simulate(a: &SimulateArgs, trace_path: &Path, label: String, settings: String) -> Result<Row, String> {
    let model = Model {
        capacity: a.capacity,
        startup: a.startup.as_secs_f64(),
        drain: a.drain.as_secs_f64(),
        service_time: a.service_time.as_secs_f64(),
        slo: a.slo.as_secs_f64(),
    };
    let problems = model.validate();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    for (name, v) in [("--scale", a.scale), ("--speed", a.speed)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{name} must be a positive number"));
        }
    }
    if !(a.noise.is_finite() && a.noise >= 0.0) {
        return Err("--noise must be zero or more".into());
    }
    if !(a.hpa_target > 0.0 && a.hpa_target <= 100.0) {
        return Err(format!("--hpa-target {}: a CPU target in % must be over 0 and at most 100", a.hpa_target));
    }
    let format = match a.format {
        TraceFormat::Auto => Format::Auto,
        TraceFormat::Values => Format::Values { step: Duration::from_secs(1) },
        TraceFormat::RateCsv => Format::RateCsv { time: "0".into(), count: "1".into() },
        TraceFormat::Requests => Format::Requests { time: "0".into(), input: None, output: None },
    };
    let layout = Layout { step: a.step, time: a.time_column.clone(), count: a.count_column.clone() };
    let trace = Trace::load_with(trace_path, &format, &layout).map_err(|e| e.to_string())?;
    let mut series = trace.rates(Duration::from_secs(1));
    for r in series.rates.iter_mut().flatten() {
        *r *= a.scale;
    }
    let step = series.step.as_secs_f64() / a.speed;
    let dt = step.min(1.0);
    let start = series.start.unwrap_or(1_700_000_000.0);
    let load = Load { rates: &series.rates, step, start };

    let binds = parse_binds(&a.bind, SimMetric::RATES)?;
    let mut used = BTreeSet::new();
    let mut policies = Vec::new();
    for path in &a.config {
        policies.push(policy_scaler(path, a.policy.as_deref(), &binds, SimMetric::RATES, start, &mut used)?);
    }
    unused_binds(&binds, &used)?;
    let oracle = Oracle::new(&model, &load, dt);
    // by default everyone starts where the oracle does: ready for the first startup delay's load
    let initial = a.initial.unwrap_or_else(|| oracle.initial().max(1));
    let opts = Options {
        dt,
        initial,
        scrape_delay: a.scrape_delay.as_secs_f64(),
        noise: a.noise,
        seed: a.seed,
        plot_points: 2_000,
    };
    let oracle_opts = Options { initial: oracle.initial().max(1), ..opts.clone() };
    let mut scalers: Vec<(Box<dyn Autoscaler + Send>, Options)> = Vec::new();
    for p in policies {
        scalers.push((Box::new(p), opts.clone()));
    }
    scalers.push((Box::new(hpa(a.hpa_target, 1, 10_000)), opts.clone()));
    scalers.push((Box::new(Kpa::new(KpaConfig::defaults(model.capacity))), opts.clone()));
    let peak = StaticPeak::new(&model, &load, dt);
    let peak_opts = Options { initial: peak.count(), ..opts.clone() };
    scalers.push((Box::new(peak), peak_opts));
    scalers.push((Box::new(oracle), oracle_opts));
    let mut runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = scalers
            .into_iter()
            .map(|(mut scaler, o)| {
                let (load, model) = (&load, &model);
                s.spawn(move || run(load, model, scaler.as_mut(), &o))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let oracle_cost = runs.last().map(|r| r.scores.cost_replica_hours).unwrap_or(0.0);
    for r in &mut runs {
        if oracle_cost > 0.0 {
            r.scores.cost_vs_oracle = Some(r.scores.cost_replica_hours / oracle_cost);
        }
    }
    let rates: Vec<f64> = series.rates.iter().flatten().copied().collect();
    let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let peak_rate = rates.iter().copied().fold(0.0, f64::max);
    let gaps: usize = series.gaps.iter().map(|g| g.steps).sum();
    let trace_line = format!(
        "trace {}: {} steps of {:.0} s ({:.1} h), mean {:.1} req/s, peak {:.1} req/s{}",
        trace_path.display(),
        series.rates.len(),
        step,
        load.duration() / 3600.0,
        mean,
        peak_rate,
        if gaps > 0 { format!(", {gaps} steps missing (no load)") } else { String::new() }
    );
    let model_line = format!(
        "model: {} req/s per replica, startup {}, service time {}, SLO {}; policies start with {} replica(s)",
        model.capacity,
        moontide_core::duration::format(a.startup),
        moontide_core::duration::format(a.service_time),
        moontide_core::duration::format(a.slo),
        initial
    );
    let summary = serde_json::json!({
        "trace": { "file": trace_path.display().to_string(), "steps": series.rates.len(), "step_seconds": step,
                   "hours": load.duration() / 3600.0, "mean_rps": mean, "peak_rps": peak_rate, "gap_steps": gaps },
        "model": { "capacity_rps": model.capacity, "startup_s": model.startup, "drain_s": model.drain,
                   "service_time_s": model.service_time, "slo_s": model.slo, "initial_replicas": initial },
    });
    Ok(Row { trace: label, settings, trace_line, model_line, summary, runs })
}

/// The `--bind NAME=METRIC` arguments, each metric one of `offered` (the
/// metrics the simulated model gives).
pub(super) fn parse_binds(bind: &[String], offered: &[SimMetric]) -> Result<BTreeMap<String, SimMetric>, String> {
    let mut binds = BTreeMap::new();
    for b in bind {
        let (k, v) = b.split_once('=').ok_or_else(|| format!("--bind `{b}`: write NAME=METRIC"))?;
        let m = SimMetric::parse(v.trim()).filter(|m| offered.contains(m)).ok_or_else(|| {
            format!("--bind `{b}`: `{v}` is not a simulated metric here ({})", SimMetric::names(offered))
        })?;
        binds.insert(k.trim().to_string(), m);
    }
    Ok(binds)
}

/// Fails on a `--bind` whose name is a metric of none of the policies under
/// test (`used`: the names the policies bound), a typo that would otherwise
/// leave the metric guessed.
pub(super) fn unused_binds(binds: &BTreeMap<String, SimMetric>, used: &BTreeSet<String>) -> Result<(), String> {
    match binds.keys().find(|k| !used.contains(*k)) {
        Some(k) if used.is_empty() => {
            Err(format!("--bind {k}=...: no policy under test has metrics to bind (give one with --config)"))
        }
        Some(k) => Err(format!(
            "--bind {k}=...: no policy under test has a metric `{k}` (theirs: {})",
            used.iter().cloned().collect::<Vec<_>>().join(", ")
        )),
        None => Ok(()),
    }
}

/// The policy under test, its metrics bound to those of the simulated model
/// (`offered`): by `binds`, else guessed from the metric's name and query.
/// Adds the names of the policy's metrics to `used`.
pub(super) fn policy_scaler(
    path: &std::path::Path,
    name: Option<&str>,
    binds: &BTreeMap<String, SimMetric>,
    offered: &[SimMetric],
    start: f64,
    used: &mut BTreeSet<String>,
) -> Result<PolicyScaler, String> {
    // the config's own problems name the file and line already
    let config = Config::load(path).map_err(|e| e.problems().join("\n"))?;
    policy_in(&config, name, binds, offered, start, used).map_err(|e| format!("{}: {e}", path.display()))
}

fn policy_in(
    config: &Config,
    name: Option<&str>,
    binds: &BTreeMap<String, SimMetric>,
    offered: &[SimMetric],
    start: f64,
    used: &mut BTreeSet<String>,
) -> Result<PolicyScaler, String> {
    let names = || config.policies.iter().map(|p| p.spec.name.as_str()).collect::<Vec<_>>().join(", ");
    let policy: &Policy = match name {
        Some(n) => config
            .policies
            .iter()
            .find(|p| p.spec.name == n)
            .ok_or_else(|| format!("no policy `{n}` (policies: {})", names()))?,
        None if config.policies.len() == 1 => &config.policies[0],
        None if config.policies.is_empty() => return Err("no policies".into()),
        None => return Err(format!("several policies ({}): pick one with --policy", names())),
    };
    if policy.script.is_some() {
        return Err(format!(
            "policy `{}` is a script-mode policy; the simulator runs policies with checks",
            policy.spec.name
        ));
    }
    let mut bindings = Vec::new();
    for (metric, m) in &policy.metrics {
        used.insert(metric.clone());
        let unbound = |what: String| {
            format!(
                "metric `{metric}` (query `{}`) {what}: bind it with --bind {metric}=METRIC ({})",
                m.query,
                SimMetric::names(offered)
            )
        };
        let sim = match binds.get(metric) {
            Some(sim) => *sim,
            None => match SimMetric::guess(metric).or_else(|| SimMetric::guess(&m.query)) {
                Some(sim) if offered.contains(&sim) => sim,
                Some(sim) => {
                    return Err(unbound(format!(
                        "reads as `{}`, which this simulated model does not give",
                        sim.name()
                    )));
                }
                None => return Err(unbound("has no simulated counterpart".into())),
            },
        };
        bindings.push((metric.clone(), sim));
    }
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((start * 1000.0) as i64)));
    let mut lua = Vec::new();
    for (name, check) in &policy.spec.checks {
        if let StrategyConfig::Lua(c) = check {
            let field = format!("policies.{}.checks.{name}", policy.spec.name);
            lua.push((name.clone(), crate::lua::build(&field, c, clock.clone())?));
        }
    }
    Ok(PolicyScaler::new(format!("{} (moontide)", policy.spec.name), policy.spec.clone(), bindings, lua, clock))
}
