//! How long one `decide(ctx)` call takes: a policy reading five metrics'
//! values and one window average, the case the Lua issue sets a bar for
//! (median ≤ 2 µs per call in a release build). Prints figures; asserts nothing.
//!
//! cargo bench -p moontide-lua --bench decide

use moontide_core::{ManualClock, Observation, Point, Series, Timestamp};
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
function decide(ctx)
  local m = ctx.metrics
  local cpu, mem, rps, queue, latency = m.cpu.value, m.memory.value, m.rps.value, m.queue.value, m.latency.value
  local avg = m.cpu:avg(60)
  if avg > 70 or mem > 80 or latency > 200 then
    return ctx.current + 1, "hot"
  elseif avg < 30 and queue < 10 and rps < 100 then
    return ctx.current - 1, "cold"
  end
  return nil
end
"#;

const POLICY_NO_WINDOW: &str = r#"
function decide(ctx)
  local m = ctx.metrics
  local cpu, mem, rps, queue, latency = m.cpu.value, m.memory.value, m.rps.value, m.queue.value, m.latency.value
  if cpu > 70 or mem > 80 or latency > 200 then
    return ctx.current + 1, "hot"
  elseif cpu < 30 and queue < 10 and rps < 100 then
    return ctx.current - 1, "cold"
  end
  return nil
end
"#;

fn main() {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut series = BTreeMap::new();
    for (k, name) in ["cpu", "memory", "rps", "queue", "latency"].iter().enumerate() {
        let mut s = Series::new();
        for i in 0..60 {
            let v = 40.0 + ((i * 7 + k * 13) % 20) as f64;
            s.push(
                Point { at: now.minus(Duration::from_secs(59 - i as u64)), value: Some(v) },
                Duration::from_secs(600),
            );
        }
        series.insert(name.to_string(), s);
    }
    let obs =
        Observation { now, interval: Duration::from_secs(1), current: 4, ready: 4, min: 1, max: 10, series: &series };
    println!("decide(ctx), 200,000 calls in batches of 100, per call:");
    for (what, src) in [
        ("5 metric values + 1 window average (the bar: median <= 2 us)", POLICY),
        ("5 metric values, no window", POLICY_NO_WINDOW),
        ("empty decide (the call itself)", "function decide(ctx) return nil end"),
    ] {
        let clock = Arc::new(ManualClock::new(now));
        let origin = Origin::Inline { name: "bench.lua".into(), source: src.into() };
        let mut p = LuaStrategy::load(origin, Limits::default(), Duration::from_secs(600), clock).unwrap();
        let (rec, _) = p.decide(&obs);
        assert_eq!(rec.error, None, "{rec:?}");
        for _ in 0..20_000 {
            black_box(p.decide(black_box(&obs)));
        }
        // 2,000 batches of 100 calls; the per-call time of each batch.
        let mut per_call: Vec<f64> = (0..2_000)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..100 {
                    black_box(p.decide(black_box(&obs)));
                }
                t.elapsed().as_secs_f64() * 1e6 / 100.0
            })
            .collect();
        per_call.sort_by(f64::total_cmp);
        let q = |f: f64| per_call[((per_call.len() - 1) as f64 * f) as usize];
        println!("  {what}: median {:.2} us, p10 {:.2}, p90 {:.2}, p99 {:.2}", q(0.5), q(0.1), q(0.9), q(0.99));
    }

    let t = Instant::now();
    for _ in 0..200 {
        let origin = Origin::Inline { name: "bench.lua".into(), source: POLICY.into() };
        let clock = Arc::new(ManualClock::new(now));
        black_box(LuaStrategy::load(origin, Limits::default(), Duration::from_secs(600), clock).unwrap());
    }
    println!("  loading a policy (new sandbox + compile + ctx): {:.1} us", t.elapsed().as_secs_f64() * 1e6 / 200.0);
}
