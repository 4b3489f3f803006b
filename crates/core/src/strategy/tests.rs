//! Table-driven tests of the built-in strategies, on virtual time.

use super::*;
use crate::testkit::{Metrics, secs};

// ---------------------------------------------------------------- threshold

fn cond(metric: &str, upper: Option<f64>, lower: Option<f64>, up_for: u64, down_for: u64) -> Condition {
    Condition { metric: metric.into(), upper, lower, up_for: secs(up_for), down_for: secs(down_for) }
}

fn threshold(conditions: Vec<Condition>) -> Threshold {
    Threshold { step_up: 1, step_down: 1, conditions }
}

/// cpu: up above 80 for 30 s, down below 40 for 30 s.
fn cpu_threshold() -> Threshold {
    threshold(vec![cond("cpu", Some(80.0), Some(40.0), 30, 30)])
}

#[test]
fn threshold_up_fires_only_once_the_value_has_stayed_above_for_up_for() {
    // (readings every 10 s ending at t = 100, desired at current = 4)
    let cases: &[(&str, &[f64], Option<u32>)] = &[
        ("above for 0 s", &[50.0, 50.0, 50.0, 90.0], None),
        ("above for 20 s (less)", &[50.0, 90.0, 90.0, 90.0], None),
        ("above for 30 s (exactly)", &[50.0, 90.0, 90.0, 90.0, 90.0], Some(5)),
        ("above for 40 s (more)", &[90.0, 90.0, 90.0, 90.0, 90.0], Some(5)),
        ("dipped to the bound (not above) 10 s ago", &[90.0, 90.0, 90.0, 80.0, 90.0], None),
        ("above for long, back to 80 now", &[90.0, 90.0, 90.0, 90.0, 80.0], None),
    ];
    for (name, values, want) in cases {
        let m = Metrics::new().every_10s("cpu", 100, values);
        let rec = cpu_threshold().decide(&m.obs(100, 4));
        assert_eq!(rec.desired, *want, "{name}: {rec:?}");
        assert_eq!(rec.error, None, "{name}");
        if want.is_none() && values.last() == Some(&90.0) {
            assert!(rec.reason.starts_with("waiting: cpu 90 > 80 for "), "{name}: {}", rec.reason);
        }
    }
}

#[test]
fn threshold_up_reason_says_how_long_and_the_step() {
    let m = Metrics::new().every_10s("cpu", 100, &[90.0, 91.0, 92.0, 95.0]);
    let rec = cpu_threshold().decide(&m.obs(100, 4));
    assert_eq!(rec, Recommendation::want(5, "cpu 95 > 80 for 30s: +1"));
    let m = Metrics::new().every_10s("cpu", 100, &[90.0, 95.0]);
    let rec = cpu_threshold().decide(&m.obs(100, 4));
    assert_eq!(rec, Recommendation::none("waiting: cpu 95 > 80 for 10s of 30s"));
}

#[test]
fn threshold_down_fires_only_once_the_value_has_stayed_below_for_down_for() {
    let cases: &[(&str, &[f64], Option<u32>)] = &[
        ("below for 20 s (less)", &[50.0, 10.0, 10.0, 10.0], None),
        ("below for 30 s (exactly)", &[50.0, 10.0, 10.0, 10.0, 10.0], Some(3)),
        ("below for 40 s (more)", &[10.0, 10.0, 10.0, 10.0, 10.0], Some(3)),
        ("at the lower bound is not below", &[10.0, 10.0, 10.0, 40.0], None),
    ];
    for (name, values, want) in cases {
        let m = Metrics::new().every_10s("cpu", 100, values);
        let rec = cpu_threshold().decide(&m.obs(100, 4));
        assert_eq!(rec.desired, *want, "{name}: {rec:?}");
    }
    let m = Metrics::new().every_10s("cpu", 100, &[10.0, 10.0, 12.0, 10.0]);
    assert_eq!(cpu_threshold().decide(&m.obs(100, 4)), Recommendation::want(3, "cpu 10 < 40 for 30s: -1"));
}

