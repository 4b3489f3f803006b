//! The `predictive` check in the engine: it learns a seasonal load, records
//! its forecast in the decision, scales out ahead of the load, and its history
//! survives a restart; forecast-only, it records the same and asks for nothing. Virtual time (a manual clock); real HTTP on 127.0.0.1.

mod common;

use common::{TestServer, json, text};
use moontide::config::Config;
use moontide::engine::Engine;
use moontide::store::Store;
use moontide_core::{Clock, ManualClock, Timestamp};
use serde_json::json as j;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
interval = "20s"
min = 1
max = 100

[policies.web.metrics]
rps = {{ source = "app", query = "/rps" }}

[policies.web.checks.now]
strategy = "target_tracking"
targets = [{{ metric = "rps", target = 10, aggregate = "total" }}]

[policies.web.checks.ahead]
strategy = "predictive"
metric = "rps"
target = 10
step = "1m"
seasons = ["1h"]
lead = "5m"
headroom = 0

[policies.web.behaviour]
scale_down = {{ stabilization = "0s" }}
"#
    )
}

/// Load with a one-hour season: 100 ± 80 req/s.
fn load(secs: u64) -> f64 {
    100.0 + 80.0 * (secs as f64 * std::f64::consts::TAU / 3600.0).sin()
}

/// The load the app's metrics endpoint reports (set by the test) and the
/// platform's scaling endpoint.
async fn servers() -> (Arc<AtomicU64>, TestServer, TestServer) {
    let rps = Arc::new(AtomicU64::new(load(0).to_bits()));
    let r = rps.clone();
    let metrics =
        TestServer::start(move |_, _| json(200, j!({ "rps": f64::from_bits(r.load(Ordering::SeqCst)) }))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    (rps, metrics, cloud)
}

/// Ticks `web` at `secs` seconds after `t0`, with the load of that moment.
async fn tick_at(e: &mut Engine, clock: &ManualClock, rps: &AtomicU64, t0: i64, secs: u64) -> moontide_core::Decision {
    clock.set(Timestamp::from_secs(t0 + secs as i64));
    rps.store(load(secs).to_bits(), Ordering::SeqCst);
    e.tick("web").await.unwrap()
}

#[tokio::test]
async fn the_forecast_leads_the_load_and_its_history_survives_a_restart() {
    let (rps, metrics, cloud) = servers().await;
    let (dir, path) = common::config_file(&config(&metrics.url("/m"), &cloud.url("/scale?n={count}")));
    let state = dir.path().join("state");
    let t0 = 1_700_000_000;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(t0)));
    let build =
        || Engine::build(&Config::load(&path).unwrap(), Store::open(&state).unwrap(), clock.clone(), false).unwrap();

    let mut e = build();
    let mut ahead_wins = 0;
    let mut last = None;
    // three hours of 20 s ticks
    for i in 0..540u64 {
        let d = tick_at(&mut e, &clock, &rps, t0, i * 20).await;
        let ahead = d.checks.iter().find(|c| c.check == "ahead").unwrap();
        let now = d.checks.iter().find(|c| c.check == "now").unwrap();
        if i >= 360
            && let (Some(a), Some(n)) = (ahead.recommendation.desired, now.recommendation.desired)
            && a > n
        {
            ahead_wins += 1;
        }
        last = Some(d);
    }
    let d = last.unwrap();
    let ahead = d.checks.iter().find(|c| c.check == "ahead").unwrap();
    let f = ahead.forecast.as_ref().expect("the decision records the forecast");
    assert!(f.model.ends_with("(60)"), "a seasonal model with the one-hour season: {f:?}");
    assert!(f.mae < f.naive_mae, "{f:?}");
    let truth = load(539 * 20 + 300);
    assert!((f.value - truth).abs() < 15.0, "forecast {} vs {truth}", f.value);
    assert!(ahead.recommendation.reason.contains("rps in 5m"), "{}", ahead.recommendation.reason);
    // on the rising half of each hour the forecast asks for more than the present load
    assert!(ahead_wins > 30, "the forecast led the reactive check only {ahead_wins} times");
    drop(e);

    // a restart: the history is read back, so the first tick forecasts at once
    let mut again = build();
    clock.advance(Duration::from_secs(20));
    rps.store(load(540 * 20).to_bits(), Ordering::SeqCst);
    let d = again.tick("web").await.unwrap();
    let ahead = d.checks.iter().find(|c| c.check == "ahead").unwrap();
    let f = ahead
        .forecast
        .as_ref()
        .unwrap_or_else(|| panic!("no forecast after the restart: {}", ahead.recommendation.reason));
    assert!(f.model.ends_with("(60)"), "{f:?}");
    assert!(clock.now() > Timestamp::from_secs(t0));
    again.shutdown().await;
}

#[tokio::test]
async fn forecast_only_records_what_it_would_ask_for_and_asks_for_nothing() {
    let (rps, metrics, cloud) = servers().await;
    let text = config(&metrics.url("/m"), &cloud.url("/scale?n={count}"))
        .replace("lead = \"5m\"\n", "lead = \"5m\"\nforecast_only = true\n");
    let (dir, path) = common::config_file(&text);
    let t0 = 1_700_000_000;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(t0)));
    let mut e = Engine::build(
        &Config::load(&path).unwrap(),
        Store::open(&dir.path().join("state")).unwrap(),
        clock.clone(),
        false,
    )
    .unwrap();
    let mut would_have_led = 0;
    // three hours of 20 s ticks
    for i in 0..540u64 {
        let d = tick_at(&mut e, &clock, &rps, t0, i * 20).await;
        let ahead = d.checks.iter().find(|c| c.check == "ahead").unwrap();
        let now = d.checks.iter().find(|c| c.check == "now").unwrap();
        assert_eq!(ahead.recommendation.desired, None, "tick {i}: {}", ahead.recommendation.reason);
        // what the checks recommend together is the reactive check's alone
        assert_eq!(d.recommended, now.recommendation.desired, "tick {i}");
        if let (Some(f), Some(n)) = (&ahead.forecast, now.recommendation.desired)
            && f.replicas.is_some_and(|r| r > n)
        {
            assert!(ahead.recommendation.reason.starts_with("forecast only:"), "{}", ahead.recommendation.reason);
            would_have_led += 1;
        }
    }
    assert!(would_have_led > 30, "the recorded forecast asked for more than the load only {would_have_led} times");
    e.shutdown().await;
}
