//! `moontide demo`: a real autoscaling loop on one machine, no setup.
//!
//! It starts a pool of real worker processes (`moontide worker`), serves an
//! endpoint averaging the workers' own CPU reports in the guide's JSON shape,
//! replays a traffic shape cut from a real trace as real HTTP requests, and
//! lets the engine scale the pool with the policy in `examples/demo.toml`.

mod load;
mod metrics;
pub mod worker;

use crate::config::Config;
use crate::engine::{Engine, SystemClock};
use crate::store::Store;
use crate::targets::Target;
use clap::Args;
use moontide_core::Outcome;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The demo's config, with `@MOONTIDE@` and `@METRICS_URL@` to fill in.
pub const DEMO_CONFIG: &str = include_str!("../../../../examples/demo.toml");
/// The demo's traffic shape (requests per second, one line per second), with its attribution.
pub const DEMO_TRACE: &str = include_str!("../../../../examples/traces/demo-burst.txt");

/// Arguments of `moontide demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long to run (default: the whole shape, 3 minutes, plus 40 s of calm).
    #[arg(long, value_parser = moontide_core::duration::parse)]
    pub duration: Option<Duration>,
    /// Multiply the shape's request rates by this (0.35 puts the peak near 140 req/s).
    #[arg(long, default_value_t = 0.35)]
    pub scale: f64,
    /// Keep decisions here (default: a new folder under the system's temp dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print the demo's config and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Reads the bundled shape: one non-negative number per line, `#` comments skipped.
pub fn parse_shape(text: &str) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => out.push(v),
            _ => return Err(format!("line {}: `{t}` is not a non-negative number", i + 1)),
        }
    }
    if out.is_empty() {
        return Err("the shape has no values".into());
    }
    Ok(out)
}

/// Runs the demo until its duration ends or Ctrl-C.
pub async fn run(args: DemoArgs) -> ExitCode {
    if args.print_config {
        print!("{DEMO_CONFIG}");
        return ExitCode::SUCCESS;
    }
    if !(args.scale.is_finite() && args.scale > 0.0) {
        eprintln!("error: --scale must be a positive number");
        return ExitCode::from(crate::cli::EXIT_BAD_INPUT);
    }
    match demo(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(args: DemoArgs) -> Result<(), String> {
    let mut signals = crate::cli::Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let shape = parse_shape(DEMO_TRACE)?;
    let duration = args.duration.unwrap_or(Duration::from_secs(shape.len() as u64 + 40));
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen: {e}"))?;
    let metrics_url = format!("http://{}/metrics", listener.local_addr().map_err(|e| e.to_string())?);
    let text = DEMO_CONFIG.replace("@MOONTIDE@", &exe.to_string_lossy()).replace("@METRICS_URL@", &metrics_url);
    let config = Config::parse(Path::new("examples/demo.toml"), &text).map_err(|e| e.to_string())?;
    let state_dir =
        args.state_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("moontide-demo-{}", std::process::id())));
    let store = Store::open(&state_dir).map_err(|e| e.to_string())?;
    let engine = Engine::build(&config, store, Arc::new(SystemClock), false)?;
    let pool = match engine.target("pool").as_deref() {
        Some(Target::Process(p)) => p.instances(),
        _ => return Err("the demo config has no process target `pool`".into()),
    };
    let target = engine.target("pool").ok_or("no target `pool`")?;
    tokio::spawn(metrics::serve(listener, pool.clone()));

    println!(
        "Moontide demo: a pool of `moontide worker` processes on 127.0.0.1, each spending 8 ms of CPU per request,"
    );
    println!("replaying the bursty Autothrottle trace (MIT, Microsoft) ×{} for {}s.", args.scale, duration.as_secs());
    println!("Policy: hold each worker near 35 % CPU (HPA rule), 1-6 workers, 30 s scale-down window. Ctrl-C stops.\n");
    target.scale(0, 1, "demo-start").await.map_err(|e| e.message)?;
    let mut ready = pool.clone();
    let _ = tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|l| l.iter().any(|i| i.ready))).await;

    let stats = Arc::new(load::Stats::default());
    let mut decisions = engine.subscribe();
    let printer = {
        let stats = stats.clone();
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            let mut peak = 1u32;
            let mut actions = 0u32;
            while let Ok(d) = decisions.recv().await {
                let window = stats.take_window();
                let cpu = d.inputs.iter().find(|i| i.metric == "cpu").and_then(|i| i.value);
                if let Outcome::Scaled { to, .. } = d.outcome {
                    peak = peak.max(to);
                    actions += 1;
                }
                let cpu = cpu.map(|c| format!("{c:>5.1}%")).unwrap_or_else(|| "    -".into());
                println!(
                    "[{:>4}s] {:>4.0} req/s  p50 {:>4.0} ms  workers {}/{} ready  cpu {cpu}  {}",
                    start.elapsed().as_secs(),
                    stats.rate(),
                    window.p50_ms,
                    d.current,
                    d.ready,
                    brief_reason(&d),
                );
            }
            (peak, actions)
        })
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.run(stop_rx));
    let driver = tokio::spawn(load::drive(shape, args.scale, duration, pool, stats.clone()));
    let interrupted = tokio::select! {
        _ = driver => false,
        _ = signals.recv() => true,
    };
    if interrupted {
        println!("\ninterrupted: stopping the pool");
    }
    let _ = stop_tx.send(true);
    let _ = runner.await;
    let (peak, actions) =
        tokio::time::timeout(Duration::from_secs(2), printer).await.ok().and_then(|r| r.ok()).unwrap_or((0, 0));
    let total = stats.totals();
    println!(
        "\nDone. Requests: {} sent, {} ok, {} failed, {} shed. Scale actions: {actions}, peak workers: {peak}. All workers stopped.",
        total.sent, total.ok, total.failed, total.shed
    );
    println!("Decisions are stored in {}:", state_dir.display());
    println!("  moontide history --state-dir {} --policy demo", state_dir.display());
    Ok(())
}

/// The decision's headline and the checks that had an opinion, for one terminal line.
fn brief_reason(d: &moontide_core::Decision) -> String {
    let mut parts: Vec<String> = vec![d.reason.split("; ").next().unwrap_or_default().to_string()];
    for c in &d.checks {
        if c.recommendation.desired.is_some() || c.recommendation.error.is_some() {
            parts.push(c.recommendation.reason.clone());
        }
    }
    for g in &d.guards {
        if g.before != g.after {
            parts.push(format!("{}: {}", g.guard.name(), g.note));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_shape_and_config_are_valid() {
        let shape = parse_shape(DEMO_TRACE).unwrap();
        assert_eq!(shape.len(), 180);
        let peak = shape.iter().cloned().fold(0.0, f64::max);
        assert!(peak > 2.0 * shape[0], "the shape must hold a burst");
        let text =
            DEMO_CONFIG.replace("@MOONTIDE@", "/bin/true").replace("@METRICS_URL@", "http://127.0.0.1:1/metrics");
        Config::parse(Path::new("demo.toml"), &text).unwrap();
    }

    #[test]
    fn shape_errors_name_the_line() {
        assert!(parse_shape("# c\n1\nx\n").unwrap_err().contains("line 3"));
        assert!(parse_shape("-1\n").is_err());
        assert!(parse_shape("# only a comment\n").is_err());
    }
}
