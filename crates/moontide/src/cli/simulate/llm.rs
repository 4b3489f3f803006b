//! `moontide simulate-llm`: replay a per-request LLM trace (arrival time,
//! prompt and output tokens) against the LLM serving model, with each
//! `--config` policy and the baselines: HPA on running requests per replica
//! (as KEDA or a custom-metrics HPA does for vLLM), Knative's KPA on
//! concurrency, the smallest static fleet that keeps violations under 1 %
//! (found by search, with hindsight), a static fleet of the peak demand, and
//! the oracle (a hindsight plan per minute: [`moontide_sim::llm_oracle`]),
//! whose cost the `×oracle` column divides by and whose demand per minute
//! the elasticity metrics (θ, τ) are measured against.

use super::{bad, duration, parse_binds, policy_scaler, unused_binds};
use clap::Args;
use moontide_core::policy::PolicySpec;
use moontide_core::{Behaviour, ManualClock, StrategyConfig, Timestamp};
use moontide_sim::kpa::{Kpa, KpaConfig, KpaMetric};
use moontide_sim::llm::LlmModel;
use moontide_sim::llm_run::{LlmScores, run_llm};
use moontide_sim::policy::{PolicyScaler, SimMetric};
use moontide_sim::run::{Autoscaler, View};
use moontide_sim::trace::{Format, Trace};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `moontide simulate-llm`.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct LlmArgs {
    /// A request trace: CSV with an arrival time, prompt tokens and output tokens per row.
    #[arg(long)]
    pub trace: PathBuf,
    /// The arrival time column (name or 0-based index).
    #[arg(long, default_value = "TIMESTAMP")]
    pub time_column: String,
    /// The prompt tokens column.
    #[arg(long, default_value = "ContextTokens")]
    pub input_column: String,
    /// The output tokens column.
    #[arg(long, default_value = "GeneratedTokens")]
    pub output_column: String,
    /// Config files whose policy is tested (repeatable).
    #[arg(long, short)]
    pub config: Vec<PathBuf>,
    /// The policy under test in each config (default: the config's only policy).
    #[arg(long, short)]
    pub policy: Option<String>,
    /// Bind a policy metric to a simulated one (NAME=METRIC: running, queue, kv_cache,
    /// tokens_per_second, ready, rps, served, or cpu, which is the KV-cache use in %), when its name
    /// does not say.
    #[arg(long = "bind", value_name = "NAME=METRIC")]
    pub bind: Vec<String>,
    /// Prompt tokens per second one replica prefills.
    #[arg(long, value_parser = positive, default_value_t = 20_000.0)]
    pub prefill_tps: f64,
    /// Most generated tokens per second one replica decodes.
    #[arg(long, value_parser = positive, default_value_t = 1_500.0)]
    pub decode_tps: f64,
    /// Seconds per token for a request decoding alone.
    #[arg(long, value_parser = nonzero_duration, default_value = "25ms")]
    pub itl: Duration,
    /// KV-cache tokens per replica.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), default_value_t = 200_000)]
    pub kv_tokens: u64,
    /// Time for a new replica to serve (loading the model).
    #[arg(long, value_parser = duration, default_value = "3m")]
    pub startup: Duration,
    /// Time-to-first-token objective.
    #[arg(long, value_parser = nonzero_duration, default_value = "2s")]
    pub ttft_slo: Duration,
    /// Mean inter-token latency objective.
    #[arg(long, value_parser = duration, default_value = "100ms")]
    pub itl_slo: Duration,
    /// Replicas the policies and HPA start with (default: the oracle's first
    /// count, so that none starts behind; 0 to measure scaling from zero).
    #[arg(long)]
    pub initial: Option<u32>,
    /// Simulated seconds per step.
    #[arg(long, value_parser = duration, default_value = "50ms")]
    pub dt: Duration,
    /// Print the scores as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Seconds simulated after the last arrival, for the requests in flight to finish.
const TAIL: f64 = 600.0;

/// A fixed count.
struct Static(u32);

impl Autoscaler for Static {
    fn name(&self) -> String {
        format!("static ({})", self.0)
    }
    fn interval(&self) -> f64 {
        60.0
    }
    fn decide(&mut self, _: &View) -> u32 {
        self.0
    }
}

/// HPA on running requests: 16 per replica, HPA's default behaviour, every 15 s.
fn hpa_running(max: u32, start: f64) -> PolicyScaler {
    let check: StrategyConfig = serde_json::from_value(serde_json::json!({
        "strategy": "target_tracking",
        "targets": [{ "metric": "running", "target": 16, "aggregate": "total" }]
    }))
    .expect("a valid check");
    let spec = PolicySpec {
        name: "hpa".into(),
        interval: Duration::from_secs(15),
        min: 1,
        max,
        checks: [("running".to_string(), check)].into(),
        behaviour: Behaviour::default(),
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((start * 1000.0) as i64)));
    PolicyScaler::new("HPA (16 running/replica)", spec, vec![("running".into(), SimMetric::Running)], Vec::new(), clock)
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a positive number".into()),
    }
}

