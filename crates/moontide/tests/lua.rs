//! Lua checks in the engine (state across restarts, hot reload, runaway
//! scripts next to healthy policies) and the `moontide lua` commands.

mod common;

use common::{TestServer, json, text, web_config as config};
use moontide::config::Config;
use moontide::engine::{Engine, SystemClock};
use moontide::store::Store;
use moontide_core::{ManualClock, Outcome, Timestamp};
use serde_json::json as j;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn engine(path: &Path, state: &Path, clock: &Arc<ManualClock>) -> Engine {
    Engine::build(&Config::load(path).unwrap(), Store::open(state).unwrap(), clock.clone(), false).unwrap()
}

const COUNTING: &str = r#"
function decide(ctx)
  ctx.state.ticks = (ctx.state.ticks or 0) + 1
  if ctx.metrics.cpu.value > 80 then
    return ctx.current + 1, "hot, tick " .. ctx.state.ticks
  end
  return nil, "fine, tick " .. ctx.state.ticks
end
"#;

#[tokio::test]
async fn lua_checks_decide_and_keep_their_state_across_a_restart() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 95}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&config(
        &metrics.url("/m"),
        &cloud.url("/scale?n={count}"),
        "[policies.web.checks.script]\nstrategy = \"lua\"\nfile = \"policy.lua\"",
    ));
    std::fs::write(dir.path().join("policy.lua"), COUNTING).unwrap();
    let state = dir.path().join("state");
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(6_000_000)));

    let mut first = engine(&path, &state, &clock);
    let d = first.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 2, to: 3 }, "{}", d.reason);
    assert_eq!(d.checks[0].strategy, "lua");
    assert_eq!(d.checks[0].recommendation.reason, "hot, tick 1");
    assert_eq!(d.checks[0].state, Some(j!({"ticks": 1})));
    assert!(d.reason.contains("script: hot, tick 1"), "{}", d.reason);
    drop(first);

    let mut second = engine(&path, &state, &clock);
    clock.advance(Duration::from_secs(10));
    let d = second.tick("web").await.unwrap();
    assert_eq!(d.checks[0].recommendation.reason, "hot, tick 2", "ctx.state survives the restart");
    assert_eq!(d.outcome, Outcome::Scaled { from: 3, to: 4 });
    assert_eq!(cloud.seen().len(), 2);
}

#[tokio::test]
async fn a_changed_policy_file_is_reloaded_and_a_broken_one_is_refused() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&config(
        &metrics.url("/m"),
        &cloud.url("/scale"),
        "[policies.web.checks.script]\nstrategy = \"lua\"\nfile = \"policy.lua\"",
    ));
    let file = dir.path().join("policy.lua");
    std::fs::write(&file, "function decide(ctx) return 3, 'v1' end").unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(7_000_000)));
    let mut e = engine(&path, &dir.path().join("state"), &clock);
    assert_eq!(e.tick("web").await.unwrap().outcome, Outcome::Scaled { from: 2, to: 3 });

    std::fs::write(&file, "function decide(ctx) return 9, 'v2 -- broken' e n d").unwrap();
    clock.advance(Duration::from_secs(10));
    let d = e.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Hold, "{}", d.reason);
    assert_eq!(d.checks[0].recommendation.desired, Some(3), "the old version keeps running");
    assert!(d.reason.contains("reload of") && d.reason.contains("syntax error"), "{}", d.reason);

    std::fs::write(&file, "function decide(ctx) return 4, 'v3 fixed' end").unwrap();
    clock.advance(Duration::from_secs(10));
    let d = e.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 3, to: 4 }, "{}", d.reason);
    assert!(!d.reason.contains("reload of"), "{}", d.reason);
}

