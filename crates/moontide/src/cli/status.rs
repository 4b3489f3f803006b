//! `moontide status` and `moontide explain POLICY`: what a running Moontide
//! is doing and why, read from its API with a token.

use crate::engine::control::wall;
use clap::Args;
use moontide_core::{Decision, Outcome, Timestamp};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How to reach the API.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The running Moontide's address.
    #[arg(long, env = "MOONTIDE_URL", default_value = "http://127.0.0.1:9464")]
    pub url: String,
    /// An API token (viewer is enough); prefer MOONTIDE_TOKEN or --token-file: a token given here
    /// shows in the process list.
    #[arg(long, env = "MOONTIDE_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the API token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for an https URL, besides the system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for a server that asks for one (mutual TLS), with --key-file.
    #[arg(long, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The HTTP client, with the CA and client certificate asked for.
fn client(a: &ApiArgs) -> Result<reqwest::Client, (ExitCode, String)> {
    let input = |e: String| (ExitCode::from(super::EXIT_BAD_INPUT), e);
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| input(format!("cannot read {}: {e}", p.display())));
    let mut b = crate::http::builder(Duration::from_secs(10));
    if let Some(ca) = &a.ca_file {
        let cert = reqwest::Certificate::from_pem(&read(ca)?)
            .map_err(|e| input(format!("{}: not a PEM certificate: {e}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    if let (Some(c), Some(k)) = (&a.cert_file, &a.key_file) {
        let mut pem = read(c)?;
        pem.push(b'\n');
        pem.extend(read(k)?);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| input(format!("{} and {}: not a PEM certificate and key: {e}", c.display(), k.display())))?;
        b = b.identity(id);
    }
    b.build().map_err(|e| (ExitCode::FAILURE, format!("cannot build an HTTP client: {e}")))
}

/// Arguments of `moontide explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The policy.
    pub policy: String,
    /// The decision in force at this time (RFC 3339 or Unix ms; default: the latest).
    #[arg(long)]
    pub at: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(super::EXIT_BAD_INPUT)
}

/// GETs an API path; the error says what went wrong in the words of the API.
async fn get(a: &ApiArgs, path: &str) -> Result<Value, (ExitCode, String)> {
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|t| t.trim().to_string())
            .map_err(|e| (ExitCode::from(super::EXIT_BAD_INPUT), format!("cannot read {}: {e}", f.display())))?,
        (None, None) => {
            return Err((
                ExitCode::from(super::EXIT_BAD_INPUT),
                "give a token: --token-file FILE or MOONTIDE_TOKEN".into(),
            ));
        }
    };
    let client = client(a)?;
    // the daemon logs its API as http://HOST:PORT/api/v1: take that as well as the bare address
    let base = a.url.trim_end_matches('/');
    let base = base.strip_suffix("/api/v1").unwrap_or(base);
    let url = format!("{base}{path}");
    let resp = client.get(&url).bearer_auth(token).send().await.map_err(|e| {
        (
            ExitCode::FAILURE,
            format!(
                "cannot reach Moontide at {}: {}",
                a.url,
                crate::sources::http_json::describe(&e, Duration::from_secs(10))
            ),
        )
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or("no reason given").to_string();
        let code = if status.is_client_error() { ExitCode::from(super::EXIT_BAD_INPUT) } else { ExitCode::FAILURE };
        return Err((code, format!("HTTP {status}: {why}")));
    }
    Ok(body)
}