fn nonzero_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("must be longer than 0s".into()),
        d => Ok(d),
    }
}

/// Runs `simulate-llm`.
pub fn run_cmd(a: LlmArgs) -> ExitCode {
    let model = LlmModel {
        prefill_tps: a.prefill_tps,
        decode_tps: a.decode_tps,
        itl: a.itl.as_secs_f64(),
        kv_tokens: a.kv_tokens,
        startup: a.startup.as_secs_f64(),
        ttft_slo: a.ttft_slo.as_secs_f64(),
        itl_slo: a.itl_slo.as_secs_f64(),
    };
    if a.itl_slo < a.itl {
        return bad(format!(
            "--itl-slo {} is shorter than --itl {}, the time a token takes with nothing else running: no request could meet it",
            moontide_core::duration::format(a.itl_slo),
            moontide_core::duration::format(a.itl)
        ));
    }
    // the flags are checked above; this catches what a new field might add
    let problems = model.validate();
    if !problems.is_empty() {
        return bad(problems.join("; "));
    }
    if a.dt.is_zero() || a.dt > Duration::from_secs(1) {
        return bad(format!("--dt {}: a step must be over 0 and at most 1s", humantime::format_duration(a.dt)));
    }
    let format = Format::Requests {
        time: a.time_column.clone(),
        input: Some(a.input_column.clone()),
        output: Some(a.output_column.clone()),
    };
    let trace = match Trace::load(&a.trace, &format) {
        Ok(Trace::Requests(t)) => t,
        Ok(Trace::Rate(_)) => return bad(format!("{}: not a request trace", a.trace.display())),
        Err(e) => return bad(e),
    };
    if trace.requests.is_empty() {
        return bad(format!("{}: no requests", a.trace.display()));
    }
    // the busiest minute's prefill and decode work, in replicas: where the search starts
    let mut minutes: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for r in &trace.requests {
        let e = minutes.entry((r.at / 60.0) as u64).or_default();
        e.0 += r.input.unwrap_or(0) as f64;
        e.1 += r.output.unwrap_or(1) as f64;
    }
    let peak = minutes
        .values()
        .map(|(i, o)| (i / 60.0 / model.prefill_tps + o / 60.0 / model.decode_tps).ceil() as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    let binds = match parse_binds(&a.bind, SimMetric::LLM) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let mut used = BTreeSet::new();
    let mut scalers: Vec<Box<dyn Autoscaler>> = Vec::new();
    for path in &a.config {
        match policy_scaler(path, a.policy.as_deref(), &binds, SimMetric::LLM, trace.start, &mut used) {
            Ok(s) => scalers.push(Box::new(s)),
            Err(e) => return bad(e),
        }
    }
    if let Err(e) = unused_binds(&binds, &used) {
        return bad(e);
    }
    let dt = a.dt.as_secs_f64();
    // the oracle first: its demand per minute is what every run's elasticity is measured against
    let (plan, oracle) = moontide_sim::llm_oracle::oracle(&trace, &model, dt, TAIL);
    let demand = plan.demand().to_vec();
    // the smallest fixed fleet with under 1 % violations, by bisection over
    // [the busiest minute's work, 16 × that]; it starts full (initial = its size)
    let violations = |n: u32| run_llm(&trace, &model, &mut Static(n), n, dt, TAIL, &[]).slo_violations_pct;
    let (mut lo, mut hi) = (peak, peak * 16);
    if violations(hi) < 1.0 {
        while lo < hi {
            let mid = (lo + hi) / 2;
            if violations(mid) < 1.0 { hi = mid } else { lo = mid + 1 }
        }
    }
    let fixed = hi;
    let peak_demand = demand.iter().copied().max().unwrap_or(1).max(1);
    scalers.push(Box::new(hpa_running(peak * 16, trace.start)));
    let mut kpa = KpaConfig::defaults(16.0);
    kpa.metric = KpaMetric::Concurrency;
    kpa.max = peak * 16;
    scalers.push(Box::new(Kpa::new(kpa)));
    let start = a.initial.unwrap_or(plan.at(0));
    let hours = trace.requests.last().map_or(0.0, |r| r.at) / 3600.0;
    let mut rows: Vec<(String, LlmScores)> = Vec::new();
    let mut problems = Vec::new();
    for s in scalers.iter_mut() {
        rows.push((s.name(), run_llm(&trace, &model, s.as_mut(), start, dt, TAIL, &demand)));
        if let Some(p) = s.problems() {
            problems.push((s.name(), p));
        }
    }
    let trace_label = a.trace.display().to_string();
    for (name, p) in &problems {
        super::output::warn_problem(&trace_label, name, p);
    }
    // the static fleets are provisioned before the trace starts
    for (name, n) in [("static, smallest under 1 %", fixed), ("static peak", peak_demand)] {
        rows.push((format!("{name} ({n})"), run_llm(&trace, &model, &mut Static(n), n, dt, TAIL, &demand)));
    }
    rows.push(("oracle (hindsight plan)".into(), oracle.clone()));
    let vs_oracle = |r: &LlmScores| r.cost_replica_hours / oracle.cost_replica_hours.max(1e-9);
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(name, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["policy"] = name.clone().into();
                v["cost_vs_oracle"] = vs_oracle(r).into();
                if let Some((_, p)) = problems.iter().find(|(n, _)| n == name) {
                    v["problems"] = p.clone().into();
                }
                v
            })
            .collect();
        let out = serde_json::json!({
            "trace": a.trace.display().to_string(),
            "requests": trace.requests.len(),
            "hours": hours,
            "initial": start,
            "model": &model,
            "runs": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "trace {}: {} requests over {:.2} h; model: prefill {} tok/s, decode {} tok/s, ITL {} ms alone, KV {} tokens, startup {}, objectives TTFT {} / ITL {}",
        a.trace.display(),
        trace.requests.len(),
        hours,
        a.prefill_tps,
        a.decode_tps,
        a.itl.as_millis(),
        a.kv_tokens,
        moontide_core::duration::format(a.startup),
        moontide_core::duration::format(a.ttft_slo),
        moontide_core::duration::format(a.itl_slo),
    );
    println!(
        "policies, HPA and KPA start with {start} replica(s), the static fleets and the oracle provisioned in advance; \
         θ and τ against the oracle's demand per minute"
    );
    println!();
    println!(
        "| policy | cost r·h | ×oracle | SLO viol% | θU% | θO% | τU% | τO% | TTFT p50 s | TTFT p95 s | ITL p95 ms | cold requests | cold wait max s | actions/h | peak |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in rows {
        // latencies of no finished request are not 0: none was served
        let latency = |x: f64, digits: usize| if r.requests == 0 { "–".to_string() } else { format!("{x:.digits$}") };
        println!(
            "| {name} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {:.0} | {:.1} | {} |",
            r.cost_replica_hours,
            vs_oracle(&r),
            r.slo_violations_pct,
            r.theta_u,
            r.theta_o,
            r.tau_u,
            r.tau_o,
            latency(r.ttft_p50, 2),
            latency(r.ttft_p95, 2),
            latency(r.itl_p95 * 1000.0, 0),
            r.cold_requests,
            r.cold_wait_max,
            r.actions_per_hour,
            r.peak
        );
    }
    ExitCode::SUCCESS
}
