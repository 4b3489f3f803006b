//! The simulation as a whole: the oracle is never beaten, HPA follows its
//! documented rules, and a Lua policy decides exactly as its built-in twin.

use moontide_core::strategy::{Condition, Threshold};
use moontide_core::{Behaviour, ManualClock, PolicySpec, StrategyConfig, Timestamp};
use moontide_lua::{Limits, LuaStrategy, Origin};
use moontide_sim::baseline::{Oracle, StaticPeak};
use moontide_sim::kpa::{Kpa, KpaConfig};
use moontide_sim::policy::{PolicyScaler, SimMetric, hpa};
use moontide_sim::run::{Autoscaler, Load, Options, View, run};
use moontide_sim::service::Model;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn model() -> Model {
    Model { capacity: 10.0, startup: 30.0, drain: 0.0, service_time: 0.05, slo: 0.5 }
}

/// A random walk of request rates, 10 s per step.
fn random_trace(seed: u64, steps: usize) -> Vec<Option<f64>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut r = 20.0;
    (0..steps)
        .map(|_| {
            r = (r + rng.f64() * 30.0 - 15.0).clamp(0.0, 120.0);
            if rng.u8(..) < 8 {
                r *= 2.0
            } // an occasional spike
            Some(r)
        })
        .collect()
}

#[test]
fn the_oracle_is_never_beaten_on_cost_at_zero_slo_violations() {
    let m = model();
    for seed in 0..12 {
        let rates = random_trace(seed, 180);
        let load = Load { rates: &rates, step: 10.0, start: 1_700_000_000.0 };
        let opts = Options::default();
        let mut o = Oracle::new(&m, &load, opts.dt);
        let first = Options { initial: o.initial(), ..opts.clone() };
        let oracle = run(&load, &m, &mut o, &first);
        assert_eq!(oracle.scores.slo_violations_pct, 0.0, "seed {seed}: the oracle meets the SLO");
        assert_eq!(oracle.scores.theta_u, 0.0, "seed {seed}: the oracle is never under-provisioned");
        let mut others: Vec<Box<dyn Autoscaler>> = vec![
            Box::new(StaticPeak::new(&m, &load, opts.dt)),
            Box::new(hpa(60.0, 1, 50)),
            Box::new(Kpa::new(KpaConfig::defaults(m.capacity))),
        ];
        for scaler in &mut others {
            let r = run(&load, &m, scaler.as_mut(), &opts);
            if r.scores.slo_violations_pct == 0.0 {
                assert!(
                    r.scores.cost_replica_hours >= oracle.scores.cost_replica_hours - 1e-9,
                    "seed {seed}: {} cost {} < oracle {}",
                    r.name,
                    r.scores.cost_replica_hours,
                    oracle.scores.cost_replica_hours
                );
            }
        }
    }
}

fn view(now: f64, current: u32, cpu: f64) -> View {
    View { now, current, ready: current, cpu, scraped: true, ..Default::default() }
}

/// HPA's documented rules, worked by hand.
#[test]
fn hpa_follows_its_documented_rules() {
    let mut h = hpa(60.0, 1, 20);
    let t0 = 1_700_000_000.0;
    // 90 % on 2 pods: ceil(2 × 90 / 60) = 3
    assert_eq!(h.decide(&view(t0, 2, 90.0)), 3);
    // 63 % on 3: ratio 1.05 is within the 0.1 tolerance: hold
    assert_eq!(h.decide(&view(t0 + 15.0, 3, 63.0)), 3);
    // 400 % on 3 (a saturated service reports at most 100 % here, but the rule): ceil(3 × 400 / 60) = 20,
    // limited to max(3 + 4, 3 × 2) = 7 within 15 s
    assert_eq!(h.decide(&view(t0 + 30.0, 3, 400.0)), 7);
    // load falls: 10 % on 7 wants ceil(7 × 10 / 60) = 2, but the highest recommendation of the last
    // 300 s (20) holds the count at 7 until it leaves the window
    let mut t = t0 + 45.0;
    while t < t0 + 330.0 {
        assert_eq!(h.decide(&view(t, 7, 10.0)), 7, "t0 + {}", t - t0);
        t += 15.0;
    }
    // once the window has passed, scale-down (100 % per 15 s allowed) goes straight to 2
    let mut n = 7;
    while t < t0 + 700.0 && n != 2 {
        n = h.decide(&view(t, n, 10.0));
        t += 15.0;
    }
    assert_eq!(n, 2);
    assert!(t <= t0 + 360.0, "scaled down at t0 + {}", t - t0);
}

#[test]
fn a_lua_policy_decides_exactly_as_its_built_in_twin() {
    let threshold = StrategyConfig::Threshold(Threshold {
        step_up: 1,
        step_down: 1,
        conditions: vec![Condition {
            metric: "cpu".into(),
            upper: Some(80.0),
            lower: Some(30.0),
            up_for: Duration::ZERO,
            down_for: Duration::ZERO,
        }],
    });
    let spec = |checks: BTreeMap<String, StrategyConfig>| PolicySpec {
        name: "p".into(),
        interval: Duration::from_secs(15),
        min: 1,
        max: 30,
        checks,
        behaviour: Behaviour::default(),
    };
    let lua_src = r#"
        function decide(ctx)
          local cpu = ctx.metrics.cpu.value
          if cpu == nil then return nil, "no data" end
          if cpu > 80 then return ctx.current + 1 end
          if cpu < 30 then return ctx.current - 1 end
          return nil
        end"#;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
    let lua = LuaStrategy::load(
        Origin::Inline { name: "twin.lua".into(), source: lua_src.into() },
        Limits::default(),
        Duration::from_secs(600),
        clock.clone(),
    )
    .unwrap();
    let bind = vec![("cpu".to_string(), SimMetric::Cpu)];
    let mut built_in = PolicyScaler::new(
        "built-in",
        spec(BTreeMap::from([("c".to_string(), threshold)])),
        bind.clone(),
        vec![],
        Arc::new(ManualClock::default()),
    )
    .keep_decisions();
    let lua_checks = BTreeMap::from([(
        "c".to_string(),
        StrategyConfig::Lua(serde_json::from_value(serde_json::json!({"source": "x"})).unwrap()),
    )]);
    let mut scripted =
        PolicyScaler::new("lua", spec(lua_checks), bind, vec![("c".into(), lua)], clock).keep_decisions();

    let rates = random_trace(7, 360);
    let load = Load { rates: &rates, step: 10.0, start: 1_700_000_000.0 };
    let m = model();
    let a = run(&load, &m, &mut built_in, &Options::default());
    let b = run(&load, &m, &mut scripted, &Options::default());
    let seq = |p: &PolicyScaler| p.decisions().iter().map(|d| (d.at, d.current, d.desired)).collect::<Vec<_>>();
    assert_eq!(seq(&built_in).len(), 240);
    assert!(seq(&built_in).iter().any(|(_, c, d)| d > c) && seq(&built_in).iter().any(|(_, c, d)| d < c));
    assert_eq!(seq(&built_in), seq(&scripted));
    assert_eq!(a.scores, b.scores);
}