#[test]
fn threshold_runs_are_broken_by_failed_readings_and_long_holes() {
    // interval 10 s, so max_gap = 21 s; up_for = 30 s; now = 100
    type Points = &'static [(i64, Option<f64>)];
    let cases: &[(&str, Points, Option<u32>)] = &[
        ("unbroken 30 s", &[(70, Some(90.0)), (80, Some(90.0)), (90, Some(90.0)), (100, Some(90.0))], Some(5)),
        ("failed reading 20 s ago", &[(70, Some(90.0)), (80, None), (90, Some(90.0)), (100, Some(90.0))], None),
        (
            "failed reading before the run",
            &[(60, None), (70, Some(90.0)), (80, Some(90.0)), (100, Some(90.0))],
            Some(5),
        ),
        ("hole of 20 s (within max_gap)", &[(60, Some(90.0)), (80, Some(90.0)), (100, Some(90.0))], Some(5)),
        // without the oldest point the run is 29 s: only a continuous 21 s hole lets it count
        (
            "hole of 21 s (exactly max_gap)",
            &[(50, Some(90.0)), (71, Some(90.0)), (90, Some(90.0)), (100, Some(90.0))],
            Some(5),
        ),
        (
            "hole of 22 s (longer than max_gap)",
            &[(49, Some(90.0)), (71, Some(90.0)), (90, Some(90.0)), (100, Some(90.0))],
            None,
        ),
        (
            "hole of 30 s breaks a 40 s run",
            &[(40, Some(90.0)), (50, Some(90.0)), (80, Some(90.0)), (100, Some(90.0))],
            None,
        ),
    ];
    for (name, points, want) in cases {
        let m = Metrics::new().with("cpu", points);
        let rec = cpu_threshold().decide(&m.obs(100, 4));
        assert_eq!(rec.desired, *want, "{name}: {rec:?}");
    }
}

#[test]
fn threshold_scale_up_is_an_or_of_conditions() {
    let t = threshold(vec![cond("cpu", Some(80.0), Some(20.0), 0, 0), cond("mem", Some(70.0), Some(30.0), 0, 0)]);
    let cases: &[(f64, f64, Option<u32>, &str)] = &[
        (90.0, 50.0, Some(6), "cpu 90 > 80 for 0s: +1"),
        (50.0, 75.0, Some(6), "mem 75 > 70 for 0s: +1"),
        (90.0, 75.0, Some(6), "cpu 90 > 80 for 0s, mem 75 > 70 for 0s: +1"),
        (90.0, 10.0, Some(6), "cpu 90 > 80 for 0s: +1"),
    ];
    for &(cpu, mem, want, reason) in cases {
        let m = Metrics::new().one("cpu", 100, cpu).one("mem", 100, mem);
        let rec = t.decide(&m.obs(100, 5));
        assert_eq!(
            rec,
            Recommendation { desired: want, reason: reason.into(), error: None, floor: false },
            "cpu {cpu} mem {mem}"
        );
    }
}

#[test]
fn threshold_scale_down_needs_every_bounded_condition() {
    let t = threshold(vec![
        cond("cpu", Some(80.0), Some(20.0), 0, 0),
        cond("mem", Some(70.0), Some(30.0), 0, 0),
        // up-only: takes no part in scale-down while it is not high
        cond("latency", Some(500.0), None, 60, 0),
    ]);
    let cases: &[(f64, f64, f64, Option<u32>)] = &[
        (10.0, 20.0, 100.0, Some(4)),
        (10.0, 50.0, 100.0, None), // mem between its bounds blocks scale-down
        (50.0, 20.0, 100.0, None), // cpu between its bounds blocks scale-down
        (10.0, 30.0, 100.0, None), // mem at its lower bound is not below it
        // latency above its upper bound, not yet for 60 s: no scale-up yet, and
        // certainly no scale-down while a metric is high
        (10.0, 20.0, 900.0, None),
    ];
    for &(cpu, mem, latency, want) in cases {
        let m = Metrics::new().one("cpu", 100, cpu).one("mem", 100, mem).one("latency", 100, latency);
        let rec = t.decide(&m.obs(100, 5));
        assert_eq!(rec.desired, want, "cpu {cpu} mem {mem} latency {latency}: {rec:?}");
    }
}

