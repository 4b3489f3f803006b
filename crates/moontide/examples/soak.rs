//! Soak benchmark: one `moontide run` with many policies against a platform
//! on 127.0.0.1 that injects random faults, for minutes; then a report of RSS
//! growth, missed ticks and lost or duplicated actuations. Not a test (it
//! runs for 10 minutes by default); run it with `bench/soak`.
//!
//! ```text
//! cargo run --release --example soak -- BINARY [POLICIES] [SECONDS] [INTERVAL_SECS]
//! ```
//!
//! The platform serves `/m/I` (load on a sine with its own phase per policy)
//! and takes `/scale/I?n=` with an `Idempotency-Key`. Faults, drawn per
//! request: readings fail 10 % of the time (500, garbage, a 2 s delay past the
//! 1 s source timeout, a dropped connection); scale requests fail 6 % of the
//! time (500 before applying, 429 with Retry-After, a slow success).
//! Accounting:
//! - lost: a decision recorded `scaled` whose key the platform never applied;
//! - duplicated: a key the platform applied twice, or applied although the
//!   decision says the actuation failed;
//! - missed ticks: fewer decisions than the run's length allows, per policy.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use moontide::store::{Query as StoreQuery, Store};
use moontide_core::Outcome;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Platform {
    counts: Mutex<HashMap<u32, u32>>,
    /// Idempotency key → times applied.
    applied: Mutex<HashMap<String, u32>>,
    started: Mutex<Option<Instant>>,
    reads: AtomicU64,
    read_faults: AtomicU64,
    scales: AtomicU64,
    scale_faults: AtomicU64,
}

async fn metric(State(p): State<Arc<Platform>>, UrlPath(i): UrlPath<u32>) -> Response {
    p.reads.fetch_add(1, Ordering::Relaxed);
    let roll = fastrand::u32(0..100);
    if roll < 10 {
        p.read_faults.fetch_add(1, Ordering::Relaxed);
    }
    match roll {
        0..=3 => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        4..=5 => return (StatusCode::OK, "<html>not json").into_response(),
        6..=7 => tokio::time::sleep(Duration::from_secs(2)).await,
        8..=9 => return (StatusCode::SERVICE_UNAVAILABLE, "").into_response(),
        _ => {}
    }
    let t = p.started.lock().unwrap().map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    let phase = i as f64 * 0.37;
    let load = 50.0 + 40.0 * (t * std::f64::consts::TAU / 120.0 + phase).sin();
    axum::Json(serde_json::json!({ "load": load })).into_response()
}

async fn scale(
    State(p): State<Arc<Platform>>,
    UrlPath(i): UrlPath<u32>,
    Query(q): Query<HashMap<String, u32>>,
    headers: HeaderMap,
) -> Response {
    p.scales.fetch_add(1, Ordering::Relaxed);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let roll = fastrand::u32(0..100);
    match roll {
        0..=2 => {
            p.scale_faults.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::INTERNAL_SERVER_ERROR, "try later").into_response();
        }
        3..=4 => {
            p.scale_faults.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response();
        }
        5 => {
            p.scale_faults.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        _ => {}
    }
    let n = q.get("n").copied().unwrap_or(0);
    // an idempotent platform: a key seen before changes nothing
    let mut applied = p.applied.lock().unwrap();
    let seen = applied.entry(key).or_default();
    if *seen == 0 {
        p.counts.lock().unwrap().insert(i, n);
    }
    *seen += 1;
    (StatusCode::OK, "ok").into_response()
}

async fn status(State(p): State<Arc<Platform>>, UrlPath(i): UrlPath<u32>) -> axum::Json<serde_json::Value> {
    let n = p.counts.lock().unwrap().get(&i).copied().unwrap_or(1);
    axum::Json(serde_json::json!({ "replicas": n }))
}