/// A policy stuck in a loop, one blowing its memory and one raising errors
/// all fail within their limits, tick after tick, while a healthy policy
/// keeps ticking on its own schedule.
#[tokio::test]
async fn runaway_scripts_never_stall_the_daemon_or_other_policies() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let mut text = format!("[sources.app]\ntype = \"http_json\"\nurl = \"{}\"\n", metrics.url("/m"));
    let scripts = [
        ("looping", "function decide(ctx) while true do end end"),
        ("bomb", "function decide(ctx) local t = {} while true do t[#t + 1] = string.rep('x', 65536) .. #t end end"),
        ("raising", "function decide(ctx) error('bad day') end"),
        ("healthy", "function decide(ctx) return 2, 'fine' end"),
    ];
    for (name, src) in scripts {
        text.push_str(&format!(
            r#"
[targets.{name}]
type = "webhook"
url = "{url}"
initial = 2

[policies.{name}]
target = "{name}"
interval = "{interval}"
min = 1
max = 5
metrics = {{ cpu = {{ source = "app", query = "/cpuUsage" }} }}
checks = {{ script = {{ strategy = "lua", source = "{src}", memory_mb = 8 }} }}
"#,
            url = cloud.url("/scale"),
            interval = if name == "healthy" { "100ms" } else { "300ms" },
        ));
    }
    let (dir, path) = common::config_file(&text);
    let config = Config::load(&path).unwrap();
    let engine =
        Engine::build(&config, Store::open(&dir.path().join("state")).unwrap(), Arc::new(SystemClock), false).unwrap();
    let mut rx = engine.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.run(stopped));
    let mut seen: std::collections::BTreeMap<String, Vec<moontide_core::Decision>> = Default::default();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(d) = rx.recv().await {
            seen.entry(d.policy.clone()).or_default().push(d);
            if ["looping", "bomb", "raising"].iter().all(|p| seen.get(*p).is_some_and(|v| v.len() >= 3)) {
                break;
            }
        }
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), runner).await.unwrap().unwrap();

    for (policy, want) in [
        ("looping", "instruction budget exceeded of 1000000 instructions at policies.looping.checks.script:1"),
        ("bomb", "memory limit of 8 MiB exceeded"),
        ("raising", "policies.raising.checks.script:1: bad day"),
    ] {
        let ds = &seen[policy];
        assert!(ds.len() >= 3, "{policy}: {} decisions", ds.len());
        for d in ds {
            assert_eq!(d.outcome, Outcome::Hold, "{policy}: {}", d.reason);
            let err = d.checks[0].recommendation.error.as_deref().unwrap_or("");
            assert!(err.contains(want), "{policy}: {err}");
        }
    }
    let healthy = seen.get("healthy").map(Vec::len).unwrap_or(0);
    assert!(healthy >= 6, "the healthy policy kept ticking: {healthy} decisions");
    assert!(cloud.seen().is_empty());
}

#[test]
fn validate_reports_lua_errors_at_the_check() {
    let (dir, path) = common::config_file(&config(
        "http://127.0.0.1:1/m",
        "http://127.0.0.1:1/s",
        "[policies.web.checks.script]\nstrategy = \"lua\"\nfile = \"policy.lua\"",
    ));
    let out = |p: &Path| Command::new(env!("CARGO_BIN_EXE_moontide")).arg("validate").arg(p).output().unwrap();
    let o = out(&path);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("policies.web.checks.script") && err.contains("policy.lua"), "{err}");
    std::fs::write(dir.path().join("policy.lua"), "function decide(ctx)\n  return = 1\nend").unwrap();
    let o = out(&path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    let line =
        config("", "", "[policies.web.checks.script]").lines().position(|l| l.contains("checks.script")).unwrap() + 1;
    assert!(err.contains(&format!(":{line}:")) && err.contains("policy.lua:2:"), "{err}");
    std::fs::write(dir.path().join("policy.lua"), COUNTING).unwrap();
    assert_eq!(out(&path).status.code(), Some(0));
}

