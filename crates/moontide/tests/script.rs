//! Script mode: the guide's loop runs as written against a real metrics
//! server and a real webhook target on 127.0.0.1; its flapping is damped by
//! the guards in the decision records; hosts not on the allow list are
//! refused; runaway scripts are stopped and restarted. Scripts sleep on a
//! virtual clock, so minutes of script time pass in moments.

mod common;

use common::{TestServer, json, text};
use moontide::config::Config;
use moontide::engine::{Engine, VirtualTime};
use moontide::store::Store;
use moontide_core::{Clock, Decision, GuardKind, ManualClock, Outcome, Timestamp};
use serde_json::json as j;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The guide's script: the original from ../shared/seed when this checkout
/// has it beside, else the repository's own seed-style loop with the same URLs.
fn seed_script(dir: &Path) -> PathBuf {
    let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seed/seed-autoscale.lua");
    if original.exists() {
        return original;
    }
    let own = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/seed_loop.lua"))
        .unwrap()
        .replace("http://metrics.internal/metrics", "http://localhost:8080/metrics")
        .replace("https://cloud.example/v1/groups/web/scale-up", "http://api.yourcloudprovider.com/scale-up")
        .replace("https://cloud.example/v1/groups/web/scale-down", "http://api.yourcloudprovider.com/scale-down");
    let path = dir.join("seed.lua");
    std::fs::write(&path, own).unwrap();
    path
}

async fn run_until(engine: Engine, policy: &str, count: usize) -> Vec<Decision> {
    let mut rx = engine.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.run(stopped));
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(d) = rx.recv().await {
            if d.policy == policy {
                out.push(d);
                if out.len() >= count {
                    break;
                }
            }
        }
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), runner).await.unwrap().unwrap();
    out
}

fn engine(text: &str, dir: &Path, clock: &Arc<ManualClock>) -> Engine {
    let path = dir.join("moontide.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let mut e = Engine::build(&config, Store::open(&dir.join("state")).unwrap(), clock.clone(), false).unwrap();
    e.set_sleeper(Arc::new(VirtualTime(clock.clone())));
    e
}

#[tokio::test]
async fn the_guides_loop_runs_as_written_and_the_guards_damp_its_flapping() {
    // Hot for the first three reads, quiet after: the loop asks for scale-down every 10 s.
    let reads = Arc::new(AtomicU32::new(0));
    let r = reads.clone();
    let metrics = TestServer::start(move |_, _| {
        let n = r.fetch_add(1, Ordering::SeqCst);
        let cpu = if n < 3 { 95 } else { 20 };
        json(200, j!({"cpuUsage": cpu, "memoryUsage": 40}))
    })
    .await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let script = seed_script(dir.path());
    let config = format!(
        r#"
[sources.app]
type = "http_json"
url = "{metrics}"

[targets.cloud]
type = "webhook"
url = "{cloud}"
initial = 1

[policies.seed]
target = "cloud"
min = 1
max = 10

[policies.seed.script]
file = "{script}"
urls = {{ "http://localhost:8080/metrics" = {{ source = "app" }}, "http://api.yourcloudprovider.com/scale-up" = {{ action = "scale_up" }}, "http://api.yourcloudprovider.com/scale-down" = {{ action = "scale_down" }} }}
"#,
        metrics = metrics.url("/metrics"),
        cloud = cloud.url("/scale?n={count}"),
        script = script.display(),
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(8_000_000)));
    let decisions = run_until(engine(&config, dir.path(), &clock), "seed", 45).await;
    assert_eq!(decisions.len(), 45, "the loop kept calling");

    // Three scale-ups went through.
    let ups: Vec<_> = decisions.iter().take(3).map(|d| d.outcome.clone()).collect();
    assert_eq!(ups, [1, 2, 3].map(|n| Outcome::Scaled { from: n, to: n + 1 }));
    // Then every scale-down request within the 300 s window was held by stabilization...
    let first_down_at = decisions[3].at;
    let mut held = 0;
    for d in &decisions[3..] {
        assert_eq!(d.checks[0].check, "script");
        assert!(d.checks[0].recommendation.reason.starts_with("script called scale-down"), "{}", d.reason);
        if d.at.since(first_down_at) < Duration::from_secs(290) {
            assert_eq!(d.outcome, Outcome::Hold, "{}", d.reason);
            assert!(d.guards.iter().any(|g| g.guard == GuardKind::Stabilization), "{}", d.reason);
            held += 1;
        }
    }
    assert!(held >= 25, "{held} scale-down requests held");
    // ...and the target saw a handful of changes for 45 requests.
    let calls = cloud.seen();
    let downs = decisions.iter().filter(|d| matches!(d.outcome, Outcome::Scaled { from, to } if to < from)).count();
    assert!((1..=2).contains(&downs), "{downs} scale-downs in 45 requests");
    assert_eq!(calls.len(), 3 + downs);
    assert!(calls.iter().all(|c| c.header("idempotency-key").is_some()));
    assert!(reads.load(Ordering::SeqCst) >= 45, "every loop read its metrics through the source");
}