#[test]
fn threshold_between_bounds_has_no_opinion() {
    let t = cpu_threshold();
    // a climb, a plateau between the bounds and a dip: the check never flips
    // between up and down while the value stays inside [40, 80]
    for (end, values) in [(100, vec![79.0, 80.0, 41.0, 40.0, 60.0]), (100, vec![90.0, 90.0, 90.0, 90.0, 70.0])] {
        let m = Metrics::new().every_10s("cpu", end, &values);
        let rec = t.decide(&m.obs(end, 4));
        assert_eq!(rec.desired, None, "{values:?}");
        assert_eq!(rec.error, None);
        assert_eq!(rec.reason, format!("within bounds: cpu {}", values.last().unwrap()));
    }
}

#[test]
fn threshold_failed_reading_is_an_error_and_never_a_scale_down() {
    let t = threshold(vec![cond("cpu", Some(80.0), Some(20.0), 0, 0), cond("mem", Some(70.0), Some(30.0), 0, 0)]);
    // mem is low, cpu fails: no scale-down
    let m = Metrics::new().with("cpu", &[(90, Some(10.0)), (100, None)]).one("mem", 100, 10.0);
    let rec = t.decide(&m.obs(100, 5));
    assert_eq!(rec.desired, None, "{rec:?}");
    assert_eq!(rec.error.as_deref(), Some("metric `cpu` reading failed, is stale or was held back"));
    assert!(rec.reason.starts_with("no decision: "), "{}", rec.reason);

    // mem is high, cpu fails: scale-up still recommended, with the error attached
    let m = Metrics::new().with("cpu", &[(100, None)]).one("mem", 100, 95.0);
    let rec = t.decide(&m.obs(100, 5));
    assert_eq!(rec.desired, Some(6), "{rec:?}");
    assert_eq!(rec.error.as_deref(), Some("metric `cpu` reading failed, is stale or was held back"));

    // other ways of missing data
    let cases: &[(&str, Metrics, &str)] = &[
        ("undeclared", Metrics::new().one("mem", 100, 10.0), "metric `cpu` is not declared by the policy"),
        ("no reading yet", Metrics::new().with("cpu", &[]).one("mem", 100, 10.0), "metric `cpu` has no reading yet"),
        (
            "no reading this tick",
            Metrics::new().one("cpu", 80, 10.0).one("mem", 100, 10.0),
            "metric `cpu` has no reading this tick",
        ),
    ];
    for (name, m, err) in cases {
        let rec = t.decide(&m.obs(100, 5));
        assert_eq!(rec, Recommendation::failed(*err), "{name}");
    }
    // a reading exactly one interval old still counts as this tick's
    let m = Metrics::new().one("cpu", 90, 10.0).one("mem", 100, 10.0);
    assert_eq!(t.decide(&m.obs(100, 5)).desired, Some(4));
}

#[test]
fn threshold_failed_up_only_metric_still_blocks_scale_down() {
    // a failed reading of a metric without `lower` must still stop a scale-down
    let t = threshold(vec![cond("cpu", None, Some(20.0), 0, 0), cond("errors", Some(5.0), None, 0, 0)]);
    let m = Metrics::new().one("cpu", 100, 5.0).with("errors", &[(100, None)]);
    let rec = t.decide(&m.obs(100, 5));
    assert_eq!(rec.desired, None, "{rec:?}");
    assert!(rec.error.is_some());
}

