//! The `http_json` source against real HTTP servers on 127.0.0.1: good
//! readings, slow servers, 5xx, malformed JSON, missing fields, bearer tokens,
//! and the engine's refusal to scale down on failed readings.

mod common;

use common::{TestServer, json, text};
use moontide::config::Config;
use moontide::engine::Engine;
use moontide::sources::http_json::{HttpJson, HttpJsonConfig};
use moontide::store::Store;
use moontide_core::{GuardKind, ManualClock, Outcome, ReadingStatus, Timestamp};
use serde_json::json as j;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn source(url: String, timeout: Duration) -> HttpJsonConfig {
    HttpJsonConfig {
        url,
        timeout,
        token_env: None,
        token_file: None,
        headers: Default::default(),
        time_pointer: None,
        max_age: None,
    }
}

fn queries(q: &[&str]) -> Vec<String> {
    q.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn reads_the_guides_metrics_shape() {
    let server = TestServer::start(|_, _| json(200, j!({"cpuUsage": 85.5, "memoryUsage": 40}))).await;
    let s = HttpJson::new("app", &source(server.url("/metrics"), Duration::from_secs(2))).unwrap();
    let got = s.read(&queries(&["/cpuUsage", "/memoryUsage"])).await;
    assert_eq!(got[0].as_ref().unwrap().value, 85.5);
    assert_eq!(got[1].as_ref().unwrap().value, 40.0);
    assert_eq!(server.seen().len(), 1, "one GET serves all queries of a source");
}

#[tokio::test]
async fn failures_are_reported_not_invented() {
    type Reply = Box<dyn Fn() -> axum::response::Response + Send + Sync>;
    let cases: Vec<(&str, Reply, &str)> = vec![
        ("500", Box::new(|| text(500, "boom")), "HTTP 500"),
        ("malformed", Box::new(|| text(200, "{\"cpuUsage\": 8")), "malformed JSON"),
        ("missing field", Box::new(|| json(200, j!({"memoryUsage": 1}))), "no value at /cpuUsage"),
        ("not a number", Box::new(|| json(200, j!({"cpuUsage": "high"}))), "not a number"),
    ];
    for (name, reply, want) in cases {
        let server = TestServer::start(move |_, _| reply()).await;
        let s = HttpJson::new("app", &source(server.url("/m"), Duration::from_secs(2))).unwrap();
        let got = s.read(&queries(&["/cpuUsage"])).await;
        let err = got[0].as_ref().unwrap_err();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and never answers.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            held.push(c);
        }
    });
    let s = HttpJson::new("app", &source(format!("http://{addr}/m"), Duration::from_millis(300))).unwrap();
    let got = s.read(&queries(&["/cpuUsage"])).await;
    assert!(got[0].as_ref().unwrap_err().contains("timed out after 300ms"), "{:?}", got[0]);
    hold.abort();
}