fn when(ms: Option<i64>, now: i64) -> String {
    match ms {
        None => "-".into(),
        Some(t) => {
            let secs = (t - now) as f64 / 1000.0;
            if secs.abs() < 1.0 {
                "now".into()
            } else if secs > 0.0 {
                format!("in {:.0}s", secs)
            } else {
                format!("{:.0}s ago", -secs)
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs `status`.
pub async fn status(a: ApiArgs) -> ExitCode {
    let v = match get(&a, "/api/v1/policies").await {
        Ok(v) => v,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    if a.json {
        println!("{v}");
        return ExitCode::SUCCESS;
    }
    let now = now_ms();
    let policies = v["policies"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<20} {:>7} {:>5} {:>7}  {:<8} {:<10} {:<9}  reason",
        "policy", "current", "ready", "desired", "outcome", "state", "next tick"
    );
    for p in &policies {
        let n = |k: &str| p[k].as_u64().map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        let mut state = Vec::new();
        if !p["paused"].is_null() {
            state.push("paused");
        }
        if !p["hold"].is_null() {
            state.push("held");
        }
        if p["dry_run"].as_bool() == Some(true) {
            state.push("dry-run");
        }
        let state = if state.is_empty() { "running".to_string() } else { state.join(",") };
        let reason = p["last_decision"]["reason"].as_str().unwrap_or("no decision yet");
        let reason: String = reason.chars().take(100).collect();
        println!(
            "{:<20} {:>7} {:>5} {:>7}  {:<8} {:<10} {:<9}  {reason}",
            p["name"].as_str().unwrap_or("?"),
            n("current"),
            n("ready"),
            n("desired"),
            p["last_decision"]["outcome"].as_str().unwrap_or("-"),
            state,
            when(p["next_tick"].as_i64(), now),
        );
        if let Some(pause) = p["paused"].as_object() {
            println!(
                "    paused by {}: {}",
                pause["by"].as_str().unwrap_or("?"),
                pause["reason"].as_str().unwrap_or("")
            );
        }
        if let Some(h) = p["hold"].as_object() {
            println!(
                "    held at {} by {} until {} ({}): {}",
                h["replicas"],
                h["by"].as_str().unwrap_or("?"),
                wall(Timestamp::from_millis(h["until"].as_i64().unwrap_or(0))),
                when(h["until"].as_i64(), now),
                h["reason"].as_str().unwrap_or("")
            );
        }
        if let Some(e) = p["error"].as_str() {
            println!("    error: {e}");
        }
    }
    ExitCode::SUCCESS
}

/// Runs `explain`.
pub async fn explain(a: ExplainArgs) -> ExitCode {
    let mut path = format!("/api/v1/policies/{}/decisions?limit=1", a.policy);
    if let Some(at) = &a.at {
        // the decision in force at `at`: the newest one before it (inclusive)
        let ms = match at.parse::<i64>() {
            Ok(ms) => ms,
            Err(_) => match humantime::parse_rfc3339_weak(at) {
                Ok(t) => t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
                Err(_) => return bad(format!("--at `{at}` is not an RFC 3339 time or Unix milliseconds")),
            },
        };
        path.push_str(&format!("&until={}", ms + 1));
    }
    let v = match get(&a.api, &path).await {
        Ok(v) => v,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    let Some(first) = v["decisions"].as_array().and_then(|l| l.first()).cloned() else {
        eprintln!(
            "no decision of `{}`{}",
            a.policy,
            a.at.as_ref().map(|t| format!(" at or before {t}")).unwrap_or_default()
        );
        return ExitCode::FAILURE;
    };
    if a.api.json {
        println!("{first}");
        return ExitCode::SUCCESS;
    }
    let d: Decision = match serde_json::from_value(first) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read the decision: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", render(&d));
    ExitCode::SUCCESS
}

/// A decision as a person reads it: what was seen, what each check wanted, what the guards did, what happened.
pub fn render(d: &Decision) -> String {
    let at = wall(d.at);
    let mut out = format!("{} at {at}: {} replicas ({} ready)\n", d.policy, d.current, d.ready);
    if !d.inputs.is_empty() {
        out.push_str("\nreadings\n");
        for i in &d.inputs {
            let value = i.value.map(|v| format!("{v}")).unwrap_or_else(|| "-".into());
            let status = format!("{:?}", i.status).to_lowercase();
            let err = i.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default();
            out.push_str(&format!("  {:<16} {:>12}  {status}{err}   [{} {}]\n", i.metric, value, i.source, i.query));
        }
    }
    if !d.checks.is_empty() {
        out.push_str("\nchecks\n");
        for c in &d.checks {
            let want = c.recommendation.desired.map(|n| n.to_string()).unwrap_or_else(|| "no opinion".into());
            out.push_str(&format!("  {:<16} {:<16} → {want}: {}\n", c.check, c.strategy, c.recommendation.reason));
        }
    }
    if let Some(r) = d.recommended {
        out.push_str(&format!("\nrecommended {r} (the largest opinion)\n"));
    }
    if !d.guards.is_empty() {
        out.push_str("\nguards\n");
        for g in &d.guards {
            out.push_str(&format!("  {:<16} {} → {}: {}\n", g.guard.name(), g.before, g.after, g.note));
        }
    }
    let outcome = match &d.outcome {
        Outcome::Hold => format!("hold at {}", d.current),
        Outcome::Scaled { from, to } => format!("scaled {from} → {to}"),
        Outcome::DryRun { from, to } => format!("dry-run: would have scaled {from} → {to}"),
        Outcome::Deferred { from, to, reason } => format!("deferred {from} → {to}: {reason}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Failed { from, to, error, .. } => format!("scale {from} → {to} failed: {error}"),
    };
    out.push_str(&format!("\noutcome: {outcome}\n"));
    if let Some(a) = &d.actuation {
        out.push_str(&format!(
            "actuation: key {}, {} request(s){}\n",
            a.key,
            a.attempts,
            if a.detail.is_empty() { String::new() } else { format!(", {}", a.detail) }
        ));
    }
    out
}