#[test]
fn lua_test_and_check_report_through_exit_codes() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies");
    let mut tests: Vec<String> = std::fs::read_dir(examples)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with("_test.lua"))
        .collect();
    tests.sort();
    assert!(tests.len() >= 4);
    let o = Command::new(env!("CARGO_BIN_EXE_moontide")).args(["lua", "test"]).args(&tests).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.lua"), "function decide(ctx) return ctx.current * 2 end").unwrap();
    std::fs::write(
        dir.path().join("p_test.lua"),
        "local p = moontide.policy('p.lua')\nfunction test_doubles() expect.eq(p:decide{ current = 2 }, 4) end\nfunction test_wrong()\n  expect.eq(p:decide{ current = 2 }, 5)\nend\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["lua", "test"])
        .arg(dir.path().join("p_test.lua"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("ok    ") && out.contains("test_doubles"), "{out}");
    assert!(out.contains("FAIL") && out.contains("p_test.lua:4: expected 5, got 4"), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");

    let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["lua", "check"])
        .arg(dir.path().join("p.lua"))
        .args(["--metric", "cpu=5", "--current", "3"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("decide returned 6"));

    // --param sets ctx.params, written as in a config's `params`
    std::fs::write(
        dir.path().join("per.lua"),
        "function decide(ctx) return math.ceil(ctx.metrics.rps.value / ctx.params.per), ctx.params.why end",
    )
    .unwrap();
    let check = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
            .args(["lua", "check"])
            .arg(dir.path().join("per.lua"))
            .args(["--metric", "rps=23"])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = check(&["--param", "per=5", "--param", "why=\"five each\""]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("decide returned 5: five each"), "{out}");
    let (code, _, err) = check(&["--param", "why=five"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--param `why=five`: `five` is not a TOML value (a string needs quotes"), "{err}");
    let (code, _, err) = check(&["--param", "per=5\nwhy = \"hidden\""]);
    assert_eq!(code, Some(2), "a second line is not dropped unseen");
    assert!(err.contains("holds more than one value"), "{err}");
    let (code, _, err) = check(&["--param", "=5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("the name is empty"), "{err}");
    // without the param the policy's own error names the line
    let (code, _, err) = check(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("per.lua:1:"), "{err}");

    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/seed_loop.lua");
    let o = Command::new(env!("CARGO_BIN_EXE_moontide")).args(["lua", "check", "--script", seed]).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("script mode: compiles"));
    // checked as a `decide` policy, the loop fails, with a pointer to --script
    let o = Command::new(env!("CARGO_BIN_EXE_moontide")).args(["lua", "check", seed]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("check it with `moontide lua check --script FILE`"), "{err}");
    std::fs::write(dir.path().join("bad.lua"), "while true do\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["lua", "check", "--script"])
        .arg(dir.path().join("bad.lua"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.lua:2:"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A library call the instruction budget cannot stop (a backtracking pattern
/// match runs in C) is cut off by the check's deadline: the tick goes on
/// without it, and the next tick loads the script afresh.
#[tokio::test]
async fn a_call_stuck_in_a_library_function_misses_its_deadline_and_the_next_tick_recovers() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&config(
        &metrics.url("/m"),
        &cloud.url("/scale"),
        "[policies.web.checks.script]\nstrategy = \"lua\"\nfile = \"policy.lua\"\ndeadline = \"300ms\"",
    ));
    let file = dir.path().join("policy.lua");
    // about two seconds of backtracking in C, far inside the instruction budget
    std::fs::write(
        &file,
        "function decide(ctx) local s = string.rep('a', 100) s:find(string.rep('a-', 4) .. 'b') return 3 end",
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(7_500_000)));
    let mut e = engine(&path, &dir.path().join("state"), &clock);
    let d = e.tick("web").await.unwrap();
    let err = d.checks[0].recommendation.error.clone().unwrap();
    assert!(err.contains("ran longer than its deadline of 300ms"), "{err}");
    assert_eq!(d.outcome, Outcome::Hold);

    std::fs::write(&file, "function decide(ctx) return 4, 'fixed' end").unwrap();
    clock.advance(Duration::from_secs(10));
    let d = e.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 2, to: 4 }, "{}", d.reason);
}

/// A cleared ctx.state stays cleared across a restart, and the state outlives
/// the decisions it was recorded with.
#[tokio::test]
async fn the_latest_state_is_what_a_restart_restores() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&config(
        &metrics.url("/m"),
        &cloud.url("/scale"),
        "[policies.web.checks.script]\nstrategy = \"lua\"\nfile = \"policy.lua\"",
    ));
    let src = r#"
function decide(ctx)
  local seen = ctx.state.seen
  ctx.state.seen = (seen or 0) + 1
  if ctx.state.seen == 2 then ctx.state.seen = nil end -- cleared on the second tick
  return nil, "seen " .. tostring(seen)
end
"#;
    std::fs::write(dir.path().join("policy.lua"), src).unwrap();
    let state = dir.path().join("state");
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(7_600_000)));
    let mut first = engine(&path, &state, &clock);
    assert_eq!(first.tick("web").await.unwrap().checks[0].recommendation.reason, "seen nil");
    clock.advance(Duration::from_secs(10));
    assert_eq!(first.tick("web").await.unwrap().checks[0].recommendation.reason, "seen 1");
    drop(first);
    let mut second = engine(&path, &state, &clock);
    clock.advance(Duration::from_secs(10));
    assert_eq!(second.tick("web").await.unwrap().checks[0].recommendation.reason, "seen nil", "cleared stays cleared");
}

/// A check's `params` reach the script as `ctx.params`, numbers, strings,
/// arrays and tables alike, and the script cannot change them; a TOML date
/// among them is refused by `validate`, naming it.
#[test]
fn params_reach_the_script_read_only() {
    let src = r#"
function decide(ctx)
  local p = ctx.params
  local ok = pcall(function() p.per_replica = 1 end)
  local nested = pcall(function() p.zones.eu = 0 end)
  local sum = 0
  for _, v in ipairs(p.weights) do sum = sum + v end
  return math.ceil(ctx.metrics.cpu.value / p.per_replica),
    ("%s %s %d %d %s %s"):format(p.name, tostring(p.strict), #p.weights, sum, tostring(ok), tostring(nested))
end"#;
    let checks = "[policies.web.checks.script]\nstrategy = \"lua\"\nfile = \"policy.lua\"\n\
                  params = { per_replica = 20, name = \"web\", strict = true, weights = [1, 2, 3], zones = { eu = 2 } }";
    let (dir, path) = common::config_file(&config("http://127.0.0.1:1/m", "http://127.0.0.1:1/s", checks));
    std::fs::write(dir.path().join("policy.lua"), src).unwrap();
    let loaded = Config::load(&path).unwrap();
    let policy = &loaded.policies[0];
    let Some(moontide_core::StrategyConfig::Lua(check)) = policy.spec.checks.get("script") else {
        panic!("no lua check: {:?}", policy.spec.checks)
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let mut s = moontide::lua::build("policies.web.checks.script", check, clock).unwrap();
    let mut cpu = moontide_core::Series::new();
    cpu.push(
        moontide_core::Point { at: Timestamp::from_secs(1_700_000_000), value: Some(50.0) },
        Duration::from_secs(60),
    );
    let series = std::collections::BTreeMap::from([("cpu".to_string(), cpu)]);
    let obs = moontide_core::Observation {
        now: Timestamp::from_secs(1_700_000_000),
        interval: Duration::from_secs(10),
        current: 2,
        ready: 2,
        min: 1,
        max: 10,
        series: &series,
    };
    let (rec, _) = s.decide(&obs);
    assert_eq!(rec.error, None, "{rec:?}");
    assert_eq!(rec.desired, Some(3), "ceil(50 / 20)");
    assert_eq!(rec.reason, "web true 3 6 false false", "read, and no write went through");

    let dated = checks.replace("name = \"web\"", "name = 1979-05-27");
    std::fs::write(&path, config("http://127.0.0.1:1/m", "http://127.0.0.1:1/s", &dated)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moontide")).arg("validate").arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`params.name`: a date or time cannot be passed to Lua"), "{err}");
    assert_eq!(err.lines().count(), 1, "the script itself is sound: {err}");
    // a broken script beside the bad value is reported too, not hidden by it
    std::fs::write(dir.path().join("policy.lua"), "function decide(ctx)\n  return )\nend").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moontide")).arg("validate").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`params.name`: a date or time") && err.contains("policy.lua:2:"), "{err}");
}
