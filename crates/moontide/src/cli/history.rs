//! `moontide history`: recorded decisions, newest first.

use crate::config::Config;
use crate::engine::control::wall;
use crate::store::{Query, Store};
use clap::Args;
use moontide_core::Decision;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `moontide history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The state directory holding moontide.db (default: ./moontide-state).
    #[arg(long, conflicts_with = "config")]
    pub state_dir: Option<PathBuf>,
    /// Find the state directory from this config file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Only this policy.
    #[arg(long, short)]
    pub policy: Option<String>,
    /// Only this outcome: hold, scaled, dry_run, deferred, skipped or failed.
    #[arg(long, value_parser = ["hold", "scaled", "dry_run", "deferred", "skipped", "failed"])]
    pub outcome: Option<String>,
    /// At most this many decisions (at least 1).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Full records as JSON lines instead of one readable line each.
    #[arg(long)]
    pub json: bool,
}

/// Runs `history`.
pub fn run(args: HistoryArgs) -> ExitCode {
    if args.limit == 0 {
        eprintln!("error: --limit 0 would print nothing: give at least 1");
        return ExitCode::from(super::EXIT_BAD_INPUT);
    }
    let dir = match (&args.state_dir, &args.config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match Config::load(c) {
            Ok(c) => c.state_dir,
            Err(e) => {
                for p in e.problems() {
                    eprintln!("error: {p}");
                }
                return ExitCode::from(super::EXIT_BAD_INPUT);
            }
        },
        (None, None) => super::default_state_dir(),
    };
    let store = match Store::open_existing(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}; pass --state-dir DIR or --config FILE");
            return ExitCode::from(super::EXIT_BAD_INPUT);
        }
    };
    let q =
        Query { policy: args.policy.clone(), outcome: args.outcome.clone(), limit: args.limit, ..Default::default() };
    let list = match store.list(&q) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for d in &list {
        if args.json {
            match serde_json::to_string(d) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: {e}"),
            }
        } else {
            println!("{}", line(d));
        }
    }
    if list.is_empty() && !args.json {
        let mut filters = Vec::new();
        if let Some(p) = &args.policy {
            filters.push(format!("policy `{p}`"));
        }
        if let Some(o) = &args.outcome {
            filters.push(format!("outcome `{o}`"));
        }
        if filters.is_empty() {
            eprintln!("no decisions recorded in {}", store.path().display());
        } else {
            eprintln!("no decisions in {} match {}", store.path().display(), filters.join(", "));
        }
    }
    ExitCode::SUCCESS
}

/// One readable line: time, policy, outcome, counts, reason.
pub fn line(d: &Decision) -> String {
    format!("{}  {:<12} {:<8} {:>3} → {:<3} {}", wall(d.at), d.policy, d.outcome.kind(), d.current, d.desired, d.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use moontide_core::Timestamp;

    #[test]
    fn formats_utc_times() {
        assert_eq!(wall(Timestamp::from_secs(0)), "1970-01-01T00:00:00Z");
        assert_eq!(wall(Timestamp::from_millis(1_795_000_000_999)), "2026-11-18T11:06:40Z");
    }
}