fn inline_policy(metrics: &str, cloud: &str, script: &str) -> String {
    format!(
        r#"
[sources.app]
type = "http_json"
url = "{metrics}"

[targets.cloud]
type = "webhook"
url = "{cloud}"
initial = 1

[policies.p]
target = "cloud"
min = 1
max = 5

[policies.p.script]
allow_hosts = ["127.0.0.1"]
instruction_budget = 100000
urls = {{ "http://provider.test/up" = {{ action = "scale_up" }} }}
source = '''
{script}
'''
"#
    )
}

#[tokio::test]
async fn allowed_hosts_are_fetched_and_others_refused_by_name() {
    let metrics = TestServer::start(|_, _| json(200, j!({"queue": 250}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let script = format!(
        r#"
local http, json, socket = require("socket.http"), require("json"), require("socket")
local body, code, headers = http.request("{url}")
assert(code == 200 and headers["content-type"] == "application/json", "direct fetch")
local m = json.decode(body)
if m.queue > 100 then
  local answer, status = http.request("http://provider.test/up")
  assert(status == 200 and json.decode(answer).outcome == "scaled", answer)
end
local b, err = http.request("http://127.0.0.1:1/nothing-listens-here")
assert(b == nil and type(err) == "string", "a wire failure returns nil, message")
http.request("http://example.com/steal")
"#,
        url = metrics.url("/m")
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(9_000_000)));
    let ds =
        run_until(engine(&inline_policy(&metrics.url("/m"), &cloud.url("/s"), &script), dir.path(), &clock), "p", 2)
            .await;
    assert_eq!(ds[0].outcome, Outcome::Scaled { from: 1, to: 2 }, "{}", ds[0].reason);
    let err = ds[1].checks[0].recommendation.error.clone().unwrap();
    assert!(err.contains("host example.com is not allowed") && err.contains("policies.p.script:"), "{err}");
    assert_eq!(ds[1].outcome, Outcome::Hold);
}

#[tokio::test]
async fn a_runaway_script_is_stopped_recorded_and_restarted() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(9_500_000)));
    let text = inline_policy("http://127.0.0.1:1/m", &cloud.url("/s"), "require('socket').sleep(5)\nwhile true do end");
    let ds = run_until(engine(&text, dir.path(), &clock), "p", 3).await;
    assert_eq!(ds.len(), 3, "restarted after each failure");
    for d in ds {
        let err = d.checks[0].recommendation.error.clone().unwrap();
        assert!(err.contains("instruction budget exceeded of 100000 instructions at policies.p.script:2"), "{err}");
        assert_eq!(d.outcome, Outcome::Hold);
    }
}

/// A loop that requests without ever sleeping: each request gives it a
/// fresh instruction budget, so only the requests can bound it.
#[tokio::test]
async fn a_loop_that_never_sleeps_is_stopped_after_its_requests() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(9_600_000)));
    // nothing listens on port 1: each request fails at once, and the loop goes on
    let script = "local http = require('socket.http')\nwhile true do http.request('http://127.0.0.1:1/x') end";
    let text = inline_policy("http://127.0.0.1:1/m", &cloud.url("/s"), script);
    let ds = run_until(engine(&text, dir.path(), &clock), "p", 1).await;
    assert_eq!(ds.len(), 1, "the loop was never stopped");
    let err = ds[0].checks[0].recommendation.error.clone().unwrap();
    assert!(err.contains("1000 requests without a socket.sleep") && err.contains("policies.p.script:2"), "{err}");
}

