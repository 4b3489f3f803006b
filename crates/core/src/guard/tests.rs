//! Table-driven tests of the guards, on virtual time.

use super::*;
use crate::history::PolicyHistory;
use crate::testkit::{all_failed, at, history, hold, partly_failed, scaled, secs};
use std::time::Duration;

/// Guard settings that change nothing: no windows, no limits, no cooldowns, no fallback.
fn quiet() -> Behaviour {
    let dir =
        || Direction { stabilization: Duration::ZERO, cooldown: Duration::ZERO, limits: vec![], select: Select::Max };
    Behaviour {
        scale_up: dir(),
        scale_down: dir(),
        fallback: None,
        fallback_after: 1,
        dry_run: false,
        budget: None,
        shared_budget: false,
        sanity: None,
    }
}

fn lim(pods: Option<u32>, percent: Option<u32>, period: u64) -> ChangeLimit {
    ChangeLimit { pods, percent, period: secs(period) }
}

/// The inputs of one `apply` call; `now` is in seconds after T0.
struct Tick<'a> {
    now: i64,
    current: u32,
    min: u32,
    max: u32,
    error: Option<&'a str>,
    all_failed: bool,
}

impl Tick<'_> {
    fn at(now: i64, current: u32) -> Self {
        Tick { now, current, min: 0, max: 1000, error: None, all_failed: false }
    }
}

fn run(b: &Behaviour, h: &PolicyHistory, t: Tick<'_>, recommended: u32) -> (u32, Vec<GuardEffect>) {
    let ctx = GuardContext {
        now: at(t.now),
        current: t.current,
        min: t.min,
        max: t.max,
        data_error: t.error,
        all_failed: t.all_failed,
        behaviour: b,
        history: h,
        budgets: &[],
    };
    apply(&ctx, recommended)
}

fn kinds(effects: &[GuardEffect]) -> Vec<GuardKind> {
    effects.iter().map(|e| e.guard).collect()
}

fn empty() -> PolicyHistory {
    PolicyHistory::new(secs(3600))
}

#[test]
fn quiet_guards_pass_any_recommendation_through_untouched() {
    for (current, rec) in [(4, 4), (4, 9), (4, 1), (0, 3), (3, 0)] {
        let (n, effects) = run(&quiet(), &empty(), Tick::at(100, current), rec);
        assert_eq!(n, rec, "{current} → {rec}");
        assert_eq!(effects, vec![], "{current} → {rec}");
    }
}

// ------------------------------------------------------------------ on_error

#[test]
fn on_error_blocks_scale_down_and_allows_scale_up() {
    // (current, recommended) -> desired, note
    let cases: &[(u32, u32, u32, &str)] = &[
        (5, 2, 5, "scale-down blocked by a data error (cpu: down)"),
        (5, 5, 5, "data error (cpu: down); no scale-down"),
        (5, 8, 8, "data error (cpu: down); no scale-down"),
        (0, 0, 0, "data error (cpu: down); no scale-down"),
    ];
    for &(current, rec, want, note) in cases {
        let mut t = Tick::at(100, current);
        t.error = Some("cpu: down");
        let (n, effects) = run(&quiet(), &empty(), t, rec);
        assert_eq!(n, want, "{current} → {rec}");
        // the on-error guard always leaves a note when there is a data error, even when it changed nothing
        let e = GuardEffect { guard: GuardKind::OnError, before: rec, after: want, note: note.into() };
        assert_eq!(effects, vec![e], "{current} → {rec}");
    }
}

