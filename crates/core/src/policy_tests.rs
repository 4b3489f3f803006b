//! Tests of `conclude` and `evaluate`: checks combined (safest wins), then the
//! guards, tick after tick on virtual time with the history fed back.

use super::*;
use crate::decision::{Decision, Outcome};
use crate::guard::{BehaviourConfig, DirectionConfig, GuardKind, OnError};
use crate::series::Point;
use crate::strategy::{Aggregate, Condition, Recommendation, TargetTracking, Threshold, TrackedMetric};
use crate::testkit::{Metrics, at, check, decision, hold, secs};
use crate::time::{Clock, ManualClock, Timestamp};

/// Guard settings that change nothing, with the given on-error settings.
fn quiet(fallback: Option<u32>, after: u32) -> Behaviour {
    let dir = DirectionConfig { stabilization: Some(Duration::ZERO), limits: Some(vec![]), ..Default::default() };
    BehaviourConfig {
        scale_up: dir.clone(),
        scale_down: dir,
        on_error: OnError { fallback, after: Some(after) },
        ..Default::default()
    }
    .resolve()
}

fn spec(checks: Vec<(&str, StrategyConfig)>, behaviour: Behaviour) -> PolicySpec {
    PolicySpec {
        name: "web".into(),
        interval: secs(10),
        min: 0,
        max: 100,
        checks: checks.into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
        behaviour,
    }
}

fn cpu_tracking(target: f64) -> StrategyConfig {
    StrategyConfig::TargetTracking(TargetTracking {
        tolerance: 0.1,
        targets: vec![TrackedMetric { metric: "cpu".into(), target, aggregate: Aggregate::Average, activation: None }],
    })
}

fn queue_threshold() -> StrategyConfig {
    StrategyConfig::Threshold(Threshold {
        step_up: 2,
        step_down: 1,
        conditions: vec![Condition {
            metric: "queue".into(),
            upper: Some(100.0),
            lower: Some(10.0),
            up_for: Duration::ZERO,
            down_for: Duration::ZERO,
        }],
    })
}

/// The decision the engine would record for this evaluation (`Scaled`, or `DryRun` in dry-run).
fn record(obs: &Observation<'_>, eval: &Evaluation, dry_run: bool) -> Decision {
    let (current, to) = (obs.current, eval.desired);
    let outcome = match () {
        _ if to == current => Outcome::Hold,
        _ if dry_run => Outcome::DryRun { from: current, to },
        _ => Outcome::Scaled { from: current, to },
    };
    let t = (obs.now.as_millis() / 1000) - crate::testkit::T0;
    decision(t, current, Some(eval.recommended), eval.checks.clone(), eval.guards.clone(), outcome)
}

