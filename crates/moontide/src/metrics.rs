//! Moontide's own metrics, served at `/metrics` in the Prometheus text
//! format: ticks, decisions by outcome, actuations and their errors per
//! target, source read latency, rate-limiter waits, Lua errors, each
//! policy's current, ready and desired counts, failing readings, held
//! readings, budget caps, circuit breakers and the wait of the last scale-up
//! from zero.
//!
//! One registry per process (several engines in one process, as in tests,
//! share it; their policies are told apart by name).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

/// The metrics.
pub struct Metrics {
    registry: Registry,
    /// Ticks per policy.
    pub ticks: Family<Labels, Counter>,
    /// Decisions per policy and outcome.
    pub decisions: Family<Labels, Counter>,
    /// Actuations per target and result (`ok`, `error`).
    pub actuations: Family<Labels, Counter>,
    /// Source read latency per source, seconds.
    pub read_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Seconds spent waiting for a target's rate limiter.
    pub rate_limit_wait: Family<Labels, Counter<f64, AtomicU64>>,
    /// Lua check errors per policy and check.
    pub lua_errors: Family<Labels, Counter>,
    /// Replica counts per policy and kind (`current`, `ready`, `desired`).
    pub replicas: Family<Labels, Gauge>,
    /// 1 while a target's circuit breaker is open.
    pub circuit_open: Family<Labels, Gauge>,
    /// A target's failed actuations in a row.
    pub target_failures: Family<Labels, Gauge>,
    /// Failed or stale readings per policy and metric.
    pub reading_errors: Family<Labels, Counter>,
    /// Ticks in a row a policy's metric has had no usable reading: the alert to watch.
    pub reading_failing: Family<Labels, Gauge>,
    /// Readings held back by the sanity check, per policy and metric.
    pub readings_held: Family<Labels, Counter>,
    /// Ticks in which a budget capped scale-up, per policy and scope.
    pub budget_capped: Family<Labels, Counter>,
    /// The last scale-up from zero's wait for a first ready replica, seconds, per policy.
    pub wake_from_zero: Family<Labels, Gauge<f64, AtomicU64>>,
}

fn read_histogram() -> Histogram {
    // 1 ms to about 32 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("moontide");
        let m = Metrics {
            ticks: Family::default(),
            decisions: Family::default(),
            actuations: Family::default(),
            read_seconds: Family::new_with_constructor(read_histogram),
            rate_limit_wait: Family::default(),
            lua_errors: Family::default(),
            replicas: Family::default(),
            circuit_open: Family::default(),
            target_failures: Family::default(),
            reading_errors: Family::default(),
            reading_failing: Family::default(),
            readings_held: Family::default(),
            budget_capped: Family::default(),
            wake_from_zero: Family::default(),
            registry: Registry::default(),
        };
        registry.register("ticks", "Policy ticks", m.ticks.clone());
        registry.register("decisions", "Decisions, by policy and outcome", m.decisions.clone());
        registry.register("actuations", "Scaling requests to targets, by target and result", m.actuations.clone());
        registry.register("source_read_seconds", "Time to read a source, by source", m.read_seconds.clone());
        registry.register(
            "rate_limit_wait_seconds",
            "Time actuations waited for a target's rate limiter",
            m.rate_limit_wait.clone(),
        );
        registry.register("lua_errors", "Lua check errors, by policy and check", m.lua_errors.clone());
        registry.register(
            "replicas",
            "Replica counts, by policy and kind (current, ready, desired)",
            m.replicas.clone(),
        );
        registry.register("circuit_open", "1 while a target's circuit breaker is open", m.circuit_open.clone());
        registry.register("target_failures", "A target's failed actuations in a row", m.target_failures.clone());
        registry.register("reading_errors", "Failed or stale readings, by policy and metric", m.reading_errors.clone());
        registry.register(
            "reading_failing_ticks",
            "Ticks in a row without a usable reading, by policy and metric (alert when above zero for long)",
            m.reading_failing.clone(),
        );
        registry.register(
            "readings_held",
            "Readings held back by the sanity check, by policy and metric",
            m.readings_held.clone(),
        );
        registry.register(
            "budget_capped",
            "Ticks in which a budget capped scale-up, by policy",
            m.budget_capped.clone(),
        );
        registry.register(
            "wake_from_zero_seconds",
            "The last scale-up from zero: seconds from it to the first tick that saw a replica ready, by policy",
            m.wake_from_zero.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One label pair.
pub fn label(k: &'static str, v: &str) -> Labels {
    vec![(k, v.to_string())]
}

/// Two label pairs.
pub fn labels2(k1: &'static str, v1: &str, k2: &'static str, v2: &str) -> Labels {
    vec![(k1, v1.to_string()), (k2, v2.to_string())]
}