#[test]
fn on_error_fallback_needs_after_consecutive_all_failed_ticks() {
    let b = Behaviour { fallback: Some(6), fallback_after: 3, ..quiet() };
    // (earlier ticks, all checks failed this tick) -> desired from current 2, recommended 2
    let cases: Vec<(&str, Vec<crate::Decision>, bool, u32)> = vec![
        ("first failing tick", vec![], true, 2),
        ("second failing tick", vec![all_failed(80, 2)], true, 2),
        ("third failing tick", vec![all_failed(70, 2), all_failed(80, 2)], true, 6),
        ("fourth failing tick", vec![all_failed(60, 2), all_failed(70, 2), all_failed(80, 2)], true, 6),
        ("streak broken by a good tick", vec![all_failed(60, 2), all_failed(70, 2), hold(80, 2, 2)], true, 2),
        ("third tick, but one check answered this time", vec![all_failed(70, 2), all_failed(80, 2)], false, 2),
        // ticks in which only some checks failed are not ticks in which every check failed
        ("partial failures before", vec![partly_failed(70, 2), partly_failed(80, 2)], true, 2),
        ("partial failure in the middle", vec![all_failed(60, 2), partly_failed(70, 2), all_failed(80, 2)], true, 2),
    ];
    for (name, earlier, every_check_failed, want) in cases {
        let h = history(&earlier);
        let mut t = Tick::at(90, 2);
        t.error = Some("cpu: down");
        t.all_failed = every_check_failed;
        let (n, effects) = run(&b, &h, t, 2);
        assert_eq!(n, want, "{name}: {effects:?}");
        assert_eq!(effects[0].guard, GuardKind::OnError, "{name}");
        if want == 6 {
            assert!(effects[0].note.starts_with("all checks failed"), "{name}: {}", effects[0].note);
            assert!(effects[0].note.ends_with("tick(s) in a row: fallback to 6"), "{name}: {}", effects[0].note);
        }
    }
}

#[test]
fn on_error_fallback_only_raises() {
    let b = Behaviour { fallback: Some(3), fallback_after: 1, ..quiet() };
    // (current, recommended) -> desired when every check failed on the first tick
    let cases: &[(u32, u32, u32)] = &[(1, 1, 3), (0, 0, 3), (5, 5, 5), (5, 2, 5), (2, 4, 4)];
    for &(current, rec, want) in cases {
        let mut t = Tick::at(100, current);
        t.error = Some("e");
        t.all_failed = true;
        let (n, _) = run(&b, &empty(), t, rec);
        assert_eq!(n, want, "current {current} rec {rec}");
    }
    // no fallback without a data error, whatever the history
    let h = history(&[all_failed(80, 1), all_failed(90, 1)]);
    assert_eq!(run(&b, &h, Tick::at(100, 1), 1), (1, vec![]));
}

// ------------------------------------------------------------- stabilization

#[test]
fn stabilization_follows_the_hpa_rule() {
    let b = BehaviourConfig {
        scale_up: DirectionConfig { stabilization: Some(secs(60)), limits: Some(vec![]), ..Default::default() },
        scale_down: DirectionConfig { stabilization: Some(secs(300)), limits: Some(vec![]), ..Default::default() },
        ..Default::default()
    }
    .resolve();
    let now = 1000;
    // (remembered (seconds before now, recommendation), current, recommended) -> desired
    type Remembered = &'static [(i64, u32)];
    let cases: &[(&str, Remembered, u32, u32, u32)] = &[
        ("nothing remembered", &[], 5, 2, 2),
        ("down: highest of the down-window", &[(290, 8), (100, 6)], 8, 4, 8),
        ("down: partly", &[(200, 6), (100, 5)], 8, 4, 6),
        ("down: a value exactly 300 s old is out", &[(300, 8), (100, 6)], 8, 4, 6),
        ("down: a value 299 s old is in", &[(299, 8), (100, 6)], 8, 4, 8),
        ("down: never above current", &[(100, 12)], 8, 4, 8),
        ("up: lowest of the up-window", &[(50, 6), (20, 9)], 4, 10, 6),
        ("up: a value exactly 60 s old is out", &[(60, 5), (20, 9)], 4, 10, 9),
        ("up: never below current", &[(30, 2)], 4, 10, 4),
        ("both windows: hold", &[(30, 2), (20, 12)], 6, 6, 6),
    ];
    for (name, remembered, current, rec, want) in cases {
        let h = history(&remembered.iter().map(|&(ago, v)| hold(now - ago, *current, v)).collect::<Vec<_>>());
        let (n, effects) = run(&b, &h, Tick::at(now, *current), *rec);
        assert_eq!(n, *want, "{name}: {effects:?}");
        if n == *rec {
            assert_eq!(effects, vec![], "{name}");
        } else {
            assert_eq!(kinds(&effects), vec![GuardKind::Stabilization], "{name}");
            assert_eq!((effects[0].before, effects[0].after), (*rec, n), "{name}");
        }
    }
}