#[test]
fn threshold_step_sizes() {
    // (step_up, step_down, current, cpu) -> desired
    let cases: &[(u32, u32, u32, f64, u32)] = &[
        (1, 1, 4, 95.0, 5),
        (3, 1, 4, 95.0, 7),
        (1, 2, 4, 5.0, 2),
        (1, 2, 1, 5.0, 0), // never below zero
        (1, 1, 0, 5.0, 0),
        (2, 1, 0, 95.0, 2),
        (5, 1, u32::MAX - 2, 95.0, u32::MAX), // saturates
    ];
    for &(step_up, step_down, current, cpu, want) in cases {
        let t = Threshold { step_up, step_down, conditions: vec![cond("cpu", Some(80.0), Some(40.0), 0, 0)] };
        let m = Metrics::new().one("cpu", 100, cpu);
        let rec = t.decide(&m.obs(100, current));
        assert_eq!(rec.desired, Some(want), "up {step_up} down {step_down} current {current} cpu {cpu}");
    }
    let t = Threshold { step_up: 3, step_down: 2, conditions: vec![cond("cpu", Some(80.0), Some(40.0), 0, 0)] };
    let m = Metrics::new().one("cpu", 100, 95.0);
    assert!(t.decide(&m.obs(100, 1)).reason.ends_with(": +3"));
    let m = Metrics::new().one("cpu", 100, 5.0);
    assert!(t.decide(&m.obs(100, 4)).reason.ends_with(": -2"));
}

#[test]
fn threshold_validate_names_each_problem() {
    let ok = cpu_threshold();
    assert_eq!(ok.validate(), Vec::<String>::new());
    let cases: Vec<(Threshold, Vec<&str>)> = vec![
        (threshold(vec![]), vec!["`conditions` is empty: give at least one { metric, upper, lower }"]),
        (
            Threshold { step_up: 0, step_down: 0, conditions: vec![cond("cpu", Some(80.0), None, 0, 0)] },
            vec!["`step_up` must be at least 1", "`step_down` must be at least 1"],
        ),
        (
            threshold(vec![cond("cpu", Some(80.0), None, 0, 0), cond("mem", None, None, 0, 0)]),
            vec!["conditions[1] (metric `mem`): give `upper`, `lower` or both"],
        ),
        (
            threshold(vec![cond("cpu", Some(40.0), Some(40.0), 0, 0)]),
            vec!["conditions[0] (metric `cpu`): `lower` (40) must be below `upper` (40)"],
        ),
        (
            threshold(vec![cond("cpu", Some(40.0), Some(62.5), 0, 0)]),
            vec!["conditions[0] (metric `cpu`): `lower` (62.5) must be below `upper` (40)"],
        ),
        (
            threshold(vec![cond("cpu", Some(f64::INFINITY), Some(f64::NAN), 0, 0)]),
            vec![
                "conditions[0] (metric `cpu`): `upper` must be a finite number",
                "conditions[0] (metric `cpu`): `lower` must be a finite number",
            ],
        ),
    ];
    for (t, want) in cases {
        assert_eq!(StrategyConfig::Threshold(t.clone()).validate(), want, "{t:?}");
    }
}

// ---------------------------------------------------------- target_tracking

fn tracked(metric: &str, target: f64, aggregate: Aggregate) -> TrackedMetric {
    TrackedMetric { metric: metric.into(), target, aggregate, activation: None }
}

fn tracking(tolerance: f64, targets: Vec<TrackedMetric>) -> TargetTracking {
    TargetTracking { tolerance, targets }
}

#[test]
fn target_tracking_average_is_the_hpa_rule() {
    // (current, value, target, tolerance) -> desired
    let cases: &[(u32, f64, f64, f64, u32)] = &[
        (4, 90.0, 60.0, 0.1, 6),
        (4, 30.0, 60.0, 0.1, 2),
        (4, 61.0, 60.0, 0.1, 4), // ratio 1.017: inside
        (10, 105.0, 100.0, 0.1, 10),
        (10, 95.0, 100.0, 0.1, 10),
        (10, 120.0, 100.0, 0.1, 12), // ratio 1.2: outside
        (10, 85.0, 100.0, 0.1, 9),   // ratio 0.85: outside, ceil(8.5)
        (10, 105.0, 100.0, 0.0, 11), // no tolerance: ceil(10.5)
        (4, 125.0, 100.0, 0.25, 4),  // exactly on the tolerance: inside
        (4, 126.0, 100.0, 0.25, 6),  // just beyond: ceil(5.04)
        (1, 1.0, 100.0, 0.1, 1),     // a little load keeps one replica
        (5, 0.0, 60.0, 0.1, 0),
        // float dust: these products are a hair above a whole number
        (3, 50.0, 50.0, 0.0, 3),
        (5, 4.2, 3.0, 0.0, 7), // 5 × (4.2 / 3) = 7.000000000000001
        (2, 2.1, 0.3, 0.0, 14),
        (7, 29.0, 7.0, 0.0, 29),
    ];
    for &(current, value, target, tolerance, want) in cases {
        let s = tracking(tolerance, vec![tracked("cpu", target, Aggregate::Average)]);
        let m = Metrics::new().one("cpu", 100, value);
        let rec = s.decide(&m.obs(100, current));
        assert_eq!(rec.desired, Some(want), "current {current} value {value} target {target} tol {tolerance}: {rec:?}");
        assert_eq!(rec.error, None);
    }
}

