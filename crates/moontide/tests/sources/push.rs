//! The `push` source and the server endpoint it receives values on, over
//! real HTTP on 127.0.0.1, and through `moontide run`.

use crate::common::{TestServer, text};
use crate::contract::{Kit, check};
use moontide::sources::{Source, SourceConfig};
use moontide_core::ReadingStatus;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn token_file(dir: &tempfile::TempDir, token: &str) -> std::path::PathBuf {
    let p = dir.path().join("push-token");
    std::fs::write(&p, token).unwrap();
    p
}

async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn push_passes_the_source_contract() {
    let dir = tempfile::tempdir().unwrap();
    let t = token_file(&dir, "push-s3cret");
    let config = format!("type = \"push\"\ntoken_file = \"{}\"", t.display());
    check(
        "push",
        Kit {
            healthy: config.clone(),
            query: "pending".into(),
            expected: 42.0,
            failing: config,
            failing_query: "never_pushed".into(),
            failing_says: "nothing pushed yet for `never_pushed`",
            hanging: None,
            secret: Some("push-s3cret".into()),
            feed: Some(Box::new(|s| {
                let Source::Push(p) = s else { panic!("not a push source") };
                p.accept(Some("push-s3cret"), br#"{"pending": 42}"#, moontide_core::Timestamp::from_secs(1)).unwrap();
            })),
        },
    )
    .await;
}

#[tokio::test]
async fn the_server_takes_pushes_whole_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let t = token_file(&dir, "push-s3cret");
    let config = format!("type = \"push\"\ntoken_file = \"{}\"", t.display());
    let c: SourceConfig = toml::from_str(&config).unwrap();
    let Source::Push(push) = Source::build("gateway", &c).unwrap() else { panic!("not a push source") };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let live = moontide::server::Live {
        pushes: BTreeMap::from([("gateway".to_string(), push.clone())]),
        ..Default::default()
    };
    let store = moontide::store::Store::open(&dir.path().join("state")).unwrap();
    let api = moontide::server::ApiState {
        store: store.clone(),
        decisions: tokio::sync::broadcast::channel(16).0,
        clock: Arc::new(moontide::engine::SystemClock),
        reload: None,
    };
    let state = moontide::server::State::new(live, Some(api));
    let (addr, server) = moontide::server::start("127.0.0.1:0".parse().unwrap(), state, None, stopped).await.unwrap();
    let url = format!("http://{addr}/push/gateway");

    // refusals: nothing changes, and the reply says why
    assert_eq!(post(&url, None, r#"{"pending": 1}"#).await.0, 401);
    assert_eq!(post(&url, Some("push-s3cret-not"), r#"{"pending": 1}"#).await.0, 401);
    let (code, body) = post(&format!("http://{addr}/push/nope"), Some("push-s3cret"), r#"{"pending": 1}"#).await;
    assert_eq!((code, body["error"].as_str().unwrap()), (404, "no push source named `nope`"));
    assert!(push.read(&["pending".into()])[0].is_err());

    let (code, body) = post(&url, Some("push-s3cret"), r#"{"pending": 42, "inflight": 7}"#).await;
    assert_eq!((code, body["accepted"].as_u64()), (200, Some(2)));
    let (code, body) = post(&url, Some("push-s3cret"), r#"{"pending": 1, "inflight": "many"}"#).await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("`inflight` is \"many\", not a number"), "{body}");
    let big = format!("{{\"pending\": 1, \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(post(&url, Some("push-s3cret"), &big).await.0, 413);

    // 42 survived both refused bodies
    let got = push.read(&["pending".into()]).remove(0).unwrap();
    assert_eq!(got.value, 42.0);
    assert!(got.measured_at.is_some(), "a pushed value carries when it came");

    // every refusal is in the audit log with why; the accepted push is not
    let log = store.audit_log(100).unwrap();
    let line = |e: &moontide::store::AuditEntry| format!("{} {} {} {}", e.who, e.action, e.status, e.detail);
    let lines: Vec<String> = log.iter().map(line).collect();
    let has = |want: &str| lines.iter().filter(|l| l.contains(want)).count();
    // two wrong tokens within a minute: audited once (a flood must not crowd out the rest)
    assert_eq!(has("- POST /push/gateway 401 refused: missing or wrong bearer token"), 1, "{lines:#?}");
    assert_eq!(has("- POST /push/nope 404 refused: no push source named `nope`"), 1, "{lines:#?}");
    assert_eq!(
        has("push:gateway POST /push/gateway 400 refused: `inflight` is \"many\", not a number"),
        1,
        "{lines:#?}"
    );
    assert_eq!(has(" 200 "), 0, "{lines:#?}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap();
}

/// `moontide run` with a push source `gateway` (token "gw-token") on its own
/// port, a webhook target starting at `initial` replicas, and the policy
/// `llm` (`policy`: its settings) reading `pending_requests` as `pending`.
struct Running {
    child: std::process::Child,
    push_url: String,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(cloud: &TestServer, initial: u32, policy: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let t = token_file(&dir, "gw-token");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"

[sources.gateway]
type = "push"
token_file = "{t}"
max_age = "30s"

[targets.cloud]
type = "webhook"
url = "{cloud}"
initial = {initial}

[policies.llm]
target = "cloud"
max = 10
metrics = {{ pending = {{ source = "gateway", query = "pending_requests" }} }}
{policy}
"#,
            t = t.display(),
            cloud = cloud.url("/scale?n={count}"),
        );
        let path = dir.path().join("moontide.toml");
        std::fs::write(&path, config).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Running { child, push_url: format!("http://127.0.0.1:{port}/push/gateway"), _dir: dir }
    }

    /// Pushes `body`; the HTTP status, or None when the server does not answer (yet).
    async fn push(&self, body: &str) -> Option<u16> {
        let sent = reqwest::Client::new().post(&self.push_url).bearer_auth("gw-token").body(body.to_string()).send();
        sent.await.ok().map(|r| r.status().as_u16())
    }

    /// Stops it with SIGTERM; whether it exited cleanly.
    fn stop(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
        self.child.wait().unwrap()
    }
}

fn seen(cloud: &TestServer) -> Vec<Option<String>> {
    cloud.seen().iter().map(|r| r.query.clone()).collect()
}

#[tokio::test]
async fn moontide_run_receives_pushes_and_a_policy_scales_on_them() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let run = Running::start(
        &cloud,
        1,
        r#"interval = "200ms"
min = 1
checks = { queue = { strategy = "target_tracking", targets = [{ metric = "pending", target = 10, aggregate = "total" }] } }"#,
    );
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let sent = run.push(r#"{"pending_requests": 42}"#).await;
        if sent == Some(200) {
            break;
        }
        assert!(std::time::Instant::now() < end, "the server never took the push: {sent:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 42 pending at 10 per replica: 5
    let scaled = crate::common::wait_until(Duration::from_secs(30), || {
        cloud.seen().iter().any(|r| r.query.as_deref() == Some("n=5"))
    })
    .await;
    let status = run.stop();
    assert!(scaled, "never scaled to 5: {:?}", seen(&cloud));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_push_to_a_fleet_at_zero_wakes_its_policy_at_once() {
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    // an hour between ticks: only the push can make this policy act within the test
    let run = Running::start(
        &cloud,
        0,
        r#"interval = "1h"
min = 0
checks = { wake = { strategy = "target_tracking", targets = [{ metric = "pending", target = 10, aggregate = "total", activation = 0 }] } }"#,
    );
    // nothing pending: pushes of 0 until the server takes them, then long enough for the
    // first tick (made at the start) to have left the fleet at zero; a 0 wakes nothing
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while run.push(r#"{"pending_requests": 0}"#).await != Some(200) {
        assert!(std::time::Instant::now() < end, "the server never took a push");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        run.push(r#"{"pending_requests": 0}"#).await;
    }
    assert!(seen(&cloud).is_empty(), "scaled with nothing pending: {:?}", seen(&cloud));
    // a request waits: the gateway pushes its pending count every 200 ms, as one would
    let mut woke = false;
    while std::time::Instant::now() < end {
        run.push(r#"{"pending_requests": 3}"#).await;
        if cloud.seen().iter().any(|r| r.query.as_deref() == Some("n=1")) {
            woke = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = run.stop();
    assert!(woke, "the fleet at zero was not woken: {:?}", seen(&cloud));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_pushed_value_goes_stale_after_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let t = token_file(&dir, "tok");
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let config = format!(
        r#"
[sources.gateway]
type = "push"
token_file = "{t}"
max_age = "1s"

[targets.cloud]
type = "webhook"
url = "{cloud}"
initial = 4

[policies.llm]
target = "cloud"
interval = "1s"
min = 1
max = 10
metrics = {{ pending = {{ source = "gateway", query = "pending" }} }}
checks = {{ queue = {{ strategy = "target_tracking", targets = [{{ metric = "pending", target = 10, aggregate = "total" }}] }} }}
"#,
        t = t.display(),
        cloud = cloud.url("/scale"),
    );
    let (cdir, path) = crate::common::config_file(&config);
    let config = moontide::config::Config::load(&path).unwrap();
    let store = moontide::store::Store::open(&cdir.path().join("state")).unwrap();
    let mut engine =
        moontide::engine::Engine::build(&config, store, Arc::new(moontide::engine::SystemClock), false).unwrap();
    let push = engine.push_sources().remove("gateway").unwrap();
    let now = || {
        moontide_core::Timestamp::from_millis(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
        )
    };
    push.accept(Some("tok"), br#"{"pending": 5}"#, now()).unwrap();
    let d = engine.tick("llm").await.unwrap();
    assert_eq!(d.inputs[0].status, ReadingStatus::Ok);
    assert_eq!(d.desired, 1, "5 pending at 10 each: one replica");
    // no push since: the value is stale, and a stale reading never scales down
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let d = engine.tick("llm").await.unwrap();
    assert_eq!(d.inputs[0].status, ReadingStatus::Stale, "{:?}", d.inputs[0]);
    assert!(d.desired >= d.current, "{d:?}");
    engine.shutdown().await;
}