#[test]
fn stabilization_notes_name_the_window() {
    let b = Behaviour::default(); // down: 300 s
    let h = history(&[hold(900, 8, 8)]);
    let (n, effects) = run(&b, &h, Tick::at(1000, 8), 3);
    assert_eq!(n, 8);
    assert_eq!(effects[0].note, "highest recommendation in the last 5m is 8");

    let b = Behaviour { scale_up: Direction { stabilization: secs(120), ..quiet().scale_up }, ..quiet() };
    let h = history(&[hold(900, 4, 5)]);
    let (n, effects) = run(&b, &h, Tick::at(1000, 4), 9);
    assert_eq!(n, 5);
    assert_eq!(effects[0].note, "lowest recommendation in the last 2m is 5");
}

#[test]
fn default_down_window_holds_for_300_seconds_of_ticks() {
    // a tick every 15 s recommends 10 until t = 0, then 3; current stays 10 until it may go
    let b = Behaviour { scale_down: Direction { stabilization: secs(300), ..quiet().scale_down }, ..quiet() };
    let mut h = PolicyHistory::new(secs(600));
    let mut first_down = None;
    for tick in -20..=40 {
        let now = tick * 15;
        let rec = if tick <= 0 { 10 } else { 3 };
        let (n, _) = run(&b, &h, Tick::at(now, 10), rec);
        if n < 10 && first_down.is_none() {
            first_down = Some(now);
            assert_eq!(n, 3);
        }
        h.note(&hold(now, 10, rec));
    }
    // the last 10 was recommended at t = 0; it leaves the window when it is 300 s old
    assert_eq!(first_down, Some(300));
}

// ---------------------------------------------------------------- rate_limit

#[test]
fn rate_limit_scale_up_follows_hpa_policies() {
    let hpa = Behaviour::default().scale_up; // max(4 pods, 100 %) per 15 s
    let up = |limits: Vec<ChangeLimit>, select: Select| Behaviour {
        scale_up: Direction { limits, select, ..quiet().scale_up },
        ..quiet()
    };
    let both = || vec![lim(Some(4), None, 15), lim(None, Some(100), 15)];
    // (behaviour, current, recommended) -> desired
    let cases: Vec<(&str, Behaviour, u32, u32, u32)> = vec![
        ("default, small: 4 pods wins", up(hpa.limits.clone(), hpa.select), 2, 20, 6),
        ("default, large: 100 % wins", up(hpa.limits.clone(), hpa.select), 10, 50, 20),
        ("default, within the limit", up(hpa.limits.clone(), hpa.select), 10, 13, 13),
        ("select min, small", up(both(), Select::Min), 2, 20, 4),
        ("select min, large", up(both(), Select::Min), 10, 50, 14),
        ("percent rounds up", up(vec![lim(None, Some(10), 60)], Select::Max), 5, 20, 6),
        ("from zero by pods", up(both(), Select::Max), 0, 9, 4),
        ("from zero by percent only: one at least", up(vec![lim(None, Some(100), 15)], Select::Max), 0, 9, 1),
        ("from zero, select min: one at least", up(both(), Select::Min), 0, 9, 1),
        ("disabled", up(both(), Select::Disabled), 3, 9, 3),
        ("no limits", up(vec![], Select::Max), 3, 900, 900),
    ];
    for (name, b, current, rec, want) in cases {
        let (n, effects) = run(&b, &empty(), Tick::at(100, current), rec);
        assert_eq!(n, want, "{name}");
        if want != rec {
            assert_eq!(kinds(&effects), vec![GuardKind::RateLimit], "{name}");
            assert_eq!(effects[0].note, format!("scale-up limited to {want} by the per-period limits"));
        } else {
            assert_eq!(effects, vec![], "{name}");
        }
    }
}