#[test]
fn target_tracking_reasons_show_the_rule_or_the_tolerance() {
    let s = tracking(0.1, vec![tracked("cpu", 60.0, Aggregate::Average)]);
    let m = Metrics::new().one("cpu", 100, 90.0);
    assert_eq!(s.decide(&m.obs(100, 4)).reason, "cpu 90 vs target 60: ceil(4 × 90 / 60) = 6");
    let m = Metrics::new().one("cpu", 100, 63.0);
    assert_eq!(s.decide(&m.obs(100, 4)).reason, "cpu 63 ≈ target 60 (within tolerance 0.1)");
}

#[test]
fn target_tracking_total_scales_from_zero() {
    // (current, value, target per replica) -> desired
    let cases: &[(u32, f64, f64, u32)] = &[
        (0, 250.0, 100.0, 3),
        (0, 0.0, 100.0, 0),
        (0, 1.0, 100.0, 1),
        (0, 2.1, 0.7, 3), // 2.1 / 0.7 = 3.0000000000000004
        (2, 250.0, 100.0, 3),
        (3, 310.0, 100.0, 3), // ratio 310 / 300: inside the tolerance
        (3, 200.0, 100.0, 2),
        (10, 1050.0, 100.0, 10),
        (10, 1200.0, 100.0, 12),
    ];
    for &(current, value, target, want) in cases {
        let s = tracking(0.1, vec![tracked("rps", target, Aggregate::Total)]);
        let m = Metrics::new().one("rps", 100, value);
        let rec = s.decide(&m.obs(100, current));
        assert_eq!(rec, Recommendation { desired: Some(want), error: None, ..rec.clone() }, "{current} {value}");
    }
    let s = tracking(0.1, vec![tracked("rps", 100.0, Aggregate::Total)]);
    let m = Metrics::new().one("rps", 100, 250.0);
    assert_eq!(s.decide(&m.obs(100, 0)).reason, "rps 250 vs target 100: ceil(250 / 100) = 3");
}

#[test]
fn target_tracking_takes_the_largest_count_of_several_metrics() {
    let s = tracking(0.1, vec![tracked("cpu", 60.0, Aggregate::Average), tracked("rps", 100.0, Aggregate::Total)]);
    // (current, cpu, rps) -> desired
    let cases: &[(u32, f64, f64, u32, &str)] = &[
        (4, 90.0, 300.0, 6, "cpu"), // cpu 6, rps 3
        (4, 30.0, 700.0, 7, "rps"), // cpu 2, rps 7
        (4, 62.0, 100.0, 4, "cpu"), // cpu within tolerance (4) beats rps 1
        (4, 15.0, 100.0, 1, "cpu"), // both lower: cpu 1, rps 1 → first wins ties
        (4, 30.0, 410.0, 4, "rps"), // rps within tolerance
    ];
    for &(current, cpu, rps, want, by) in cases {
        let m = Metrics::new().one("cpu", 100, cpu).one("rps", 100, rps);
        let rec = s.decide(&m.obs(100, current));
        assert_eq!(rec.desired, Some(want), "cpu {cpu} rps {rps}: {rec:?}");
        assert!(rec.reason.starts_with(by), "cpu {cpu} rps {rps}: {}", rec.reason);
    }
}

