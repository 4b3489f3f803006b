//! `moontide lua check` and `moontide lua test`.

use clap::{Args, Subcommand};
use moontide_core::{ManualClock, Observation, Point, Series, Timestamp};
use moontide_lua::testing::{self, DEFAULT_NOW};
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `moontide lua ...`
#[derive(Subcommand, Debug)]
pub enum LuaCommand {
    /// Compile a policy, check that it defines decide(ctx), and with --metric run it once (--script: a whole-loop script, run with --answer/--rounds).
    Check(CheckArgs),
    /// Run the test_* functions of Lua test files; exit 1 if any fails.
    Test(TestArgs),
}

/// Arguments of `moontide lua check`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct CheckArgs {
    /// The policy file (with --script --config: the policy's own script unless given).
    #[arg(required_unless_present = "config")]
    pub file: Option<PathBuf>,
    /// Run decide once with this metric reading (repeatable), e.g. --metric cpu=85.
    #[arg(long = "metric", value_name = "NAME=VALUE")]
    pub metrics: Vec<String>,
    /// Set ctx.params.NAME for that run (repeatable); VALUE is written as in TOML, e.g. --param server_rps=5, --param 'mode="fast"'.
    #[arg(long = "param", value_name = "NAME=VALUE", requires = "metrics")]
    pub params: Vec<String>,
    /// The current replica count for that run (with --config: the count the fleet starts at).
    #[arg(long, default_value_t = 1)]
    pub current: u32,
    /// The file is a script-mode loop (no decide): compile it; with --answer or --rounds, also run it.
    #[arg(long, conflicts_with = "metrics")]
    pub script: bool,
    /// With --script: answer the script's requests to URL with 200 and BODY (repeatable); other requests get nil and a message.
    #[arg(long = "answer", num_args = 2, value_names = ["URL", "BODY"], requires = "script")]
    pub answers: Vec<String>,
    /// With --script: run the loop until its Nth socket.sleep, on a virtual clock (default 3 when --answer or --config is given).
    #[arg(long, value_name = "N", requires = "script", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rounds: Option<u32>,
    /// With --script: run the loop as this config's policy (--policy): its URL mappings and allowed hosts, and actions through its guards on a count kept here (nothing is scaled, no source is read).
    #[arg(long, value_name = "FILE", requires_all = ["script", "policy"])]
    pub config: Option<PathBuf>,
    /// With --config: the script-mode policy to run the loop as.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub policy: Option<String>,
}

/// Arguments of `moontide lua test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Test files (each defines functions named test_...).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs a `lua` subcommand.
pub async fn run(cmd: LuaCommand) -> ExitCode {
    match cmd {
        LuaCommand::Check(a) if a.script && (a.rounds.is_some() || !a.answers.is_empty() || a.config.is_some()) => {
            let setup = match (&a.config, &a.policy) {
                (Some(config), Some(policy)) => Some(super::script_check::Setup { config, policy, current: a.current }),
                _ => None,
            };
            super::script_check::run(a.file.as_deref(), setup, &a.answers, a.rounds.unwrap_or(3)).await
        }
        LuaCommand::Check(a) => check(a),
        LuaCommand::Test(a) => test(a),
    }
}

