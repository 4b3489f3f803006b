//! The live engine: policies tick on their own tasks, so a policy stuck on a
//! slow source does not delay the others; shutdown stops every task.

mod common;

use common::{TestServer, json, text};
use moontide::config::Config;
use moontide::engine::{Engine, SystemClock};
use moontide::store::Store;
use moontide_core::ReadingStatus;
use serde_json::json as j;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_slow_policy_never_delays_the_others() {
    // A metrics server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let quick = TestServer::start(|_, _| json(200, j!({"cpu": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let config = format!(
        r#"
[sources.stuck]
type = "http_json"
url = "http://{silent_addr}/m"
timeout = "3s"

[sources.quick]
type = "http_json"
url = "{quick}"

[targets.a]
type = "webhook"
url = "{cloud}"
initial = 1

[targets.b]
type = "webhook"
url = "{cloud}"
initial = 1

[policies.slow]
target = "a"
interval = "1s"
min = 1
max = 3
metrics = {{ cpu = {{ source = "stuck", query = "/cpu" }} }}
checks = {{ cpu = {{ strategy = "target_tracking", targets = [{{ metric = "cpu", target = 50 }}] }} }}

[policies.fast]
target = "b"
interval = "200ms"
min = 1
max = 3
metrics = {{ cpu = {{ source = "quick", query = "/cpu" }} }}
checks = {{ cpu = {{ strategy = "target_tracking", targets = [{{ metric = "cpu", target = 50 }}] }} }}
"#,
        quick = quick.url("/m"),
        cloud = cloud.url("/scale"),
    );
    let (dir, path) = common::config_file(&config);
    let config = Config::load(&path).unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let engine = Engine::build(&config, store, Arc::new(SystemClock), false).unwrap();
    let mut decisions = engine.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.run(stopped));

    let mut fast_before_slow = 0;
    let slow = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let d = decisions.recv().await.unwrap();
            if d.policy == "slow" {
                return d;
            }
            fast_before_slow += 1;
        }
    })
    .await
    .expect("the slow policy decides once its source times out");
    assert!(fast_before_slow >= 3, "only {fast_before_slow} fast decisions while the slow policy waited");
    assert_eq!(slow.inputs[0].status, ReadingStatus::Failed);
    assert!(slow.inputs[0].error.as_ref().unwrap().contains("timed out"), "{:?}", slow.inputs[0]);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), runner).await.unwrap().unwrap();
    assert!(cloud.seen().is_empty(), "nothing to scale: both policies were at target or failing");
    hold.abort();
}

#[tokio::test]
async fn a_scale_up_from_zero_reports_its_wait_for_a_first_ready_replica() {
    use moontide_core::{ManualClock, Timestamp};
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    let pending = Arc::new(AtomicU32::new(0));
    let p = pending.clone();
    let metrics = TestServer::start(move |_, _| json(200, j!({ "pending": p.load(SeqCst) }))).await;
    // the platform: counts what it is asked for; its servers are ready when the test says
    let (count, ready) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (c, r) = (count.clone(), ready.clone());
    let platform = TestServer::start(move |seen, _| {
        if seen.path == "/scale" {
            if let Some(n) = seen.query.as_deref().and_then(|q| q.strip_prefix("n=")).and_then(|n| n.parse().ok()) {
                c.store(n, SeqCst);
            }
            return text(200, "ok");
        }
        json(200, j!({ "replicas": c.load(SeqCst), "ready": r.load(SeqCst).min(c.load(SeqCst)) }))
    })
    .await;
    let config = format!(
        r#"
[sources.gateway]
type = "http_json"
url = "{metrics}"

[targets.gpus]
type = "webhook"
url = "{scale}"
status_url = "{status}"
ready_pointer = "/ready"

[policies.wake_report]
target = "gpus"
interval = "10s"
min = 0
max = 4
metrics = {{ pending = {{ source = "gateway", query = "/pending" }} }}
checks = {{ wake = {{ strategy = "target_tracking", targets = [{{ metric = "pending", target = 10, aggregate = "total", activation = 0 }}] }} }}
"#,
        metrics = metrics.url("/m"),
        scale = platform.url("/scale?n={count}"),
        status = platform.url("/status"),
    );
    let (dir, path) = common::config_file(&config);
    let t0 = 1_700_000_000;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(t0)));
    let store = Store::open(&dir.path().join("state")).unwrap();
    let mut e = Engine::build(&Config::load(&path).unwrap(), store, clock.clone(), false).unwrap();
    let reported = || {
        let text = moontide::metrics::get().render();
        text.lines()
            .find(|l| l.starts_with("moontide_wake_from_zero_seconds{policy=\"wake_report\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let d = e.tick("wake_report").await.unwrap();
    assert_eq!((d.current, d.desired), (0, 0), "{d:?}");
    // a request arrives: the fleet scales up from zero; the server takes 3 minutes to load
    pending.store(3, SeqCst);
    clock.set(Timestamp::from_secs(t0 + 10));
    let d = e.tick("wake_report").await.unwrap();
    assert_eq!((d.current, d.desired), (0, 1), "{d:?}");
    for s in (20..=180).step_by(10) {
        clock.set(Timestamp::from_secs(t0 + s));
        e.tick("wake_report").await.unwrap();
        assert_eq!(reported(), None, "reported before a replica was ready (t + {s} s)");
    }
    ready.store(1, SeqCst);
    clock.set(Timestamp::from_secs(t0 + 190));
    let d = e.tick("wake_report").await.unwrap();
    assert_eq!(d.ready, 1);
    assert_eq!(reported(), Some(180.0), "from the scale-up at t + 10 s to the tick at t + 190 s that saw it ready");
    e.shutdown().await;
}

/// `run --once` (for cron jobs and CI) exits 1 when a policy's action failed,
/// naming the policy, and 0 when every tick went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exits_1_when_an_action_fails() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpuUsage": 100}))).await;
    let refusing = TestServer::start(|_, _| text(400, "no capacity in this zone")).await;
    let accepting = TestServer::start(|_, _| text(200, "ok")).await;
    let run = |scale: String| {
        let checks =
            r#"checks = { cpu = { strategy = "target_tracking", targets = [{ metric = "cpu", target = 50 }] } }"#;
        let (dir, path) = common::config_file(&common::web_config(&metrics.url("/m"), &scale, checks));
        let state = dir.path().join("state");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
            .args(["run", "--once", "--config"])
            .arg(&path)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = run(refusing.url("/scale?n={count}"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("error: policy web:") && err.contains("2 → 4"), "{err}");
    assert_eq!(refusing.seen().len(), 1, "a 400 is not retried");
    let (code, err) = run(accepting.url("/scale?n={count}"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(accepting.seen()[0].query.as_deref(), Some("n=4"));
}