#[test]
fn target_tracking_average_with_no_replicas_has_no_opinion() {
    let s = tracking(0.1, vec![tracked("cpu", 60.0, Aggregate::Average)]);
    let m = Metrics::new().one("cpu", 100, 0.0);
    let rec = s.decide(&m.obs(100, 0));
    // not an error: a failed check at every tick would set off on_error's fallback at zero
    assert_eq!(rec, Recommendation::none("metric `cpu` is a per-replica average and there are no replicas"));

    // a total metric beside it decides alone: from zero on load, and staying at zero without it
    let s = tracking(0.1, vec![tracked("cpu", 60.0, Aggregate::Average), tracked("rps", 100.0, Aggregate::Total)]);
    let m = Metrics::new().one("cpu", 100, 0.0).one("rps", 100, 150.0);
    let rec = s.decide(&m.obs(100, 0));
    assert_eq!((rec.desired, rec.error), (Some(2), None));
    let m = Metrics::new().one("cpu", 100, 0.0).one("rps", 100, 0.0);
    let rec = s.decide(&m.obs(100, 0));
    assert_eq!((rec.desired, rec.error), (Some(0), None), "{}", rec.reason);
}

#[test]
fn target_tracking_missing_metric_keeps_only_a_scale_up() {
    let s = tracking(0.1, vec![tracked("cpu", 60.0, Aggregate::Average), tracked("mem", 50.0, Aggregate::Average)]);
    let failed_mem = "metric `mem` reading failed, is stale or was held back";
    // (cpu value, desired) with mem failing, at current = 4
    let cases: &[(f64, Option<u32>)] = &[
        (90.0, Some(6)), // up: kept
        (60.0, None),    // hold: not enough to decide
        (30.0, None),    // down: never on missing data
    ];
    for &(cpu, want) in cases {
        let m = Metrics::new().one("cpu", 100, cpu).with("mem", &[(100, None)]);
        let rec = s.decide(&m.obs(100, 4));
        assert_eq!(rec.desired, want, "cpu {cpu}: {rec:?}");
        assert_eq!(rec.error.as_deref(), Some(failed_mem), "cpu {cpu}");
        if want.is_none() {
            assert_eq!(rec, Recommendation::failed(failed_mem));
        }
    }
    // every metric missing or unusable
    let cases: &[(&str, Metrics, &str)] = &[
        (
            "both failed",
            Metrics::new().with("cpu", &[(100, None)]).with("mem", &[(100, None)]),
            "metric `cpu` reading failed, is stale or was held back; metric `mem` reading failed, is stale or was held back",
        ),
        (
            "negative and undeclared",
            Metrics::new().one("cpu", 100, -1.0),
            "metric `cpu` has an unusable value -1; metric `mem` is not declared by the policy",
        ),
        (
            "NaN and stale",
            Metrics::new().one("cpu", 100, f64::NAN).one("mem", 50, 40.0),
            "metric `cpu` has an unusable value NaN; metric `mem` has no reading this tick",
        ),
    ];
    for (name, m, err) in cases {
        assert_eq!(s.decide(&m.obs(100, 4)), Recommendation::failed(*err), "{name}");
    }
}

#[test]
fn target_tracking_validate_names_each_problem() {
    let avg = |t: f64| tracked("cpu", t, Aggregate::Average);
    assert_eq!(tracking(0.1, vec![avg(60.0)]).validate(), Vec::<String>::new());
    assert_eq!(tracking(0.0, vec![avg(60.0)]).validate(), Vec::<String>::new());
    let cases: Vec<(TargetTracking, Vec<&str>)> = vec![
        (tracking(0.1, vec![]), vec!["`targets` is empty: give at least one { metric, target }"]),
        (tracking(1.0, vec![avg(60.0)]), vec!["`tolerance` must be in [0, 1), got 1"]),
        (tracking(-0.1, vec![avg(60.0)]), vec!["`tolerance` must be in [0, 1), got -0.1"]),
        (tracking(f64::NAN, vec![avg(60.0)]), vec!["`tolerance` must be in [0, 1), got NaN"]),
        (
            tracking(0.1, vec![avg(60.0), avg(0.0), avg(-5.0), avg(f64::INFINITY)]),
            vec![
                "targets[1] (metric `cpu`): `target` must be a positive number",
                "targets[2] (metric `cpu`): `target` must be a positive number",
                "targets[3] (metric `cpu`): `target` must be a positive number",
            ],
        ),
    ];
    for (t, want) in cases {
        assert_eq!(StrategyConfig::TargetTracking(t.clone()).validate(), want, "{t:?}");
    }
}

