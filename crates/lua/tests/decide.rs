//! `decide(ctx)`: the ctx fields and helpers on known series, return values,
//! reasons, state across calls and restarts, and hot reload.

use moontide_core::{ManualClock, Observation, Point, Series, Timestamp};
use moontide_lua::strategy::Reload;
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;

fn strategy(src: &str) -> LuaStrategy {
    let origin = Origin::Inline { name: "p.lua".into(), source: src.into() };
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
    LuaStrategy::load(origin, Limits::default(), Duration::from_secs(600), clock).unwrap()
}

/// cpu every 10 s ending now: 10, 20, 30, 40, 50 (t = now-40 .. now); queue has a failed reading now.
fn series() -> BTreeMap<String, Series> {
    let mut m = BTreeMap::new();
    let mut cpu = Series::new();
    for (i, v) in [10.0, 20.0, 30.0, 40.0, 50.0].iter().enumerate() {
        cpu.push(
            Point { at: Timestamp::from_secs(NOW - 40 + 10 * i as i64), value: Some(*v) },
            Duration::from_secs(3600),
        );
    }
    let mut queue = Series::new();
    queue.push(Point { at: Timestamp::from_secs(NOW - 10), value: Some(7.0) }, Duration::from_secs(3600));
    queue.push(Point { at: Timestamp::from_secs(NOW), value: None }, Duration::from_secs(3600));
    m.insert("cpu".into(), cpu);
    m.insert("queue".into(), queue);
    m
}

fn obs(series: &BTreeMap<String, Series>, current: u32) -> Observation<'_> {
    Observation {
        now: Timestamp::from_secs(NOW),
        interval: Duration::from_secs(10),
        current,
        ready: current - 1,
        min: 2,
        max: 20,
        series,
    }
}

#[test]
fn ctx_fields_and_helpers_on_a_known_series() {
    let s = series();
    let mut p = strategy(
        r#"
        function decide(ctx)
          local c = ctx.metrics.cpu
          local q = ctx.metrics.queue
          local out = {
            ctx.now, ctx.interval, ctx.current, ctx.ready, ctx.min, ctx.max,
            c.value, c:avg(), c:avg(25), c:avg("25s"), c:min(), c:max("15s"), c:count(),
            c:percentile(50), c:percentile(90, 100), c:rate(), c:slope("1m"),
            table.concat(c:values(30), ","), q.value == nil, q:avg(), q:count("1m"),
            c:avg(0) == nil,
            c:slope_error("1m"), c:slope_error("15s") == nil,
          }
          local parts = {}
          for i = 1, #out do parts[i] = tostring(out[i]) end
          return 1, table.concat(parts, " ")
        end"#,
    );
    let (rec, _) = p.decide(&obs(&s, 4));
    assert_eq!(rec.error, None, "{rec:?}");
    let want = [
        "1700000000.0",
        "10.0",
        "4",
        "3",
        "2",
        "20", // now, interval, counts, bounds
        "50.0",
        "30.0",
        "40.0",
        "40.0",
        "10.0",
        "50.0",
        "5", // value, avg, avg 25s (30,40,50), min, max 15s, count
        "30.0",
        "46.0",
        "1.0",
        "1.0", // p50, p90, rate per s, slope per s
        "30.0,40.0,50.0",
        "true",
        "7.0",
        "1", // values 30s (half-open), failed now, queue avg skips the failure
        "true",
        "0.0",
        "true", // the slope's standard error: none off a straight line, unknown from two readings
    ];
    assert_eq!(rec.reason, want.join(" "));
}