#[test]
fn rate_limit_scale_up_counts_additions_already_made_in_the_period() {
    let b = Behaviour {
        scale_up: Direction { limits: vec![lim(Some(4), None, 60)], select: Select::Max, ..quiet().scale_up },
        ..quiet()
    };
    // (earlier decisions, current) -> desired for recommended 20 at t = 100
    let cases: Vec<(&str, Vec<crate::Decision>, u32, u32)> = vec![
        ("nothing yet", vec![], 8, 12),
        ("+3 at t = 70", vec![scaled(70, 5, 8)], 8, 9),
        ("+2 and +2", vec![scaled(50, 4, 6), scaled(70, 6, 8)], 8, 8),
        ("+3 exactly 60 s ago is out", vec![scaled(40, 5, 8)], 8, 12),
        ("+3 59 s ago is in", vec![scaled(41, 5, 8)], 8, 9),
        // HPA counts from the period's start: a scale-down in it gives its room back
        ("a scale-down gives room back", vec![scaled(60, 10, 8)], 8, 14),
        ("up then down: the start is the first count", vec![scaled(70, 2, 6), scaled(80, 6, 2)], 2, 6),
        ("dry-run and held ticks are not changes", vec![hold(60, 8, 30)], 8, 12),
    ];
    for (name, earlier, current, want) in cases {
        let (n, _) = run(&b, &history(&earlier), Tick::at(100, current), 20);
        assert_eq!(n, want, "{name}");
    }
    // percent counts from the count at the start of the period: 4 → 8 (+100 %) leaves no room
    let pct =
        Behaviour { scale_up: Direction { limits: vec![lim(None, Some(100), 60)], ..b.scale_up.clone() }, ..quiet() };
    assert_eq!(run(&pct, &history(&[scaled(70, 4, 8)]), Tick::at(100, 8), 20).0, 8);
    assert_eq!(run(&pct, &history(&[scaled(70, 4, 6)]), Tick::at(100, 6), 20).0, 8);
}