fn check(a: CheckArgs) -> ExitCode {
    let Some(file) = a.file.clone() else {
        eprintln!("error: give the policy FILE");
        return ExitCode::from(super::EXIT_BAD_INPUT);
    };
    if a.script {
        return match moontide_lua::script::check_syntax(&Origin::File(file.clone())) {
            Ok(()) => {
                println!(
                    "{}: ok (script mode: compiles; not run: give --answer or --rounds to run it)",
                    file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(super::EXIT_BAD_INPUT)
            }
        };
    }
    let mut metrics = BTreeMap::new();
    for m in &a.metrics {
        match m.split_once('=').map(|(k, v)| (k.trim(), v.trim().parse::<f64>())) {
            Some((k, Ok(v))) if !k.is_empty() => {
                metrics.insert(k.to_string(), v);
            }
            _ => {
                eprintln!("error: --metric `{m}`: write NAME=NUMBER, like cpu=85");
                return ExitCode::from(super::EXIT_BAD_INPUT);
            }
        }
    }
    let mut params = BTreeMap::new();
    for p in &a.params {
        match parse_param(p) {
            Ok((k, v)) => {
                params.insert(k, v);
            }
            Err(why) => {
                eprintln!("error: --param `{p}`: {why}");
                return ExitCode::from(super::EXIT_BAD_INPUT);
            }
        }
    }
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(DEFAULT_NOW)));
    let mut strategy =
        match LuaStrategy::load(Origin::File(file.clone()), Limits::default(), Duration::from_secs(600), clock) {
            Ok(s) => s,
            Err(e) => {
                let e = e.to_string();
                // a whole-loop script needs modules a check's sandbox does not give, and defines no decide
                let hint = if e.contains("is not available") || e.contains("no `decide` function") {
                    "\n(a script-mode loop? check it with `moontide lua check --script FILE`)"
                } else {
                    ""
                };
                eprintln!("error: {e}{hint}");
                return ExitCode::from(super::EXIT_BAD_INPUT);
            }
        };
    if metrics.is_empty() {
        println!("{}: ok (defines decide)", file.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = strategy.set_params(&params) {
        eprintln!("error: params: {e}");
        return ExitCode::from(super::EXIT_BAD_INPUT);
    }
    let now = Timestamp::from_secs(DEFAULT_NOW);
    let series: BTreeMap<String, Series> = metrics
        .into_iter()
        .map(|(k, v)| {
            let mut s = Series::new();
            s.push(Point { at: now, value: Some(v) }, Duration::from_secs(60));
            (k, s)
        })
        .collect();
    let obs = Observation {
        now,
        interval: Duration::from_secs(10),
        current: a.current,
        ready: a.current,
        min: 0,
        max: u32::MAX,
        series: &series,
    };
    let (rec, _) = strategy.decide(&obs);
    match rec.error {
        Some(e) => {
            // the message names the file and line already; here the metrics
            // a policy "declares" are the --metric readings
            let hint =
                if e.contains("no metric named") { "\n(the metrics are the --metric NAME=VALUE given)" } else { "" };
            eprintln!("error: {e}{hint}");
            ExitCode::from(super::EXIT_BAD_INPUT)
        }
        None => {
            let n = rec.desired.map(|n| n.to_string()).unwrap_or_else(|| "nil (no opinion)".into());
            println!("{}: ok; decide returned {n}: {}", file.display(), rec.reason);
            ExitCode::SUCCESS
        }
    }
}

/// `NAME=VALUE` with VALUE in TOML (a number, a boolean, a quoted string, an
/// array or an inline table), as the check's `params` are written in a config.
fn parse_param(p: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = p.split_once('=').ok_or("write NAME=VALUE, like server_rps=5")?;
    let name = name.trim();
    if name.is_empty() {
        return Err("the name is empty: write NAME=VALUE, like server_rps=5".into());
    }
    let table: toml::Table = toml::from_str(&format!("v = {}", value.trim()))
        .map_err(|_| format!("`{}` is not a TOML value (a string needs quotes: 'mode=\"fast\"')", value.trim()))?;
    if table.len() > 1 {
        // `1\nother = 2`: the lines after the first would be dropped unseen
        return Err(format!("`{}` holds more than one value: give one, on one line", value.trim()));
    }
    let v = table.get("v").cloned().ok_or("no value after `=`")?;
    if matches!(v, toml::Value::Datetime(_)) {
        return Err("a date is not a value a policy can read: quote it as a string".into());
    }
    let v = serde_json::to_value(v).map_err(|e| e.to_string())?;
    Ok((name.to_string(), v))
}

fn test(a: TestArgs) -> ExitCode {
    let (mut passed, mut failed) = (0, 0);
    let mut broken = false;
    for file in &a.files {
        match testing::run_file(file) {
            Ok(results) => {
                for r in results {
                    match r.failure {
                        None => {
                            passed += 1;
                            println!("ok    {} {}", file.display(), r.name);
                        }
                        Some(why) => {
                            failed += 1;
                            println!("FAIL  {} {}: {why}", file.display(), r.name);
                        }
                    }
                }
            }
            Err(e) => {
                broken = true;
                println!("ERROR {}: {e}", file.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if broken {
        ExitCode::from(super::EXIT_BAD_INPUT)
    } else if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