#[test]
fn returns_nil_counts_reasons_and_wrong_types() {
    let s = series();
    let cases: &[(&str, Option<u32>, Option<&str>, &str)] = &[
        ("return nil", None, None, "no opinion"),
        ("return nil, 'quiet night'", None, None, "quiet night"),
        ("return 5", Some(5), None, "decide returned 5"),
        ("return 4.2, 'ceil'", Some(5), None, "ceil"),
        ("return ctx.current + 1, 'more'", Some(5), None, "more"),
        ("return 0, 'to zero'", Some(0), None, "to zero"),
        ("return 'five'", None, Some("decide returned a string"), ""),
        ("return -1", None, Some("decide returned -1"), ""),
        ("return 0/0", None, Some("return a replica count"), ""),
        ("return 3, {}", None, Some("as its reason"), ""),
        ("error('boom')", None, Some("p.lua:1: boom"), ""),
        (
            "return ctx.metrics.gpu.value",
            None,
            Some("p.lua:1: no metric named 'gpu' (the policy declares: cpu, queue)"),
            "",
        ),
        ("ctx.current = 9 return 1", None, Some("ctx is read-only"), ""),
        ("return ctx.metrics.cpu:percentile(120)", None, Some("p must be between 0 and 100"), ""),
        ("return ctx.metrics.cpu:avg({})", None, Some("window must be seconds or a duration"), ""),
        ("return ctx.metrics.cpu:avg('5 parsecs')", None, Some("unknown unit"), ""),
        ("return ctx.metrics.cpu:avg(1e20)", None, Some("window 100000000000000000000 is not a usable"), ""),
    ];
    for (body, want, err, reason) in cases {
        let mut p = strategy(&format!("function decide(ctx) {body} end"));
        let (rec, _) = p.decide(&obs(&s, 4));
        assert_eq!(rec.desired, *want, "{body}: {rec:?}");
        match err {
            Some(e) => assert!(rec.error.as_deref().is_some_and(|x| x.contains(e)), "{body}: {rec:?}"),
            None => {
                assert_eq!(rec.error, None, "{body}");
                assert_eq!(rec.reason, *reason, "{body}");
            }
        }
    }
}

#[test]
fn state_persists_across_calls_and_restarts() {
    let s = series();
    let src = r#"
        function decide(ctx)
          ctx.state.ticks = (ctx.state.ticks or 0) + 1
          ctx.state.seen = ctx.state.seen or {}
          table.insert(ctx.state.seen, ctx.current)
          return nil, "tick " .. ctx.state.ticks
        end"#;
    let mut p = strategy(src);
    assert_eq!(p.decide(&obs(&s, 4)).0.reason, "tick 1");
    let (rec, state) = p.decide(&obs(&s, 5));
    assert_eq!(rec.reason, "tick 2");
    let state = state.unwrap();
    assert_eq!(state, serde_json::json!({"ticks": 2, "seen": [4, 5]}));

    // a new strategy (a restart) restored from the recorded state carries on
    let mut q = strategy(src);
    q.restore_state(&state).unwrap();
    let (rec, state) = q.decide(&obs(&s, 6));
    assert_eq!(rec.reason, "tick 3");
    assert_eq!(state.unwrap(), serde_json::json!({"ticks": 3, "seen": [4, 5, 6]}));

    // an empty state is saved as {} (so that clearing it survives a restart);
    // a function cannot be saved, and says so without losing the recommendation
    let mut e = strategy("function decide(ctx) return 1 end");
    assert_eq!(e.decide(&obs(&s, 4)).1, Some(serde_json::json!({})));
    let mut f = strategy("function decide(ctx) ctx.state.f = print return 1 end");
    let (rec, st) = f.decide(&obs(&s, 4));
    assert_eq!(rec.desired, Some(1));
    assert!(rec.reason.contains("ctx.state cannot be saved: a function cannot be written as JSON"), "{}", rec.reason);
    assert_eq!(st, None);

    // mixed and sparse keys survive a round trip; integer keys come back as integers
    let src2 = r#"
        function decide(ctx)
          if ctx.state.n == nil then
            ctx.state.n = 1
            ctx.state.t = {[1] = "a", [5] = "b", flag = true, e = {}}
            ctx.state.big = {[1700000000] = 3}
            return nil, "set"
          end
          local t = ctx.state.t
          return nil, table.concat({t[1], t[5], tostring(t.flag), tostring(ctx.state.big[1700000000])}, ",")
        end"#;
    let mut g = strategy(src2);
    let (_, saved) = g.decide(&obs(&s, 4));
    let saved = saved.unwrap();
    let mut h = strategy(src2);
    h.restore_state(&saved).unwrap();
    assert_eq!(h.decide(&obs(&s, 4)).0.reason, "a,b,true,3");
}