#[test]
fn conclude_lets_the_safest_recommendation_win() {
    let want = |n| Recommendation::want(n, "r");
    let failed = || Recommendation::failed("metric `x` reading failed or is stale");
    let up_with_error = |n| Recommendation { error: Some("e".into()), ..Recommendation::want(n, "r") };
    // (check recommendations, current) -> (recommended, desired, on-error ran)
    type Case = (&'static str, Vec<Recommendation>, u32, u32, u32, bool);
    let cases: Vec<Case> = vec![
        ("largest opinion", vec![want(3), want(5), Recommendation::none("r")], 4, 5, 5, false),
        ("all lower: largest of them", vec![want(3), want(2)], 4, 3, 3, false),
        ("no opinion: current", vec![Recommendation::none("a"), Recommendation::none("b")], 4, 4, 4, false),
        ("no checks: current", vec![], 4, 4, 4, false),
        ("an error blocks scale-down", vec![want(2), failed()], 4, 2, 4, true),
        ("an error does not block scale-up", vec![want(7), failed()], 4, 7, 7, true),
        ("an up-with-error opinion counts", vec![up_with_error(6), want(2)], 4, 6, 6, true),
        ("all failed: current", vec![failed(), failed()], 4, 4, 4, true),
    ];
    for (name, recs, current, recommended, desired, on_error) in cases {
        let s = spec(vec![], quiet(None, 1));
        let m = Metrics::new();
        let checks: Vec<_> = recs.into_iter().enumerate().map(|(i, r)| check(&format!("c{i}"), r)).collect();
        let eval = conclude(&s, &m.obs(100, current), &PolicyHistory::new(secs(600)), checks.clone());
        assert_eq!(eval.checks, checks, "{name}");
        assert_eq!((eval.recommended, eval.desired), (recommended, desired), "{name}");
        assert_eq!(eval.guards.iter().any(|g| g.guard == GuardKind::OnError), on_error, "{name}: {:?}", eval.guards);
    }
}

#[test]
fn conclude_names_the_failing_check_and_applies_the_fallback_only_when_all_failed() {
    let s = spec(vec![], quiet(Some(8), 1));
    let m = Metrics::new();
    let h = PolicyHistory::new(secs(600));
    let failed = |name: &str| check(name, Recommendation::failed("metric `cpu` reading failed or is stale"));

    let eval = conclude(&s, &m.obs(100, 4), &h, vec![check("a", Recommendation::want(2, "low")), failed("b")]);
    assert_eq!(eval.desired, 4);
    assert_eq!(eval.guards[0].note, "scale-down blocked by a data error (b: metric `cpu` reading failed or is stale)");

    // every check failed: the fallback
    let eval = conclude(&s, &m.obs(100, 4), &h, vec![failed("a"), failed("b")]);
    assert_eq!(eval.desired, 8);
    // one check still recommends more capacity (with an error of its own): not "all failed"
    let up = Recommendation { error: Some("partial".into()), ..Recommendation::want(5, "up") };
    let eval = conclude(&s, &m.obs(100, 4), &h, vec![failed("a"), check("b", up)]);
    assert_eq!(eval.desired, 5);
    // one check has no opinion but no error either: not "all failed"
    let eval = conclude(&s, &m.obs(100, 4), &h, vec![failed("a"), check("b", Recommendation::none("fine"))]);
    assert_eq!(eval.desired, 4);
}

#[test]
fn a_reading_held_back_blocks_scale_down_but_sets_off_no_fallback() {
    let s = spec(vec![], quiet(Some(12), 1));
    let m = Metrics::new();
    let failed = || check("cpu", Recommendation::failed("metric `cpu` reading failed, is stale or was held back"));
    let mut h = PolicyHistory::new(secs(600));
    // two ticks of a source that is down
    h.note(&decision(80, 4, Some(4), vec![failed()], vec![], Outcome::Hold));
    h.note(&decision(90, 4, Some(4), vec![failed()], vec![], Outcome::Hold));
    assert_eq!(h.error_streak(), 2);
    // held this tick: the only check fails, but the count holds instead of jumping to the fallback
    let eval = conclude_shared(&s, &m.obs(100, 4), &h, vec![failed()], None, true);
    assert_eq!(eval.desired, 4, "{:?}", eval.guards);
    // and a held tick neither counts towards the failing streak nor breaks it
    let mut d = decision(100, 4, Some(4), vec![failed()], vec![], Outcome::Hold);
    d.inputs.push(crate::series::Input {
        metric: "cpu".into(),
        source: "app".into(),
        query: "/cpu".into(),
        at: at(100),
        value: Some(950.0),
        status: crate::series::ReadingStatus::Held,
        error: Some("implausible".into()),
    });
    h.note(&d);
    assert_eq!(h.error_streak(), 2);
    // not held: the same failure falls back
    let eval = conclude_shared(&s, &m.obs(110, 4), &h, vec![failed()], None, false);
    assert_eq!(eval.desired, 12);
}

#[test]
fn evaluate_runs_the_real_strategies() {
    let s = spec(vec![("cpu", cpu_tracking(60.0)), ("queue", queue_threshold())], quiet(None, 1));
    // (cpu, queue, current) -> desired
    let cases: &[(Option<f64>, Option<f64>, u32, u32)] = &[
        (Some(90.0), Some(50.0), 4, 6),  // cpu wants 6, queue no opinion
        (Some(60.0), Some(500.0), 4, 6), // cpu holds, queue +2
        (Some(90.0), Some(500.0), 4, 6), // both 6
        (Some(15.0), Some(5.0), 4, 3),   // cpu wants 1, queue wants 3: the larger
        (Some(15.0), Some(50.0), 4, 1),  // queue has no opinion: cpu's 1
        (None, Some(5.0), 4, 4),         // cpu failed: no scale-down
        (None, Some(500.0), 4, 6),       // cpu failed: scale-up still happens
        (Some(15.0), None, 4, 4),        // queue failed: no scale-down
        (Some(120.0), None, 4, 8),       // queue failed: cpu's scale-up still happens
    ];
    for &(cpu, queue, current, want) in cases {
        let m = Metrics::new().with("cpu", &[(100, cpu)]).with("queue", &[(100, queue)]);
        let eval = evaluate(&s, &m.obs(100, current), &PolicyHistory::new(secs(600)));
        assert_eq!(eval.desired, want, "cpu {cpu:?} queue {queue:?}: {eval:?}");
        let names: Vec<&str> = eval.checks.iter().map(|c| c.check.as_str()).collect();
        assert_eq!(names, vec!["cpu", "queue"]);
        assert_eq!(eval.checks[0].strategy, "target_tracking");
        assert_eq!(eval.checks[1].strategy, "threshold");
    }
}

#[test]
fn hpa_defaults_over_a_load_spike() {
    // One replica serves 60 % CPU at a load of 60; the load is 240 (4 replicas),
    // then 1200 (20) from t = 300 s, then 120 (2) from t = 600 s. Every tick
    // the policy sees cpu = load / replicas, as if it were an average.
    let s = PolicySpec {
        interval: secs(15),
        min: 1,
        max: 20,
        ..spec(vec![("cpu", cpu_tracking(60.0))], Behaviour::default())
    };
    let clock = ManualClock::new(at(0));
    let mut history = PolicyHistory::new(s.history_retention());
    let mut metrics = Metrics::new();
    let mut current = 4;
    let mut changes = Vec::new();
    while clock.now() <= at(1200) {
        let t = (clock.now().as_millis() / 1000) - crate::testkit::T0;
        let load = match t {
            ..=300 => 240.0,
            301..=600 => 1200.0,
            _ => 120.0,
        };
        let series = metrics.0.entry("cpu".into()).or_default();
        series.push(Point { at: clock.now(), value: Some(load / current as f64) }, s.series_retention());
        let obs = Observation {
            now: clock.now(),
            interval: s.interval,
            current,
            ready: current,
            min: 1,
            max: 20,
            series: &metrics.0,
        };
        let eval = evaluate(&s, &obs, &history);
        let d = record(&obs, &eval, false);
        history.note(&d);
        if eval.desired != current {
            changes.push((t, current, eval.desired));
            current = eval.desired;
        }
        clock.advance(s.interval);
    }
    assert_eq!(
        changes,
        vec![
            // up at once, limited to max(+4, +100 %) per 15 s: 4 → 8 → 16 → 20
            (315, 4, 8),
            (330, 8, 16),
            (345, 16, 20),
            // down only once the last high recommendation (t = 600) is 300 s old
            (900, 20, 2),
        ]
    );
}

#[test]
fn fallback_after_consecutive_failed_ticks_through_evaluate() {
    let s = spec(vec![("cpu", cpu_tracking(60.0)), ("queue", queue_threshold())], quiet(Some(5), 3));
    // (cpu, queue) per tick, every 10 s from t = 10, at current = 2 → desired
    let ticks: &[(Option<f64>, Option<f64>, u32)] = &[
        (None, None, 2),
        (None, None, 2),
        (None, Some(50.0), 2), // queue answers: the run of all-failed ticks starts over
        (None, None, 2),
        (None, None, 2),
        (None, None, 5), // third all-failed tick in a row
        (None, None, 5),
    ];
    let mut history = PolicyHistory::new(s.history_retention());
    let mut metrics = Metrics::new();
    for (i, &(cpu, queue, want)) in ticks.iter().enumerate() {
        let t = 10 * (i as i64 + 1);
        metrics = metrics.with("cpu", &[(t, cpu)]).with("queue", &[(t, queue)]);
        let obs = metrics.obs(t, 2);
        let eval = evaluate(&s, &obs, &history);
        assert_eq!(eval.desired, want, "tick {i}: {:?}", eval.guards);
        // the count stays at 2: the target never follows in this test
        history.note(&decision(t, 2, Some(eval.recommended), eval.checks.clone(), eval.guards.clone(), Outcome::Hold));
    }
}

#[test]
fn the_down_window_remembers_what_the_on_error_guard_let_through() {
    // a data error holds 5 against a recommendation of 2; the next, healthy,
    // tick recommends 2 again, and the 300 s down-window must still see 5
    let s = spec(vec![("cpu", cpu_tracking(60.0)), ("queue", queue_threshold())], Behaviour::default());
    let mut history = PolicyHistory::new(s.history_retention());
    let m = Metrics::new().one("cpu", 100, 12.0).with("queue", &[(100, None)]);
    let eval = evaluate(&s, &m.obs(100, 5), &history);
    assert_eq!((eval.recommended, eval.desired), (1, 5));
    history.note(&record(&m.obs(100, 5), &eval, false));

    let m = Metrics::new().one("cpu", 110, 12.0).one("queue", 110, 50.0);
    let eval = evaluate(&s, &m.obs(110, 5), &history);
    assert_eq!((eval.recommended, eval.desired), (1, 5), "{:?}", eval.guards);
    assert_eq!(eval.guards[0].guard, GuardKind::Stabilization);
    history.note(&record(&m.obs(110, 5), &eval, false));
    // 300 s after the error tick the window has let go
    let m = Metrics::new().one("cpu", 400, 12.0).one("queue", 400, 50.0);
    assert_eq!(evaluate(&s, &m.obs(400, 5), &history).desired, 1);
}

#[test]
fn dry_run_decides_the_same_but_never_counts_as_a_change() {
    let b = BehaviourConfig { dry_run: true, ..Default::default() }.resolve();
    let s = spec(vec![("cpu", cpu_tracking(60.0))], b);
    let mut history = PolicyHistory::new(s.history_retention());
    // the count never moves in dry-run: every tick wants 20 and is allowed the same 8
    for t in [100, 105, 110] {
        let m = Metrics::new().one("cpu", t, 300.0);
        let obs = m.obs(t, 4);
        let eval = evaluate(&s, &obs, &history);
        assert_eq!(eval.desired, 8, "t = {t}");
        let last = eval.guards.last().unwrap();
        assert_eq!((last.guard, last.before, last.after), (GuardKind::DryRun, 8, 8));
        assert_eq!(last.note, "dry-run: would scale 4 → 8");
        let d = record(&obs, &eval, true);
        assert_eq!(d.outcome, Outcome::DryRun { from: 4, to: 8 });
        assert_eq!(d.reason.split("; ").next(), Some("dry-run: would scale 4 → 8"));
        history.note(&d);
    }
    assert_eq!(history.actions().count(), 0);
    // live, the same history with a real scale-up 5 s ago leaves no room at all
    let live = spec(vec![("cpu", cpu_tracking(60.0))], Behaviour::default());
    history.note(&decision(112, 4, Some(20), vec![], vec![], Outcome::Scaled { from: 4, to: 8 }));
    let m = Metrics::new().one("cpu", 117, 150.0);
    assert_eq!(evaluate(&live, &m.obs(117, 8), &history).desired, 8);
}

#[test]
fn history_skips_skipped_ticks_and_forgets_old_ones() {
    let mut h = PolicyHistory::new(secs(60));
    h.note(&decision(0, 4, Some(4), vec![check("c", Recommendation::failed("x"))], vec![], Outcome::Hold));
    h.note(&Decision::skipped("web", at(10), 4, 0, "target not ready"));
    h.note(&decision(20, 4, Some(4), vec![check("c", Recommendation::failed("x"))], vec![], Outcome::Hold));
    assert_eq!(h.error_streak(), 2, "a skipped tick neither counts nor breaks the run");
    assert_eq!(h.recommendations().count(), 2);
    h.note(&decision(30, 4, Some(6), vec![], vec![], Outcome::Scaled { from: 4, to: 6 }));
    assert_eq!(h.error_streak(), 0);
    assert_eq!(h.actions().count(), 1);
    h.note(&hold(90, 6, 6));
    // t = 0 and 20 are more than 60 s before t = 90; t = 30 is exactly 60 s before and stays
    let kept: Vec<Timestamp> = h.recommendations().map(|r| r.0).collect();
    assert_eq!(kept, vec![at(30), at(90)]);
    assert_eq!(h.actions().next().map(|a| (a.from, a.to)), Some((4, 6)));
    h.note(&hold(100, 6, 6));
    assert_eq!(h.actions().count(), 0);
}

#[test]
fn retention_covers_the_longest_window_period_or_cooldown() {
    let s = spec(vec![("cpu", cpu_tracking(60.0))], Behaviour::default());
    assert_eq!(s.history_retention(), secs(300 + 20)); // 5 m down-window + 2 intervals
    assert_eq!(s.series_retention(), secs(30)); // target tracking needs no history
    let b = BehaviourConfig {
        scale_up: DirectionConfig { cooldown: Some(secs(900)), ..Default::default() },
        ..Default::default()
    }
    .resolve();
    let mut s = spec(vec![("cpu", cpu_tracking(60.0)), ("queue", queue_threshold())], b);
    assert_eq!(s.history_retention(), secs(920));
    if let Some(StrategyConfig::Threshold(t)) = s.checks.get_mut("queue") {
        t.conditions[0].down_for = secs(120);
    }
    assert_eq!(s.series_retention(), secs(150));
}

#[test]
fn a_daily_budget_caps_scale_up_and_remembers_the_spend() {
    let mut b = quiet(None, 1);
    b.budget = Some(crate::guard::Budget { replica_hours_per_day: Some(24.0), ..Default::default() });
    let s = PolicySpec { interval: secs(60), min: 1, max: 100, ..spec(vec![("cpu", cpu_tracking(60.0))], b) };
    assert!(s.history_retention() >= crate::guard::BUDGET_DAY, "a budgeted policy keeps a day of history");
    let clock = ManualClock::new(at(0));
    let mut history = PolicyHistory::new(s.history_retention());
    let mut metrics = Metrics::new();
    let mut current = 2;
    let mut seen = Vec::new();
    for _ in 0..5 {
        // load that wants 30 replicas at 60 % each
        let series = metrics.0.entry("cpu".into()).or_default();
        series.push(Point { at: clock.now(), value: Some(1800.0 / current as f64) }, s.series_retention());
        let obs = Observation {
            now: clock.now(),
            interval: s.interval,
            current,
            ready: current,
            min: 1,
            max: 100,
            series: &metrics.0,
        };
        let eval = evaluate(&s, &obs, &history);
        assert_eq!(eval.recommended, 30);
        let budget = eval.guards.iter().find(|g| g.guard == GuardKind::Budget);
        seen.push((eval.desired, budget.map(|g| g.note.clone())));
        history.note(&record(&obs, &eval, false));
        current = eval.desired;
        clock.advance(s.interval);
    }
    // nothing spent yet: 24 replica-hours left pay for 24 replicas for an hour
    assert_eq!(seen[0].0, 24);
    assert!(seen[0].1.as_deref().unwrap().contains("0.0 of 24 replica-hours"), "{:?}", seen[0]);
    // then 24 replicas spend 0.4 replica-hours a minute: the budget holds the count, never lowers it
    for (n, note) in &seen[1..] {
        assert_eq!(*n, 24);
        assert!(note.as_deref().is_some_and(|n| n.contains("policy budget")), "{note:?}");
    }
    let used = history.replica_hours(clock.now());
    // 24 replicas from t = 0 to t = 300 s
    assert!((used - 2.0).abs() < 1e-9, "used {used}");
}

#[test]
fn a_schedule_floor_alone_never_scales_in_and_a_count_does() {
    use crate::strategy::{Schedule, ScheduleWindow};
    let s = spec(vec![], quiet(None, 1));
    let series = BTreeMap::new();
    // Wednesday 2026-01-07 12:00 UTC: inside a window open every day 08:00-18:00
    let now = Timestamp::from_secs(1_767_787_200);
    let obs = Observation { now, interval: secs(10), current: 10, ready: 10, min: 0, max: 100, series: &series };
    let history = PolicyHistory::new(s.history_retention());
    let window = |min, count| Schedule {
        timezone: "UTC".into(),
        windows: vec![ScheduleWindow { cron: "0 8 * * *".into(), duration: secs(36_000), min, count, name: None }],
    };
    // (min, count, reactive) → desired, from 10 replicas
    type Case = (Option<u32>, Option<u32>, Option<u32>, u32);
    let cases: &[Case] = &[
        (Some(6), None, None, 10),   // a floor below the count alone: hold
        (Some(14), None, None, 14),  // a floor above it: up to the floor
        (Some(6), None, Some(4), 6), // the reactive check scales in, down to the floor
        (Some(6), None, Some(8), 8), // safest wins
        (None, Some(6), None, 6),    // a fixed count alone sets the count, in too
        (None, Some(6), Some(8), 8), // safest wins
        (None, Some(6), Some(2), 6), // ... either way
    ];
    for &(min, count, reactive, want) in cases {
        let rec = window(min, count).decide(&obs);
        let mut checks = vec![CheckOutcome {
            check: "hours".into(),
            strategy: "schedule".into(),
            recommendation: rec,
            state: None,
            forecast: None,
        }];
        if let Some(r) = reactive {
            checks.push(check("cpu", Recommendation::want(r, "reactive")));
        }
        let eval = conclude(&s, &obs, &history, checks);
        assert_eq!(eval.desired, want, "min {min:?}, count {count:?}, reactive {reactive:?}");
    }
}

#[test]
fn a_forecast_alone_never_scales_in() {
    let s = spec(vec![], quiet(None, 1));
    let series = BTreeMap::new();
    let obs =
        Observation { now: at(100), interval: secs(10), current: 10, ready: 10, min: 0, max: 100, series: &series };
    let history = PolicyHistory::new(s.history_retention());
    let predictive = |n| CheckOutcome {
        check: "ahead".into(),
        strategy: "predictive".into(),
        recommendation: Recommendation::at_least(n, "forecast"),
        state: None,
        forecast: None,
    };
    // (forecast, reactive) → desired
    let cases: &[(u32, Option<u32>, u32)] = &[
        (6, None, 10),     // the forecast alone wants fewer: hold
        (14, None, 14),    // the forecast alone may scale out
        (6, Some(4), 6),   // the reactive check scales in; the forecast holds a floor under it
        (6, Some(8), 8),   // safest wins
        (12, Some(4), 12), // the forecast scales out despite a quiet present
    ];
    for &(f, r, want) in cases {
        let mut checks = vec![predictive(f)];
        if let Some(r) = r {
            checks.push(check("cpu", Recommendation::want(r, "reactive")));
        }
        let eval = conclude(&s, &obs, &history, checks);
        assert_eq!(eval.desired, want, "forecast {f}, reactive {r:?}");
        // the record says why a forecast for fewer did not scale in
        let said = eval.checks[0].recommendation.reason.contains("a floor alone never scales in: hold at 10");
        assert_eq!(
            said,
            f < 10 && r.is_none(),
            "forecast {f}, reactive {r:?}: {}",
            eval.checks[0].recommendation.reason
        );
    }
}