fn config(base: &str, policies: u32, interval: u64) -> String {
    let mut t = String::from("[server]\nlisten = \"127.0.0.1:0\"\n\n");
    for i in 0..policies {
        t += &format!(
            r#"[sources.s{i}]
type = "http_json"
url = "{base}/m/{i}"
timeout = "1s"

[targets.t{i}]
type = "webhook"
url = "{base}/scale/{i}?n={{count}}"
status_url = "{base}/status/{i}"
status_pointer = "/replicas"
retries = 2
backoff = "100ms"
timeout = "3s"
rate_limit = {{ per_second = 50, burst = 10 }}

[policies.p{i}]
target = "t{i}"
interval = "{interval}s"
min = 1
max = 20
metrics = {{ load = {{ source = "s{i}", query = "/load" }} }}
checks.load = {{ strategy = "target_tracking", targets = [{{ metric = "load", target = 10, aggregate = "total" }}] }}
behaviour = {{ scale_down = {{ stabilization = "0s" }}, on_error = {{ fallback = 5, after = 3 }} }}

"#
        );
    }
    t
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(binary) = args.get(1) else {
        eprintln!("usage: soak BINARY [POLICIES=1000] [SECONDS=600] [INTERVAL_SECS=10]");
        std::process::exit(2);
    };
    let policies: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(600);
    let interval: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);

    let platform = Arc::new(Platform::default());
    let app = axum::Router::new()
        .route("/m/{i}", axum::routing::get(metric))
        .route("/scale/{i}", axum::routing::post(scale))
        .route("/status/{i}", axum::routing::get(status))
        .with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soak.toml");
    std::fs::write(&path, config(&base, policies, interval)).unwrap();
    let state = dir.path().join("state");
    *platform.started.lock().unwrap() = Some(Instant::now());
    let mut child = std::process::Command::new(binary)
        .args(["run", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(&state)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("moontide.log")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Some(r) = rss_kib(pid) {
            samples.push((started.elapsed().as_secs(), r));
            eprintln!("t={:>4}s rss={} MiB", started.elapsed().as_secs(), r / 1024);
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("moontide exited early: {status}");
            std::process::exit(1);
        }
    }
    let ran = started.elapsed();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = child.wait();

    let store = Store::open_existing(&state).unwrap();
    let applied = platform.applied.lock().unwrap().clone();
    let (mut decisions, mut scaled, mut failed, mut lost, mut duplicated, mut phantom) = (0, 0, 0, 0, 0, 0);
    let (mut missed_policies, mut missed_ticks, mut mismatched) = (0, 0, 0);
    let expected = ran.as_secs() / interval;
    let mut failed_keys = HashSet::new();
    for i in 0..policies {
        let q = StoreQuery { policy: Some(format!("p{i}")), limit: 1_000_000, ..Default::default() };
        let mut ds = store.list(&q).unwrap();
        ds.reverse();
        decisions += ds.len();
        // the first tick comes at once and the last may be cut by the stop: allow one
        if (ds.len() as u64) + 1 < expected {
            missed_policies += 1;
            missed_ticks += expected - 1 - ds.len() as u64;
        }
        let mut last_to = None;
        for d in &ds {
            let Some(a) = &d.actuation else { continue };
            match &d.outcome {
                Outcome::Scaled { to, .. } => {
                    scaled += 1;
                    last_to = Some(*to);
                    if !applied.contains_key(&a.key) {
                        lost += 1;
                    }
                }
                Outcome::Failed { .. } => {
                    failed += 1;
                    failed_keys.insert(a.key.clone());
                }
                _ => {}
            }
        }
        if let Some(to) = last_to
            && platform.counts.lock().unwrap().get(&i).is_some_and(|n| *n != to)
        {
            mismatched += 1;
        }
    }
    for (key, n) in &applied {
        if *n > 1 {
            duplicated += 1;
        }
        if failed_keys.contains(key) {
            phantom += 1;
        }
    }
    let warm = samples.iter().find(|(t, _)| *t >= 60).or(samples.first()).map(|s| s.1).unwrap_or(0);
    let last = samples.last().map(|s| s.1).unwrap_or(0);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!("## soak: {policies} policies, {}s, interval {interval}s", ran.as_secs());
    println!("| figure | value |\n|---|---|");
    println!("| decisions recorded | {decisions} (expected about {}) |", expected * policies as u64);
    println!("| policies that missed ticks | {missed_policies} ({missed_ticks} ticks) |");
    println!(
        "| readings / injected faults | {} / {} |",
        platform.reads.load(Ordering::Relaxed),
        platform.read_faults.load(Ordering::Relaxed)
    );
    println!(
        "| scale requests / injected faults | {} / {} |",
        platform.scales.load(Ordering::Relaxed),
        platform.scale_faults.load(Ordering::Relaxed)
    );
    println!("| actuations recorded scaled / failed | {scaled} / {failed} |");
    println!("| actuations lost | {lost} |");
    println!("| actuations duplicated (key applied twice) | {duplicated} |");
    println!("| failed actuations the platform applied | {phantom} |");
    println!("| policies whose platform count differs from the last recorded scale | {mismatched} |");
    println!("| RSS after 60 s / at the end / peak | {} / {} / {} MiB |", warm / 1024, last / 1024, peak / 1024);
    println!("| RSS growth after warm-up | {:+.1} % |", (last as f64 - warm as f64) / warm.max(1) as f64 * 100.0);
}
