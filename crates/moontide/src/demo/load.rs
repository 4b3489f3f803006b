//! The demo's traffic: real HTTP requests at the rate the shape gives for each
//! second, spread evenly, round-robin over the ready workers.

use crate::targets::process::Instance;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// Most requests in flight; more are shed (counted, not sent).
const MAX_IN_FLIGHT: usize = 256;

/// Counters shared between the driver and the printer.
#[derive(Default)]
pub struct Stats {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    shed: AtomicU64,
    rate_milli: AtomicU64,
    window: Mutex<Vec<f64>>,
}

/// Totals at the end.
pub struct Totals {
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Errors and non-2xx.
    pub failed: u64,
    /// Not sent: too many in flight or no ready worker.
    pub shed: u64,
}

/// Latency over the window since the last look.
pub struct Window {
    /// Median latency in milliseconds (0 when nothing completed).
    pub p50_ms: f64,
}

impl Stats {
    /// The rate being driven now.
    pub fn rate(&self) -> f64 {
        self.rate_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Takes the latencies collected since the last call.
    pub fn take_window(&self) -> Window {
        let mut w = std::mem::take(&mut *self.window.lock().unwrap_or_else(|p| p.into_inner()));
        w.sort_by(f64::total_cmp);
        Window { p50_ms: w.get(w.len() / 2).copied().unwrap_or(0.0) }
    }

    /// All counters.
    pub fn totals(&self) -> Totals {
        Totals {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
        }
    }
}

/// Drives `shape` (requests/s per second, times `scale`) for `duration`; the
/// last value repeats once the shape runs out.
pub async fn drive(
    shape: Vec<f64>,
    scale: f64,
    duration: Duration,
    instances: watch::Receiver<Vec<Instance>>,
    stats: Arc<Stats>,
) {
    let client = match crate::http::client(Duration::from_secs(10)) {
        Ok(c) => c,
        Err(_) => return,
    };
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let start = Instant::now();
    let mut next_worker = 0usize;
    for sec in 0..duration.as_secs() {
        let rate = shape[(sec as usize).min(shape.len() - 1)] * scale;
        stats.rate_milli.store((rate * 1000.0) as u64, Ordering::Relaxed);
        let n = rate.round() as u64;
        for k in 0..n {
            let at = start + Duration::from_secs(sec) + Duration::from_secs_f64(k as f64 / n as f64);
            tokio::time::sleep_until(at).await;
            let ports: Vec<u16> = instances.borrow().iter().filter(|i| i.ready).map(|i| i.port).collect();
            if ports.is_empty() {
                stats.shed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let port = ports[next_worker % ports.len()];
            next_worker = next_worker.wrapping_add(1);
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                stats.shed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let client = client.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let ok = client
                    .get(format!("http://127.0.0.1:{port}/work"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                if ok {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    stats.window.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
                } else {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
        }
        tokio::time::sleep_until(start + Duration::from_secs(sec + 1)).await;
    }
}