#[test]
fn hot_reload_swaps_good_versions_and_keeps_the_old_one_on_failure() {
    let s = series();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.lua");
    std::fs::write(&path, "function decide(ctx) ctx.state.n = (ctx.state.n or 0) + 1 return 1, 'v1' end").unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
    let mut p =
        LuaStrategy::load(Origin::File(path.clone()), Limits::default(), Duration::from_secs(60), clock).unwrap();
    assert_eq!(p.reload_if_changed(), Reload::Unchanged);
    assert_eq!(p.decide(&obs(&s, 4)).0.reason, "v1");

    std::fs::write(&path, "function decide(ctx) return 2, 'v2 after ' .. ctx.state.n end -- longer").unwrap();
    assert_eq!(p.reload_if_changed(), Reload::Reloaded);
    let (rec, _) = p.decide(&obs(&s, 4));
    assert_eq!((rec.desired, rec.reason.as_str()), (Some(2), "v2 after 1"), "state survives a reload");

    for broken in ["function decide(ctx) return = end", "x = 1 -- no decide at all, and a longer file"] {
        std::fs::write(&path, broken).unwrap();
        let Reload::Failed(msg) = p.reload_if_changed() else { panic!("{broken}: reload should fail") };
        assert!(msg.contains("previous version keeps running"), "{msg}");
        let (rec, _) = p.decide(&obs(&s, 4));
        assert_eq!(rec.desired, Some(2), "{broken}: v2 still runs");
        assert!(rec.reason.contains("reload of") && rec.reason.contains("policy.lua"), "{}", rec.reason);
    }
    std::fs::write(&path, "function decide(ctx) return 3, 'v3' end").unwrap();
    assert_eq!(p.reload_if_changed(), Reload::Reloaded);
    assert_eq!(p.decide(&obs(&s, 4)).0.reason, "v3");
    assert_eq!(p.reload_error(), None);
}

/// The helpers read the strategy's own copy of each series: it must follow
/// a growing history tick by tick, and a history that went back in time.
#[test]
fn helpers_follow_the_history_as_it_grows_and_when_it_is_replaced() {
    let mut p = strategy("function decide(ctx) return nil, tostring(ctx.metrics.cpu:avg(3600)) end");
    let mut cpu = Series::new();
    let keep = Duration::from_secs(3600);
    let mut reasons = Vec::new();
    for (t, v) in [(0, 10.0), (10, 20.0), (20, 60.0)] {
        cpu.push(Point { at: Timestamp::from_secs(NOW + t), value: Some(v) }, keep);
        let m = BTreeMap::from([("cpu".to_string(), cpu.clone())]);
        let mut o = obs(&m, 4);
        o.now = Timestamp::from_secs(NOW + t);
        reasons.push(p.decide(&o).0.reason);
    }
    assert_eq!(reasons, ["10.0", "15.0", "30.0"]);
    // the clock went back: a shorter, different history replaces ours
    let mut back = Series::new();
    back.push(Point { at: Timestamp::from_secs(NOW + 5), value: Some(2.0) }, keep);
    let m = BTreeMap::from([("cpu".to_string(), back)]);
    let mut o = obs(&m, 4);
    o.now = Timestamp::from_secs(NOW + 5);
    assert_eq!(p.decide(&o).0.reason, "2.0");
}