#[test]
fn validate_checks_scripts_and_their_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [("while true do", "syntax error")];
    for (script, want) in bad {
        let text = inline_policy("http://127.0.0.1:1/m", "http://127.0.0.1:1/s", script);
        let err = Config::parse(&dir.path().join("c.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("policies.p.script") && err.contains(want), "{err}");
    }
    let text = inline_policy("http://127.0.0.1:1/m", "http://127.0.0.1:1/s", "x = 1")
        .replace(r#"{ action = "scale_up" }"#, r#"{ source = "nope" }"#);
    let err = Config::parse(&dir.path().join("c.toml"), &text).unwrap_err().to_string();
    assert!(err.contains("no source named `nope`"), "{err}");
    let text = inline_policy("http://127.0.0.1:1/m", "http://127.0.0.1:1/s", "x = 1").replace(
        "[policies.p.script]",
        "[policies.p.checks.c]\nstrategy = \"lua\"\nsource = \"function decide() end\"\n[policies.p.script]",
    );
    let err = Config::parse(&dir.path().join("c.toml"), &text).unwrap_err().to_string();
    assert!(err.contains("checks or a script, not both"), "{err}");
}

#[tokio::test]
async fn redirects_are_not_followed_past_the_allow_list() {
    let elsewhere = TestServer::start(|_, _| text(200, "SECRET")).await;
    let target = elsewhere.url("/secret");
    let allowed = TestServer::start(move |_, _| {
        let mut r = text(302, "");
        r.headers_mut().insert("location", target.parse().unwrap());
        r
    })
    .await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let script = format!(
        r#"
local http = require("socket.http")
local body, code, headers = http.request("{}")
assert(code == 302 and body ~= "SECRET", "the redirect is returned, not followed")
http.request("http://provider.test/up")
require("socket").sleep(3600)
"#,
        allowed.url("/go")
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(9_700_000)));
    let ds = run_until(
        engine(&inline_policy("http://127.0.0.1:1/m", &cloud.url("/s"), &script), dir.path(), &clock),
        "p",
        1,
    )
    .await;
    assert_eq!(ds[0].outcome, Outcome::Scaled { from: 1, to: 2 }, "{}", ds[0].reason);
    assert!(elsewhere.seen().is_empty());
}

#[tokio::test]
async fn a_script_calling_faster_than_one_action_a_second_is_throttled() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let script = r#"
local http, json = require("socket.http"), require("json")
local codes = {}
for i = 1, 5 do
  local body, code = http.request("http://provider.test/up")
  codes[#codes + 1] = code
end
assert(table.concat(codes, ",") == "200,429,429,429,429", table.concat(codes, ","))
require("socket").sleep(2)
local _, code = http.request("http://provider.test/up")
assert(code == 200, "after a second it may act again")
require("socket").sleep(3600)
"#;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(9_800_000)));
    let ds =
        run_until(engine(&inline_policy("http://127.0.0.1:1/m", &cloud.url("/s"), script), dir.path(), &clock), "p", 2)
            .await;
    assert_eq!(ds.len(), 2, "two decisions, not six");
    assert!(
        ds.iter().all(|d| d.checks[0].recommendation.error.is_none()),
        "{:?}",
        ds.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    assert_eq!(ds[1].outcome, Outcome::Scaled { from: 2, to: 3 });
}

#[tokio::test]
async fn a_changed_script_is_swapped_in_only_when_it_compiles() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loop.lua");
    let version = |n: u32| {
        format!(
            "local http, socket = require('socket.http'), require('socket')\n-- version {n}\nhttp.request('http://provider.test/up')\nwhile true do socket.sleep(3600) end\n"
        )
    };
    std::fs::write(&file, version(1)).unwrap();
    let text = inline_policy("http://127.0.0.1:1/m", &cloud.url("/s"), "")
        .replace("source = '''\n\n'''", &format!("file = \"{}\"", file.display()));
    let e = engine(&text, dir.path(), &clock_at(9_900_000));
    let mut rx = e.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(e.run(stopped));
    let next = |rx: &mut tokio::sync::broadcast::Receiver<Decision>| {
        let mut rx = rx.resubscribe();
        async move { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap().unwrap() }
    };
    let first = next_decision(&mut rx).await;
    assert_eq!(first.outcome, Outcome::Scaled { from: 1, to: 2 }, "{}", first.reason);

    let waiting = next(&mut rx);
    std::fs::write(&file, "local x = = 1 -- a broken version, longer than the others to change the size").unwrap();
    let refused = waiting.await;
    let err = refused.checks[0].recommendation.error.clone().unwrap();
    assert!(err.contains("reload failed, the previous version keeps running") && err.contains("syntax error"), "{err}");

    let waiting = next(&mut rx);
    std::fs::write(&file, version(3)).unwrap();
    let third = waiting.await;
    assert_eq!(third.outcome, Outcome::Scaled { from: 2, to: 3 }, "the new version runs: {}", third.reason);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), runner).await.unwrap().unwrap();
}

