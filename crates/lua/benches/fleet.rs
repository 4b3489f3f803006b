//! 10,000 Lua policies loaded and ticking every second for 60 s, each on its
//! own task as `moontide run` schedules them, against in-memory metrics and an
//! in-memory target: the tick's decide, combine and guard steps, no network
//! and no store. Prints CPU use (cores, averaged over the run), peak RSS and
//! load time; asserts nothing.
//!
//! cargo bench -p moontide-lua --bench fleet
//! MOONTIDE_FLEET_POLICIES=1000 MOONTIDE_FLEET_SECONDS=10 cargo bench -p moontide-lua --bench fleet

use moontide_core::policy::conclude;
use moontide_core::{
    Behaviour, CheckOutcome, Decision, ManualClock, Observation, Outcome, Point, PolicyHistory, PolicySpec, Series,
    Timestamp,
};
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const POLICY: &str = r#"
function decide(ctx)
  local cpu, queue = ctx.metrics.cpu, ctx.metrics.queue
  if cpu.value == nil then return nil, "no data" end
  ctx.state.ticks = (ctx.state.ticks or 0) + 1
  local avg = cpu:avg(30)
  if avg > 70 or queue.value > 100 then
    return ctx.current + 1, "hot"
  elseif avg < 30 and queue.value < 10 then
    return ctx.current - 1, "cold"
  end
  return nil, "steady"
end
"#;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (user + system CPU seconds, peak RSS in KiB) of this process, from /proc.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0; // utime, stime (clock ticks of 1/100 s)
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, hwm)
}

struct Policy {
    spec: PolicySpec,
    strategy: LuaStrategy,
    series: BTreeMap<String, Series>,
    history: PolicyHistory,
    count: u32,
    phase: f64,
}

impl Policy {
    fn tick(&mut self, now: Timestamp) -> Decision {
        let t = now.as_millis() as f64 / 1000.0;
        let cpu = 50.0 + 40.0 * (t / 60.0 + self.phase).sin();
        let queue = (60.0 + 60.0 * (t / 45.0 + self.phase).cos()).max(0.0);
        let keep = Duration::from_secs(120);
        self.series.get_mut("cpu").unwrap().push(Point { at: now, value: Some(cpu) }, keep);
        self.series.get_mut("queue").unwrap().push(Point { at: now, value: Some(queue) }, keep);
        let obs = Observation {
            now,
            interval: self.spec.interval,
            current: self.count,
            ready: self.count,
            min: self.spec.min,
            max: self.spec.max,
            series: &self.series,
        };
        let (recommendation, state) = self.strategy.decide(&obs);
        let checks =
            vec![CheckOutcome { check: "lua".into(), strategy: "lua".into(), recommendation, state, forecast: None }];
        let eval = conclude(&self.spec, &obs, &self.history, checks);
        let mut d = Decision::from_evaluation(&self.spec.name, &obs, Vec::new(), eval);
        if d.desired != self.count {
            d.outcome = Outcome::Scaled { from: self.count, to: d.desired };
            self.count = d.desired;
        }
        self.history.note(&d);
        d
    }
}

fn main() {
    let n = env("MOONTIDE_FLEET_POLICIES", 10_000) as usize;
    let seconds = env("MOONTIDE_FLEET_SECONDS", 60);
    let now = || {
        Timestamp::from_millis(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
    };
    let (cpu0, _) = usage();
    let t0 = Instant::now();
    let clock = Arc::new(ManualClock::new(now()));
    let mut policies = Vec::with_capacity(n);
    for i in 0..n {
        let origin = Origin::Inline { name: format!("fleet-{i}.lua"), source: POLICY.into() };
        let strategy = LuaStrategy::load(origin, Limits::default(), Duration::from_secs(60), clock.clone()).unwrap();
        let spec = PolicySpec {
            name: format!("p{i}"),
            interval: Duration::from_secs(1),
            min: 1,
            max: 20,
            checks: BTreeMap::new(),
            behaviour: Behaviour::default(),
        };
        let series = ["cpu", "queue"].iter().map(|m| (m.to_string(), Series::new())).collect();
        let history = PolicyHistory::new(spec.history_retention());
        policies.push(Policy { spec, strategy, series, history, count: 3, phase: i as f64 * 0.37 });
    }
    let load = t0.elapsed();
    let (cpu1, rss_loaded) = usage();
    println!("fleet: {n} Lua policies (one Lua state each), ticking every 1 s for {seconds} s on a 2-worker runtime");
    println!(
        "  load: {:.2} s ({:.0} us per policy), {:.1} s CPU, RSS after load {} MiB",
        load.as_secs_f64(),
        load.as_secs_f64() * 1e6 / n as f64,
        cpu1 - cpu0,
        rss_loaded / 1024
    );

    let ticks = Arc::new(AtomicU64::new(0));
    let scaled = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let start = Instant::now();
    let (cpu_run0, _) = usage();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for mut p in policies {
            let (ticks, scaled, errors) = (ticks.clone(), scaled.clone(), errors.clone());
            tasks.spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
                loop {
                    every.tick().await;
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    let d = p.tick(now());
                    ticks.fetch_add(1, Ordering::Relaxed);
                    if matches!(d.outcome, Outcome::Scaled { .. }) {
                        scaled.fetch_add(1, Ordering::Relaxed);
                    }
                    if d.checks.iter().any(|c| c.recommendation.error.is_some()) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let wall = start.elapsed().as_secs_f64();
    let (cpu_run1, rss_peak) = usage();
    let cpu = cpu_run1 - cpu_run0;
    let t = ticks.load(Ordering::Relaxed);
    println!(
        "  run: {t} ticks in {wall:.1} s ({:.0}/s), {} scale actions, {} errors",
        t as f64 / wall,
        scaled.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "  CPU: {cpu:.1} s over {wall:.1} s = {:.2} cores on average ({:.1} us per tick); peak RSS {} MiB",
        cpu / wall,
        cpu * 1e6 / t.max(1) as f64,
        rss_peak / 1024
    );
}