// ------------------------------------------------------------ StrategyConfig

fn parse(v: serde_json::Value) -> Result<StrategyConfig, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn strategy_config_deserializes_with_defaults_and_durations() {
    let s = parse(serde_json::json!({
        "strategy": "threshold",
        "conditions": [
            { "metric": "cpu", "upper": 80, "lower": 30, "up_for": "30s", "down_for": "5m" },
            { "metric": "queue", "upper": 100 }
        ]
    }))
    .unwrap();
    let want = StrategyConfig::Threshold(Threshold {
        step_up: 1,
        step_down: 1,
        conditions: vec![cond("cpu", Some(80.0), Some(30.0), 30, 300), cond("queue", Some(100.0), None, 0, 0)],
    });
    assert_eq!(s, want);
    assert_eq!(s.kind(), "threshold");
    assert_eq!(s.metrics(), vec!["cpu", "queue"]);
    assert_eq!(s.history_needed(), secs(300));

    let s = parse(serde_json::json!({
        "strategy": "target_tracking",
        "targets": [{ "metric": "cpu", "target": 60 }, { "metric": "rps", "target": 100, "aggregate": "total" }]
    }))
    .unwrap();
    let want = StrategyConfig::TargetTracking(tracking(
        0.1,
        vec![tracked("cpu", 60.0, Aggregate::Average), tracked("rps", 100.0, Aggregate::Total)],
    ));
    assert_eq!(s, want);
    assert_eq!(s.kind(), "target_tracking");
    assert_eq!(s.metrics(), vec!["cpu", "rps"]);
    assert_eq!(s.history_needed(), secs(0));
}

#[test]
fn strategy_config_rejects_unknown_fields_and_bad_values() {
    let cases = [
        (serde_json::json!({ "strategy": "threshold", "conditions": [], "step": 2 }), "unknown field `step`"),
        (
            serde_json::json!({ "strategy": "threshold", "conditions": [{ "metric": "cpu", "uper": 80 }] }),
            "unknown field `uper`",
        ),
        (
            serde_json::json!({ "strategy": "target_tracking", "targets": [], "tolerence": 0.2 }),
            "unknown field `tolerence`",
        ),
        (
            serde_json::json!({ "strategy": "target_tracking", "targets": [{ "metric": "cpu", "target": 1, "aggregate": "sum" }] }),
            "unknown variant `sum`",
        ),
        (serde_json::json!({ "strategy": "tresholds", "conditions": [] }), "unknown variant `tresholds`"),
        (serde_json::json!({ "conditions": [] }), "missing field `strategy`"),
        (
            serde_json::json!({ "strategy": "threshold", "conditions": [{ "metric": "cpu", "upper": 1, "up_for": "30" }] }),
            "has no unit",
        ),
        (
            serde_json::json!({ "strategy": "threshold", "conditions": [{ "metric": "cpu", "upper": 1, "up_for": 30 }] }),
            "a duration needs a unit: write \"30s\"",
        ),
    ];
    for (json, want) in cases {
        let err = parse(json.clone()).unwrap_err();
        assert!(err.contains(want), "{json}: {err}");
    }
}

#[test]
fn decide_dispatches_to_the_strategy() {
    let m = Metrics::new().every_10s("cpu", 100, &[90.0, 90.0, 90.0, 90.0]);
    let t = StrategyConfig::Threshold(cpu_threshold());
    assert_eq!(t.decide(&m.obs(100, 4)), cpu_threshold().decide(&m.obs(100, 4)));
    assert_eq!(t.decide(&m.obs(100, 4)).desired, Some(5));
    let tt = StrategyConfig::TargetTracking(tracking(0.1, vec![tracked("cpu", 60.0, Aggregate::Average)]));
    assert_eq!(tt.decide(&m.obs(100, 4)).desired, Some(6));
}