#[test]
fn rate_limit_scale_down_follows_hpa_policies() {
    let down = |limits: Vec<ChangeLimit>, select: Select| Behaviour {
        scale_down: Direction { limits, select, ..quiet().scale_down },
        ..quiet()
    };
    let both = || vec![lim(Some(2), None, 60), lim(None, Some(50), 60)];
    let hpa = Behaviour::default().scale_down; // 100 % per 15 s
    // (behaviour, earlier decisions, current, recommended) -> desired
    type Case = (&'static str, Behaviour, Vec<crate::Decision>, u32, u32, u32);
    let cases: Vec<Case> = vec![
        ("default: all the way", down(hpa.limits.clone(), hpa.select), vec![], 10, 0, 0),
        ("2 pods", down(vec![lim(Some(2), None, 60)], Select::Max), vec![], 10, 3, 8),
        ("50 %", down(vec![lim(None, Some(50), 60)], Select::Max), vec![], 10, 3, 5),
        ("50 % truncates (HPA)", down(vec![lim(None, Some(50), 60)], Select::Max), vec![], 5, 0, 2),
        ("select max: the lowest floor", down(both(), Select::Max), vec![], 10, 1, 5),
        ("select min: the highest floor", down(both(), Select::Min), vec![], 10, 1, 8),
        ("disabled", down(both(), Select::Disabled), vec![], 10, 1, 10),
        ("within the limit", down(both(), Select::Min), vec![], 10, 9, 9),
        ("-2 already made", down(vec![lim(Some(2), None, 60)], Select::Max), vec![scaled(70, 12, 10)], 10, 3, 10),
        ("-1 already made", down(vec![lim(Some(2), None, 60)], Select::Max), vec![scaled(70, 11, 10)], 10, 3, 9),
        (
            "-2 exactly 60 s ago is out",
            down(vec![lim(Some(2), None, 60)], Select::Max),
            vec![scaled(40, 12, 10)],
            10,
            3,
            8,
        ),
        // HPA: the period started at 8, before the scale-up
        (
            "a scale-up counts from 8",
            down(vec![lim(Some(2), None, 60)], Select::Max),
            vec![scaled(70, 8, 10)],
            10,
            3,
            6,
        ),
        (
            "50 % of the count at the period's start",
            down(vec![lim(None, Some(50), 60)], Select::Max),
            vec![scaled(70, 12, 8)],
            8,
            0,
            6,
        ),
    ];
    for (name, b, earlier, current, rec, want) in cases {
        let (n, effects) = run(&b, &history(&earlier), Tick::at(100, current), rec);
        assert_eq!(n, want, "{name}");
        if want != rec {
            assert_eq!(effects.len(), 1, "{name}");
            assert_eq!(effects[0].note, format!("scale-down limited to {want} by the per-period limits"));
        }
    }
}

// ------------------------------------------------------------------ cooldown

#[test]
fn cooldowns_apply_per_direction() {
    let b = Behaviour {
        scale_up: Direction { cooldown: secs(60), ..quiet().scale_up },
        scale_down: Direction { cooldown: secs(120), ..quiet().scale_down },
        ..quiet()
    };
    // (earlier decisions, current, recommended) -> desired at t = 200
    let cases: Vec<(&str, Vec<crate::Decision>, u32, u32, u32)> = vec![
        ("up, nothing before", vec![], 4, 6, 6),
        ("up, scale-up 30 s ago", vec![scaled(170, 3, 4)], 4, 6, 4),
        ("up, scale-up exactly 60 s ago", vec![scaled(140, 3, 4)], 4, 6, 6),
        ("up, old scale-up then recent scale-down", vec![scaled(100, 3, 5), scaled(190, 5, 4)], 4, 6, 6),
        ("up, recent scale-up then scale-down", vec![scaled(170, 3, 5), scaled(190, 5, 4)], 4, 6, 4),
        ("down, nothing before", vec![], 4, 2, 2),
        ("down, scale-up 60 s ago", vec![scaled(140, 3, 4)], 4, 2, 4),
        ("down, scale-down 119 s ago", vec![scaled(81, 5, 4)], 4, 2, 4),
        ("down, scale-down exactly 120 s ago", vec![scaled(80, 5, 4)], 4, 2, 2),
        ("down, a held tick is no action", vec![hold(190, 4, 4)], 4, 2, 2),
        ("hold is never cooled", vec![scaled(199, 3, 4)], 4, 4, 4),
    ];
    for (name, earlier, current, rec, want) in cases {
        let (n, effects) = run(&b, &history(&earlier), Tick::at(200, current), rec);
        assert_eq!(n, want, "{name}");
        if n != rec {
            assert_eq!(kinds(&effects), vec![GuardKind::Cooldown], "{name}");
        } else {
            assert_eq!(effects, vec![], "{name}");
        }
    }
    let (_, effects) = run(&b, &history(&[scaled(170, 3, 4)]), Tick::at(200, 4), 6);
    assert_eq!(effects[0].note, "scale-up cooldown: last scale-up 30s ago, 30s left");
    let (_, effects) = run(&b, &history(&[scaled(170, 3, 4)]), Tick::at(200, 4), 2);
    assert_eq!(effects[0].note, "scale-down cooldown: last scale action 30s ago, 1m30s left");
}

// -------------------------------------------------------------------- bounds

#[test]
fn bounds_clamp_last() {
    // (current, recommended, min, max) -> desired, note
    type Case = (u32, u32, u32, u32, u32, Option<&'static str>);
    let cases: &[Case] = &[
        (4, 12, 1, 10, 10, Some("capped at max 10")),
        (4, 0, 1, 10, 1, Some("raised to min 1")),
        (4, 10, 1, 10, 10, None),
        (4, 1, 1, 10, 1, None),
        (12, 12, 1, 10, 10, Some("capped at max 10")), // current above max: brought back even without an opinion
        (0, 0, 2, 10, 2, Some("raised to min 2")),
        (3, 7, 5, 5, 5, Some("capped at max 5")),
    ];
    for &(current, rec, min, max, want, note) in cases {
        let t = Tick { min, max, ..Tick::at(100, current) };
        let (n, effects) = run(&quiet(), &empty(), t, rec);
        assert_eq!(n, want, "{current} → {rec} in [{min}, {max}]");
        let expected: Vec<GuardEffect> = note
            .map(|note| GuardEffect { guard: GuardKind::Bounds, before: rec, after: want, note: note.into() })
            .into_iter()
            .collect();
        assert_eq!(effects, expected);
    }
}

#[test]
fn bounds_override_every_other_guard() {
    // the down-window holds 12 but max is 10
    let b = Behaviour::default();
    let h = history(&[hold(90, 12, 12)]);
    let t = Tick { max: 10, ..Tick::at(100, 12) };
    let (n, effects) = run(&b, &h, t, 9);
    assert_eq!(n, 10);
    assert_eq!(kinds(&effects), vec![GuardKind::Stabilization, GuardKind::Bounds]);

    // a cooldown holds the count at 1, but min is 3
    let b = Behaviour { scale_down: Direction { cooldown: secs(600), ..quiet().scale_down }, ..quiet() };
    let t = Tick { min: 3, ..Tick::at(100, 1) };
    let (n, effects) = run(&b, &history(&[scaled(90, 2, 1)]), t, 0);
    assert_eq!(n, 3);
    assert_eq!(kinds(&effects), vec![GuardKind::Cooldown, GuardKind::Bounds]);

    // a data error holds the count at 1, but min is 3
    let t = Tick { min: 3, error: Some("e"), ..Tick::at(100, 1) };
    let (n, effects) = run(&quiet(), &empty(), t, 0);
    assert_eq!(n, 3);
    assert_eq!(kinds(&effects), vec![GuardKind::OnError, GuardKind::Bounds]);

    // the fallback cannot break max either
    let b = Behaviour { fallback: Some(50), ..quiet() };
    let t = Tick { max: 10, error: Some("e"), all_failed: true, ..Tick::at(100, 4) };
    assert_eq!(run(&b, &empty(), t, 4).0, 10);
}

// ------------------------------------------------------------------- dry_run

#[test]
fn dry_run_records_what_it_would_do() {
    let b = Behaviour { dry_run: true, ..quiet() };
    for (current, rec) in [(4, 7), (4, 2), (0, 3)] {
        let (n, effects) = run(&b, &empty(), Tick::at(100, current), rec);
        // desired is what the policy would scale to; the count itself is left to the engine
        assert_eq!(n, rec);
        let e = GuardEffect {
            guard: GuardKind::DryRun,
            before: rec,
            after: rec,
            note: format!("dry-run: would scale {current} → {rec}"),
        };
        assert_eq!(effects, vec![e]);
    }
    // nothing to say when there is nothing to do
    assert_eq!(run(&b, &empty(), Tick::at(100, 4), 4), (4, vec![]));
    // ... including when the guards brought the count back to current
    let b = Behaviour { scale_up: Direction { cooldown: secs(60), ..quiet().scale_up }, dry_run: true, ..quiet() };
    let (n, effects) = run(&b, &history(&[scaled(90, 3, 4)]), Tick::at(100, 4), 8);
    assert_eq!(n, 4);
    assert_eq!(kinds(&effects), vec![GuardKind::Cooldown]);
}

// --------------------------------------------------------------------- order

#[test]
fn effects_come_in_the_fixed_order() {
    // every guard has something to say: a data error, an up-window holding 15,
    // at most +8 per minute (+1 made already), a scale-up cooldown, then min 5, in dry-run
    let b = Behaviour {
        scale_up: Direction {
            stabilization: secs(25),
            cooldown: secs(60),
            limits: vec![lim(Some(8), None, 60)],
            select: Select::Max,
        },
        dry_run: true,
        ..quiet()
    };
    let h = history(&[scaled(70, 3, 4), hold(80, 4, 15)]);
    let t = Tick { min: 5, max: 100, error: Some("mem: down"), ..Tick::at(100, 4) };
    let (n, effects) = run(&b, &h, t, 20);
    assert_eq!(n, 5);
    let steps: Vec<(GuardKind, u32, u32)> = effects.iter().map(|e| (e.guard, e.before, e.after)).collect();
    assert_eq!(
        steps,
        vec![
            (GuardKind::OnError, 20, 20),
            (GuardKind::Stabilization, 20, 15),
            (GuardKind::RateLimit, 15, 11),
            (GuardKind::Cooldown, 11, 4),
            (GuardKind::Bounds, 4, 5),
            (GuardKind::DryRun, 5, 5),
        ]
    );

    // the same order going down: blocked by the error, then stabilization has nothing left to do
    let b = Behaviour { dry_run: true, ..Behaviour::default() };
    let h = history(&[hold(80, 9, 9)]);
    let t = Tick { max: 8, error: Some("mem: down"), ..Tick::at(100, 9) };
    let (n, effects) = run(&b, &h, t, 3);
    assert_eq!(n, 8);
    assert_eq!(kinds(&effects), vec![GuardKind::OnError, GuardKind::Bounds, GuardKind::DryRun]);
}

#[test]
fn guard_kind_names() {
    let cases = [
        (GuardKind::OnError, "on_error"),
        (GuardKind::Stabilization, "stabilization"),
        (GuardKind::RateLimit, "rate_limit"),
        (GuardKind::Cooldown, "cooldown"),
        (GuardKind::Bounds, "bounds"),
        (GuardKind::DryRun, "dry_run"),
    ];
    for (kind, name) in cases {
        assert_eq!(kind.name(), name);
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(name));
    }
}

// ----------------------------------------------------------------- behaviour

#[test]
fn resolve_fills_in_the_hpa_defaults() {
    let b = BehaviourConfig::default().resolve();
    assert_eq!(b, Behaviour::default());
    assert_eq!(b.scale_up.stabilization, Duration::ZERO);
    assert_eq!(b.scale_up.cooldown, Duration::ZERO);
    assert_eq!(b.scale_up.limits, vec![lim(Some(4), None, 15), lim(None, Some(100), 15)]);
    assert_eq!(b.scale_up.select, Select::Max);
    assert_eq!(b.scale_down.stabilization, secs(300));
    assert_eq!(b.scale_down.cooldown, Duration::ZERO);
    assert_eq!(b.scale_down.limits, vec![lim(None, Some(100), 15)]);
    assert_eq!(b.scale_down.select, Select::Max);
    assert_eq!((b.fallback, b.fallback_after, b.dry_run), (None, 1, false));
}

#[test]
fn resolve_keeps_what_is_set_and_defaults_the_rest() {
    let cfg = BehaviourConfig {
        scale_up: DirectionConfig { cooldown: Some(secs(30)), select: Some(Select::Min), ..Default::default() },
        scale_down: DirectionConfig {
            stabilization: Some(Duration::ZERO),
            limits: Some(vec![lim(Some(1), None, 60)]),
            ..Default::default()
        },
        on_error: OnError { fallback: Some(4), after: Some(3) },
        dry_run: true,
        ..Default::default()
    };
    let b = cfg.resolve();
    assert_eq!(b.scale_up.cooldown, secs(30));
    assert_eq!(b.scale_up.select, Select::Min);
    assert_eq!(b.scale_up.limits, Behaviour::default().scale_up.limits);
    assert_eq!(b.scale_up.stabilization, Duration::ZERO);
    assert_eq!(b.scale_down.stabilization, Duration::ZERO, "an explicit 0s is not the default 5m");
    assert_eq!(b.scale_down.limits, vec![lim(Some(1), None, 60)]);
    assert_eq!(b.scale_down.select, Select::Max);
    assert_eq!((b.fallback, b.fallback_after, b.dry_run), (Some(4), 3, true));
    // an explicit empty list means "no limits", not the defaults
    let cfg = BehaviourConfig {
        scale_up: DirectionConfig { limits: Some(vec![]), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(cfg.resolve().scale_up.limits, vec![]);
}

#[test]
fn validate_names_each_problem() {
    let with = |up: Vec<ChangeLimit>, down: Vec<ChangeLimit>, after: Option<u32>| BehaviourConfig {
        scale_up: DirectionConfig { limits: Some(up), ..Default::default() },
        scale_down: DirectionConfig { limits: Some(down), ..Default::default() },
        on_error: OnError { fallback: Some(1), after },
        dry_run: false,
        budget: None,
        sanity: None,
    };
    assert_eq!(BehaviourConfig::default().validate(), Vec::<String>::new());
    let cases: Vec<(BehaviourConfig, Vec<&str>)> = vec![
        (with(vec![lim(Some(4), None, 15), lim(None, Some(200), 15)], vec![lim(None, Some(100), 15)], Some(2)), vec![]),
        (
            with(vec![lim(Some(4), Some(100), 15)], vec![lim(None, None, 15)], None),
            vec![
                "behaviour.scale_up.limits[0]: give exactly one of `pods` or `percent`",
                "behaviour.scale_down.limits[0]: give exactly one of `pods` or `percent`",
            ],
        ),
        (
            with(vec![lim(Some(1), None, 15), lim(Some(0), None, 15)], vec![lim(None, Some(0), 15)], None),
            vec![
                "behaviour.scale_up.limits[1]: the limit must be at least 1",
                "behaviour.scale_down.limits[0]: the limit must be at least 1",
            ],
        ),
        (
            with(vec![lim(None, Some(150), 15)], vec![lim(None, Some(101), 15)], None),
            vec!["behaviour.scale_down.limits[0]: `percent` cannot exceed 100 when scaling down"],
        ),
        (
            with(vec![lim(Some(1), None, 0)], vec![], None),
            vec!["behaviour.scale_up.limits[0]: `period` must be longer than 0s"],
        ),
        (with(vec![], vec![], Some(0)), vec!["behaviour.on_error.after: must be at least 1"]),
    ];
    for (cfg, want) in cases {
        assert_eq!(cfg.validate(), want, "{cfg:?}");
    }
}

fn parse(v: serde_json::Value) -> Result<BehaviourConfig, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn behaviour_config_deserializes_with_durations() {
    let cfg = parse(serde_json::json!({
        "scale_up": { "cooldown": "1m30s", "select": "disabled" },
        "scale_down": {
            "stabilization": "10s",
            "limits": [{ "pods": 1, "period": "30s" }, { "percent": 10, "period": "1m" }],
            "select": "min"
        },
        "on_error": { "fallback": 3, "after": 2 },
        "dry_run": true
    }))
    .unwrap();
    let want = BehaviourConfig {
        scale_up: DirectionConfig { cooldown: Some(secs(90)), select: Some(Select::Disabled), ..Default::default() },
        scale_down: DirectionConfig {
            stabilization: Some(secs(10)),
            cooldown: None,
            limits: Some(vec![lim(Some(1), None, 30), lim(None, Some(10), 60)]),
            select: Some(Select::Min),
        },
        on_error: OnError { fallback: Some(3), after: Some(2) },
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(cfg, want);
    assert_eq!(parse(serde_json::json!({})).unwrap(), BehaviourConfig::default());
    assert_eq!(parse(serde_json::json!({ "scale_up": {} })).unwrap(), BehaviourConfig::default());
}

#[test]
fn behaviour_config_rejects_unknown_fields_and_bad_values() {
    let cases = [
        (serde_json::json!({ "dryrun": true }), "unknown field `dryrun`"),
        (serde_json::json!({ "scale_down": { "stabilisation": "1m" } }), "unknown field `stabilisation`"),
        (serde_json::json!({ "on_error": { "fallback": 1, "after_ticks": 2 } }), "unknown field `after_ticks`"),
        (
            serde_json::json!({ "scale_up": { "limits": [{ "pods": 1, "period": "15s", "burst": 2 }] } }),
            "unknown field `burst`",
        ),
        (serde_json::json!({ "scale_up": { "limits": [{ "pods": 1 }] } }), "missing field `period`"),
        (serde_json::json!({ "scale_up": { "select": "maximum" } }), "unknown variant `maximum`"),
        (serde_json::json!({ "scale_up": { "cooldown": "soon" } }), "invalid duration \"soon\""),
        (serde_json::json!({ "scale_down": { "stabilization": "-5m" } }), "negative duration"),
        (serde_json::json!({ "scale_up": { "cooldown": "10" } }), "has no unit"),
        (serde_json::json!({ "on_error": { "fallback": -1 } }), "invalid value"),
    ];
    for (json, want) in cases {
        let err = parse(json.clone()).unwrap_err();
        assert!(err.contains(want), "{json}: {err}");
    }
}
