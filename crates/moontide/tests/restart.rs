//! Restarts on the same state directory: cooldowns and stabilization windows
//! carry on from the stored decisions instead of starting fresh. Virtual time
//! (a manual clock); real HTTP servers for the source and the target.

mod common;

use common::{TestServer, json, text};
use moontide::config::Config;
use moontide::engine::Engine;
use moontide::store::Store;
use moontide_core::{GuardKind, ManualClock, Outcome, Timestamp};
use serde_json::json as j;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn config(metrics: &str, scale: &str) -> String {
    format!(
        r#"
[sources.app]
type = "http_json"
url = "{metrics}"

[targets.cloud]
type = "webhook"
url = "{scale}"
initial = 1

[policies.web]
target = "cloud"
interval = "10s"
min = 1
max = 10

[policies.web.metrics]
cpu = {{ source = "app", query = "/cpuUsage" }}

[policies.web.checks.cpu]
strategy = "threshold"
conditions = [{{ metric = "cpu", upper = 80, lower = 20 }}]

[policies.web.behaviour]
scale_up = {{ cooldown = "60s" }}
scale_down = {{ stabilization = "120s" }}
"#
    )
}

fn engine(path: &Path, state: &Path, clock: &Arc<ManualClock>) -> Engine {
    let config = Config::load(path).unwrap();
    Engine::build(&config, Store::open(state).unwrap(), clock.clone(), false).unwrap()
}

#[tokio::test]
async fn a_restart_mid_cooldown_waits_for_the_cooldown() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 95}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&config(&metrics.url("/m"), &cloud.url("/scale?n={count}")));
    let state = dir.path().join("state");
    let t0 = Timestamp::from_secs(2_000_000);
    let clock = Arc::new(ManualClock::new(t0));

    let mut first = engine(&path, &state, &clock);
    let d = first.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 1, to: 2 }, "{}", d.reason);
    drop(first);

    // A new engine on the same state directory, 20 s later: still cooling down.
    let mut second = engine(&path, &state, &clock);
    for after in [20, 40, 50] {
        clock.set(t0.plus(Duration::from_secs(after)));
        let d = second.tick("web").await.unwrap();
        assert_eq!(d.current, 2, "the tracked count survives the restart");
        assert_eq!(d.outcome, Outcome::Hold, "t0+{after}s: {}", d.reason);
        assert!(d.guards.iter().any(|g| g.guard == GuardKind::Cooldown), "{}", d.reason);
    }
    assert_eq!(cloud.seen().len(), 1);

    clock.set(t0.plus(Duration::from_secs(61)));
    let d = second.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 2, to: 3 }, "{}", d.reason);
    let seen = cloud.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].query.as_deref(), Some("n=3"));
}

#[tokio::test]
async fn a_restart_keeps_the_stabilization_window() {
    let cpu = Arc::new(AtomicU32::new(95));
    let c = cpu.clone();
    let metrics = TestServer::start(move |_, _| json(200, j!({"cpuUsage": c.load(Ordering::SeqCst)}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&config(&metrics.url("/m"), &cloud.url("/scale")));
    let state = dir.path().join("state");
    let t0 = Timestamp::from_secs(3_000_000);
    let clock = Arc::new(ManualClock::new(t0));

    let mut first = engine(&path, &state, &clock);
    assert_eq!(first.tick("web").await.unwrap().outcome, Outcome::Scaled { from: 1, to: 2 });
    drop(first);

    cpu.store(5, Ordering::SeqCst);
    let mut second = engine(&path, &state, &clock);
    clock.set(t0.plus(Duration::from_secs(60)));
    let d = second.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Hold, "{}", d.reason);
    assert!(d.guards.iter().any(|g| g.guard == GuardKind::Stabilization), "{}", d.reason);

    clock.set(t0.plus(Duration::from_secs(130)));
    let d = second.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 2, to: 1 }, "{}", d.reason);
}

#[tokio::test]
async fn a_restarted_process_pool_comes_back_at_its_last_count() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 95}))).await;
    let text = format!(
        r#"
[sources.app]
type = "http_json"
url = "{}"

[targets.pool]
type = "process"
command = ["sleep", "300"]
grace = "1s"

[policies.web]
target = "pool"
interval = "10s"
min = 1
max = 10

[policies.web.metrics]
cpu = {{ source = "app", query = "/cpuUsage" }}

[policies.web.checks.cpu]
strategy = "threshold"
conditions = [{{ metric = "cpu", upper = 80 }}]

[policies.web.behaviour]
scale_up = {{ cooldown = "60s" }}
"#,
        metrics.url("/m")
    );
    let (dir, path) = common::config_file(&text);
    let state = dir.path().join("state");
    let t0 = Timestamp::from_secs(4_000_000);
    let clock = Arc::new(ManualClock::new(t0));
    let mut first = engine(&path, &state, &clock);
    assert_eq!(first.tick("web").await.unwrap().outcome, Outcome::Scaled { from: 0, to: 1 });
    clock.set(t0.plus(Duration::from_secs(70)));
    assert_eq!(first.tick("web").await.unwrap().outcome, Outcome::Scaled { from: 1, to: 2 });
    first.shutdown().await;
    drop(first);

    clock.set(t0.plus(Duration::from_secs(80)));
    let mut second = engine(&path, &state, &clock);
    let d = second.tick("web").await.unwrap();
    assert_eq!(d.current, 2, "the pool is restored to its last count: {}", d.reason);
    assert_eq!(d.outcome, Outcome::Hold, "still cooling down: {}", d.reason);
    second.shutdown().await;
}

#[tokio::test]
async fn a_step_sequence_that_failed_part_way_is_remembered() {
    let cloud =
        TestServer::start(|s, n| if s.path == "/up" && n >= 2 { text(403, "quota") } else { text(200, "ok") }).await;
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 95}))).await;
    let text = format!(
        r#"
[sources.app]
type = "http_json"
url = "{}"

[targets.cloud]
type = "webhook"
mode = "step"
scale_up_url = "{}"
scale_down_url = "{}"
initial = 2

[policies.web]
target = "cloud"
interval = "10s"
min = 1
max = 10

[policies.web.metrics]
cpu = {{ source = "app", query = "/cpuUsage" }}

[policies.web.checks.cpu]
strategy = "threshold"
step_up = 4
conditions = [{{ metric = "cpu", upper = 80 }}]
"#,
        metrics.url("/m"),
        cloud.url("/up"),
        cloud.url("/down")
    );
    let (dir, path) = common::config_file(&text);
    let state = dir.path().join("state");
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(5_000_000)));
    let mut first = engine(&path, &state, &clock);
    let d = first.tick("web").await.unwrap();
    match &d.outcome {
        Outcome::Failed { from: 2, to: 6, reached: Some(4), .. } => {}
        other => panic!("{other:?}: {}", d.reason),
    }
    drop(first);
    let mut second = engine(&path, &state, &clock);
    clock.advance(Duration::from_secs(10));
    let d = second.tick("web").await.unwrap();
    assert_eq!(d.current, 4, "the count reached survives a restart: {}", d.reason);
}