#[test]
fn num_formats_compactly() {
    let cases = [(82.5, "82.5"), (3.0, "3"), (0.0123, "0.012"), (1234.56, "1234.6"), (-2.0, "-2"), (0.1, "0.1")];
    for (v, want) in cases {
        assert_eq!(num(v), want, "{v}");
    }
}

#[test]
fn target_tracking_counts_starting_replicas_as_idle_when_scaling_up() {
    let tt = TargetTracking {
        tolerance: 0.1,
        targets: vec![TrackedMetric {
            metric: "cpu".into(),
            target: 60.0,
            aggregate: Aggregate::Average,
            activation: None,
        }],
    };
    // (current, ready, cpu of the ready ones, desired, the reason says)
    let cases = [
        // ceil(2 × 1.5) = 3: the 4 starting already cover it
        (
            6,
            2,
            90.0,
            6,
            "cpu 90 vs target 60 with 4 starting: ceil(2 ready × 90 / 60) = 3, covered by the 6 asked for: hold",
        ),
        (6, 4, 150.0, 10, "cpu 150 vs target 60 with 2 starting: ceil(4 ready × 150 / 60) = 10"),
        // 3 ready × 80 / 60 = 4 of the 4 asked for: within the tolerance, not "80 ≈ 60"
        (
            4,
            3,
            80.0,
            4,
            "cpu 80 vs target 60 with 1 starting: ceil(3 ready × 80 / 60) = 4, covered by the 4 asked for: hold",
        ),
        // 3 × 84 / 60 = 4.2 for 4: within the tolerance, though its ceiling is 5
        (
            4,
            3,
            84.0,
            4,
            "cpu 84 vs target 60 with 1 starting: ceil(3 ready × 84 / 60) = 5; 4.2 for the 4 asked for is within tolerance 0.1: hold",
        ),
        (6, 6, 90.0, 9, "cpu 90 vs target 60: ceil(6 × 90 / 60) = 9"), // all ready: the plain rule
        (6, 2, 30.0, 3, "cpu 30 vs target 60: ceil(6 × 30 / 60) = 3"), // scaling down uses the plain rule
    ];
    for (current, ready, cpu, want, why) in cases {
        let m = Metrics::new().one("cpu", 0, cpu);
        let mut obs = m.obs(0, current);
        obs.ready = ready;
        let rec = tt.decide(&obs);
        assert_eq!(rec.desired, Some(want), "current {current} ready {ready} cpu {cpu}: {}", rec.reason);
        assert_eq!(rec.reason, why);
    }
}

#[test]
fn target_tracking_activation_scales_to_and_from_zero() {
    let mut t = tracked("queue", 10.0, Aggregate::Total);
    t.activation = Some(5.0);
    let s = tracking(0.1, vec![t]);
    // (current, value) -> desired
    let cases: &[(u32, f64, u32)] = &[
        (0, 0.0, 0),
        (0, 5.0, 0),  // at the activation threshold: still asleep
        (0, 5.5, 1),  // above it: wake one replica (ceil(0.55) = 1)
        (0, 42.0, 5), // and as many as the load needs
        (3, 4.0, 0),  // quiet again: back to zero (stabilization and min still apply)
        (3, 31.0, 3), // otherwise the usual rule, tolerance included
    ];
    for &(current, value, want) in cases {
        let m = Metrics::new().one("queue", 100, value);
        let rec = s.decide(&m.obs(100, current));
        assert_eq!(rec.desired, Some(want), "current {current} value {value}: {}", rec.reason);
    }
    let m = Metrics::new().one("queue", 100, 2.0);
    assert_eq!(s.decide(&m.obs(100, 2)).reason, "queue 2 ≤ activation 5: inactive, 0");
    let mut avg = tracked("cpu", 60.0, Aggregate::Average);
    avg.activation = Some(1.0);
    let errs = StrategyConfig::TargetTracking(tracking(0.1, vec![avg])).validate();
    assert!(errs.iter().any(|e| e.contains("`activation` needs aggregate = \"total\"")), "{errs:?}");
}