fn clock_at(secs: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_secs(secs)))
}

#[tokio::test]
async fn a_script_mode_policy_has_a_control_and_an_operators_pause_holds_its_actions() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let script = r#"
local http = require("socket.http")
while true do
  http.request("http://provider.test/up")
  require("socket").sleep(10)
end
"#;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(9_800_000);
    let engine = engine(&inline_policy("http://127.0.0.1:1/m", &cloud.url("/s"), script), dir.path(), &clock);
    // the API serves what controls() lists: the script-mode policy is there to be paused
    let controls = engine.controls();
    assert_eq!(controls.iter().map(|c| c.policy.as_str()).collect::<Vec<_>>(), ["p"]);
    controls[0].update(|s| {
        s.operator.paused = Some(moontide::engine::control::Pause {
            by: "olga".into(),
            reason: "maintenance".into(),
            since: Timestamp::from_secs(9_800_000),
        })
    });
    let ds = run_until(engine, "p", 2).await;
    assert_eq!(ds.len(), 2);
    for d in &ds {
        assert!(d.guards.iter().any(|g| g.guard == GuardKind::Operator), "{d:?}");
        assert!(!matches!(d.outcome, Outcome::Scaled { .. }), "a paused policy scaled: {d:?}");
    }
    assert!(cloud.seen().is_empty(), "the platform was called while paused");
}

async fn next_decision(rx: &mut tokio::sync::broadcast::Receiver<Decision>) -> Decision {
    tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a decision within 30 s").unwrap()
}

/// A guide-style loop behind a gateway: the gateway pushes its pending
/// requests to a `push` source, the script reads them from a mapped URL and
/// sleeps an hour between rounds. With the fleet at zero, the first push
/// cuts that sleep short, and the first request's wait is a round, not an
/// hour. (Real sleeps: only the wake can end this one within the test.)
#[tokio::test]
async fn a_push_to_a_fleet_at_zero_wakes_a_sleeping_script() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "gw-s3cret").unwrap();
    let config = format!(
        r#"
[sources.gateway]
type = "push"
token_file = "{token}"

[targets.cloud]
type = "webhook"
url = "{cloud}"
initial = 0

[policies.p]
target = "cloud"
min = 0
max = 5

[policies.p.script]
allow_hosts = []
urls = {{ "http://gateway.test/pending" = {{ source = "gateway" }}, "http://provider.test/up" = {{ action = "scale_up" }}, "http://provider.test/down" = {{ action = "scale_down" }} }}
source = '''
local http = require("socket.http")
local json = require("json")
while true do
  local seen = json.decode(http.request("http://gateway.test/pending"))
  if (seen.pending or 0) > 0 then
    http.request("http://provider.test/up")
  else
    http.request("http://provider.test/down")
  end
  require("socket").sleep(3600)
end
'''
"#,
        token = token.display(),
        cloud = cloud.url("/scale?replicas={count}"),
    );
    let path = dir.path().join("moontide.toml");
    std::fs::write(&path, config).unwrap();
    let clock = clock_at(9_900_000);
    let engine = Engine::build(
        &Config::load(&path).unwrap(),
        Store::open(&dir.path().join("state")).unwrap(),
        clock.clone(),
        false,
    )
    .unwrap();
    let gateway = engine.push_sources()["gateway"].clone();
    let mut rx = engine.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.run(stopped));
    // the first round: nothing pending, the fleet stays at zero
    let first = next_decision(&mut rx).await;
    assert_eq!((first.current, first.outcome.change()), (0, None), "{first:?}");
    // the gateway pushes a waiting request a few seconds later
    clock.advance(Duration::from_secs(5));
    gateway.accept(Some("gw-s3cret"), br#"{"pending": 1}"#, clock.now()).unwrap();
    let woken = next_decision(&mut rx).await;
    assert_eq!(woken.outcome.change(), Some((0, 1)), "{woken:?}");
    assert!(woken.reason.contains("scale-up"), "{}", woken.reason);
    assert_eq!(cloud.seen().len(), 1, "one call to the platform");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), runner).await.unwrap().unwrap();
}
