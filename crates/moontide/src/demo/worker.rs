//! The demo's worker: a small HTTP server that spends real CPU per request and
//! reports its own CPU use in the guide's JSON shape.
//!
//! - `GET /work`    burns `--cpu-ms` of CPU time, one request at a time, then answers.
//! - `GET /metrics` `{"cpuUsage": <% of one core over the last 5 s>, "memoryUsage": <host memory %>}`.
//! - `GET /health`  `ok`.
//!
//! It exits by itself when its parent process goes away, so a killed demo
//! leaves no workers behind.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use clap::Args;
use nix::time::{ClockId, clock_gettime};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `moontide worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// CPU time each request to /work costs, in milliseconds.
    #[arg(long, default_value_t = 8)]
    pub cpu_ms: u64,
}

#[derive(Default)]
struct Usage {
    samples: VecDeque<(Instant, Duration)>,
    cpu_percent: f64,
    memory_percent: f64,
}

fn cpu_time(clock: ClockId) -> Duration {
    clock_gettime(clock).map(Duration::from).unwrap_or_default()
}

/// Burns `ms` of this thread's CPU time.
fn burn(ms: u64) -> u64 {
    let start = cpu_time(ClockId::CLOCK_THREAD_CPUTIME_ID);
    let budget = Duration::from_millis(ms);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    loop {
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            x ^= x >> 29;
        }
        if cpu_time(ClockId::CLOCK_THREAD_CPUTIME_ID).saturating_sub(start) >= budget {
            return std::hint::black_box(x);
        }
    }
}

/// Runs the worker until killed or orphaned.
pub fn main(args: WorkerArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("worker: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(args))
}

async fn serve(args: WorkerArgs) -> ExitCode {
    let usage = Arc::new(Mutex::new(Usage::default()));
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("worker: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(sample(usage.clone()));
    let cpu_ms = args.cpu_ms;
    // One request at a time burns CPU, on a thread beside the HTTP loop, so
    // /metrics and /health still answer while /work requests queue up.
    let lane = Arc::new(tokio::sync::Semaphore::new(1));
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let lane = lane.clone();
                async move {
                    let _turn = lane.acquire().await;
                    let x = tokio::task::spawn_blocking(move || burn(cpu_ms)).await.unwrap_or(0);
                    format!("ok {}\n", x & 0xff)
                }
            }),
        )
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(usage);
    let parent = nix::unistd::getppid();
    let orphaned = async move {
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            every.tick().await;
            if nix::unistd::getppid() != parent {
                return;
            }
        }
    };
    match axum::serve(listener, app).with_graceful_shutdown(orphaned).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn metrics(State(usage): State<Arc<Mutex<Usage>>>) -> axum::Json<serde_json::Value> {
    let u = usage.lock().unwrap_or_else(|p| p.into_inner());
    axum::Json(serde_json::json!({
        "cpuUsage": (u.cpu_percent * 10.0).round() / 10.0,
        "memoryUsage": (u.memory_percent * 10.0).round() / 10.0,
    }))
}

/// Every second: this process's CPU time over the last 5 s, and host memory use.
async fn sample(usage: Arc<Mutex<Usage>>) {
    let Ok(mut sys) = sysinfo::System::new() else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        sys.refresh_memory();
        let total = sys.total_memory() as f64;
        let mut u = usage.lock().unwrap_or_else(|p| p.into_inner());
        u.memory_percent = if total > 0.0 { sys.used_memory() as f64 / total * 100.0 } else { 0.0 };
        u.samples.push_back((Instant::now(), cpu_time(ClockId::CLOCK_PROCESS_CPUTIME_ID)));
        while u.samples.len() > 6 {
            u.samples.pop_front();
        }
        if let (Some(first), Some(last)) = (u.samples.front(), u.samples.back()) {
            let wall = last.0.duration_since(first.0).as_secs_f64();
            if wall > 0.0 {
                u.cpu_percent = last.1.saturating_sub(first.1).as_secs_f64() / wall * 100.0;
            }
        }
    }
}