#[tokio::test]
async fn sends_the_bearer_token_from_a_file() {
    let server = TestServer::start(|s, _| {
        if s.header("authorization").as_deref() == Some("Bearer s3cret") {
            json(200, j!({"v": 1}))
        } else {
            text(401, "no")
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let mut cfg = source(server.url("/m"), Duration::from_secs(2));
    cfg.token_file = Some(token);
    let s = HttpJson::new("app", &cfg).unwrap();
    assert_eq!(s.read(&queries(&["/v"])).await[0].as_ref().unwrap().value, 1.0);
    cfg.token_file = Some(dir.path().join("missing"));
    let err = HttpJson::new("app", &cfg).err().unwrap();
    assert!(err.contains("source `app`") && err.contains("missing"), "{err}");
}

fn engine_config(metrics_url: &str, scale_url: &str, time_pointer: bool) -> String {
    let stale = if time_pointer { "time_pointer = \"/ts\"\nmax_age = \"30s\"" } else { "" };
    format!(
        r#"
[sources.app]
type = "http_json"
url = "{metrics_url}"
timeout = "1s"
{stale}

[targets.cloud]
type = "webhook"
url = "{scale_url}"
initial = 4

[policies.web]
target = "cloud"
interval = "10s"
min = 1
max = 10

[policies.web.metrics]
cpu = {{ source = "app", query = "/cpuUsage" }}

[policies.web.checks.cpu]
strategy = "target_tracking"
targets = [{{ metric = "cpu", target = 50 }}]

[policies.web.behaviour]
scale_down = {{ stabilization = "0s" }}
"#
    )
}

/// Good readings scale down; a failed one holds, and says why.
#[tokio::test]
async fn failed_readings_never_scale_down() {
    let mode = Arc::new(AtomicU32::new(0));
    let m = mode.clone();
    let metrics = TestServer::start(move |_, _| match m.load(Ordering::SeqCst) {
        0 => json(200, j!({"cpuUsage": 10})),
        1 => text(500, "down"),
        2 => text(200, "not json"),
        _ => json(200, j!({"other": 1})),
    })
    .await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&engine_config(&metrics.url("/m"), &cloud.url("/scale"), false));
    let config = Config::load(&path).unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000_000)));
    let mut engine = Engine::build(&config, store, clock.clone(), false).unwrap();

    for failure in 1..=3 {
        mode.store(failure, Ordering::SeqCst);
        let d = engine.tick("web").await.unwrap();
        assert_eq!(d.outcome, Outcome::Hold, "failure mode {failure}: {}", d.reason);
        assert_eq!(d.inputs[0].status, ReadingStatus::Failed);
        assert!(d.inputs[0].error.is_some());
        assert!(d.guards.iter().any(|g| g.guard == GuardKind::OnError), "{}", d.reason);
        clock.advance(Duration::from_secs(10));
    }
    assert!(cloud.seen().is_empty(), "no actuation on failed data");

    mode.store(0, Ordering::SeqCst);
    let d = engine.tick("web").await.unwrap();
    assert_eq!(d.outcome, Outcome::Scaled { from: 4, to: 1 }, "{}", d.reason);
    assert_eq!(cloud.seen().len(), 1);
}

#[tokio::test]
async fn stale_readings_are_marked_and_hold() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000_000)));
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 10, "ts": 1_000_000 - 120}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (dir, path) = common::config_file(&engine_config(&metrics.url("/m"), &cloud.url("/scale"), true));
    let config = Config::load(&path).unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let mut engine = Engine::build(&config, store, clock.clone(), false).unwrap();
    let d = engine.tick("web").await.unwrap();
    assert_eq!(d.inputs[0].status, ReadingStatus::Stale);
    assert_eq!(d.inputs[0].value, Some(10.0), "the stale value is kept for the record");
    assert!(d.inputs[0].error.as_ref().unwrap().contains("older than max_age 30s"));
    assert_eq!(d.outcome, Outcome::Hold, "{}", d.reason);
    assert!(cloud.seen().is_empty());
}

#[tokio::test]
async fn readings_without_a_usable_timestamp_are_failures() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000_000)));
    for (payload, want, status) in [
        (j!({"cpuUsage": 10}), "no usable timestamp", ReadingStatus::Failed),
        (j!({"cpuUsage": 10, "ts": 1_000_000_000}), "in the future", ReadingStatus::Stale),
    ] {
        let metrics = TestServer::start(move |_, _| json(200, payload.clone())).await;
        let cloud = TestServer::start(|_, _| text(200, "ok")).await;
        let (dir, path) = common::config_file(&engine_config(&metrics.url("/m"), &cloud.url("/scale"), true));
        let config = Config::load(&path).unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let mut engine = Engine::build(&config, store, clock.clone(), false).unwrap();
        let d = engine.tick("web").await.unwrap();
        assert_eq!(d.inputs[0].status, status, "{want}");
        assert!(d.inputs[0].error.as_ref().unwrap().contains(want), "{:?}", d.inputs[0]);
        assert_eq!(d.outcome, Outcome::Hold);
    }
}
