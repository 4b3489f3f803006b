//! SIGKILL in the middle of an actuation: the real `moontide run` binary is
//! killed while a webhook request is in flight; on restart the pending
//! actuation is reconciled against the target's real count before anything
//! else. Real processes and HTTP servers on 127.0.0.1.

mod common;

use axum::extract::{Query, State};
use moontide::store::{Query as StoreQuery, Store};
use moontide_core::Outcome;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// A platform whose scale endpoint can hang, with a status endpoint telling its real count.
#[derive(Default)]
struct Platform {
    count: AtomicU32,
    /// Apply the count before hanging (the platform did it, the answer was lost).
    apply_then_hang: AtomicBool,
    /// Hang without applying.
    hang: AtomicBool,
    /// Hang without applying from the request after this many (0: never).
    hang_after: AtomicUsize,
    requests: AtomicUsize,
}

async fn platform(p: Arc<Platform>) -> (String, tokio::sync::oneshot::Sender<()>) {
    async fn scale(State(p): State<Arc<Platform>>, Query(q): Query<HashMap<String, u32>>) -> &'static str {
        let nth = p.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let n = q["n"];
        let after = p.hang_after.load(Ordering::SeqCst);
        if after > 0 && nth > after {
            tokio::time::sleep(Duration::from_secs(120)).await;
        } else if p.apply_then_hang.load(Ordering::SeqCst) {
            p.count.store(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(120)).await;
        } else if p.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        p.count.store(n, Ordering::SeqCst);
        "ok"
    }
    async fn status(State(p): State<Arc<Platform>>) -> axum::Json<serde_json::Value> {
        let n = p.count.load(Ordering::SeqCst);
        axum::Json(json!({ "replicas": n, "ready": n }))
    }
    async fn metrics() -> axum::Json<serde_json::Value> {
        axum::Json(json!({ "cpu": 95 }))
    }
    let app = axum::Router::new()
        .route("/scale", axum::routing::post(scale))
        .route("/status", axum::routing::get(status))
        .route("/m", axum::routing::get(metrics))
        .with_state(p);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    (format!("http://{addr}"), tx)
}

fn config(base: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[sources.app]
type = "http_json"
url = "{base}/m"

[targets.cloud]
type = "webhook"
url = "{base}/scale?n={{count}}"
status_url = "{base}/status"
status_pointer = "/replicas"
ready_pointer = "/ready"
timeout = "60s"
retries = 0

[policies.web]
target = "cloud"
interval = "1s"
min = 1
max = 10

[policies.web.metrics]
cpu = {{ source = "app", query = "/cpu" }}

[policies.web.checks.cpu]
strategy = "threshold"
step_up = 3
conditions = [{{ metric = "cpu", upper = 80 }}]

[policies.web.behaviour]
scale_up = {{ cooldown = "1h" }}
"#
    )
}

fn start(path: &Path, state: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["run", "--config"])
        .arg(path)
        .arg("--state-dir")
        .arg(state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn decisions(state: &Path) -> Vec<moontide_core::Decision> {
    let Ok(store) = Store::open_existing(state) else { return Vec::new() };
    let mut v =
        store.list(&StoreQuery { policy: Some("web".into()), limit: 100, ..Default::default() }).unwrap_or_default();
    v.reverse();
    v
}

/// Runs the scenario; `applied` says whether the platform applied the count before the kill.
async fn killed_mid_actuation(applied: bool) {
    let p = Arc::new(Platform::default());
    p.count.store(1, Ordering::SeqCst);
    if applied {
        p.apply_then_hang.store(true, Ordering::SeqCst);
    } else {
        p.hang.store(true, Ordering::SeqCst);
    }
    let (base, stop) = platform(p.clone()).await;
    let (dir, path) = common::config_file(&config(&base));
    let state = dir.path().join("state");

    let mut child = start(&path, &state);
    let p2 = p.clone();
    assert!(
        common::wait_until(Duration::from_secs(30), || p2.requests.load(Ordering::SeqCst) >= 1).await,
        "the first actuation never reached the platform"
    );
    child.kill().await.unwrap(); // SIGKILL, mid-request
    let pending = Store::open_existing(&state).unwrap().pending("web").unwrap();
    let pending = pending.expect("the actuation in flight is noted as pending in the store");
    assert_eq!((pending.from, pending.to), (1, 4));
    assert!(decisions(&state).iter().all(|d| d.actuation.is_none()), "no outcome was recorded before the kill");

    // the platform answers normally from now on
    p.apply_then_hang.store(false, Ordering::SeqCst);
    p.hang.store(false, Ordering::SeqCst);
    let requests_before = p.requests.load(Ordering::SeqCst);
    let mut child = start(&path, &state);
    let st = state.clone();
    assert!(
        common::wait_until(Duration::from_secs(30), || decisions(&st).iter().any(|d| d.reason.contains("reconciled")))
            .await,
        "no reconciliation was recorded"
    );
    // the note is cleared just after the outcome is recorded (record first: a crash in between is harmless)
    let (st, key) = (state.clone(), pending.key.clone());
    let still = move || Store::open_existing(&st).unwrap().pending("web").unwrap().is_some_and(|p| p.key == key);
    assert!(common::wait_until(Duration::from_secs(10), || !still()).await, "the reconciled note was never cleared");
    child.kill().await.unwrap();
    let all = decisions(&state);
    let first = &all[0];
    assert!(first.reason.contains("reconciled after a restart"), "the reconciliation comes first: {}", first.reason);
    if applied {
        assert_eq!(first.outcome, Outcome::Scaled { from: 1, to: 4 }, "{}", first.reason);
        // the 1 h scale-up cooldown counts the reconciled actuation: no new request
        assert_eq!(p.requests.load(Ordering::SeqCst), requests_before, "{all:#?}");
    } else {
        match &first.outcome {
            Outcome::Failed { from: 1, to: 4, reached: Some(1), error } => assert!(error.contains("cut short")),
            other => panic!("{other:?}: {}", first.reason),
        }
    }
    // a later actuation may be in flight at the second kill; the first one's note is gone
    let left = Store::open_existing(&state).unwrap().pending("web").unwrap();
    assert!(left.as_ref().is_none_or(|p| p.key != pending.key), "the reconciled note is cleared: {left:?}");
    let _ = stop.send(());
}

#[tokio::test]
async fn an_actuation_that_reached_the_platform_is_recorded_after_the_crash() {
    killed_mid_actuation(true).await;
}

#[tokio::test]
async fn an_actuation_that_did_not_reach_the_platform_is_recorded_as_cut_short() {
    killed_mid_actuation(false).await;
}

/// A webhook without a status URL counts for itself: after the kill it must
/// count from the last count it set (4), not from its `initial` (1), and it
/// must not pass its own count off as the platform's word.
#[tokio::test]
async fn a_target_that_counts_for_itself_resumes_from_its_last_count() {
    let p = Arc::new(Platform::default());
    p.count.store(1, Ordering::SeqCst);
    let (base, stop) = platform(p.clone()).await;
    // no status URL, no cooldown: 1 → 4 lands, then the next one, from 4, hangs and is killed
    let text = config(&base)
        .replace(
            &format!("status_url = \"{base}/status\"\nstatus_pointer = \"/replicas\"\nready_pointer = \"/ready\"\n"),
            "initial = 1\n",
        )
        .replace("scale_up = { cooldown = \"1h\" }", "scale_up = { cooldown = \"0s\", stabilization = \"0s\" }");
    assert!(text.contains("initial = 1") && !text.contains("status_url"), "{text}");
    let (dir, path) = common::config_file(&text);
    let state = dir.path().join("state");

    p.hang_after.store(1, Ordering::SeqCst);
    let mut child = start(&path, &state);
    let st = state.clone();
    assert!(
        common::wait_until(Duration::from_secs(30), || Store::open_existing(&st)
            .ok()
            .and_then(|s| s.pending("web").ok().flatten())
            .is_some_and(|p| p.from == 4))
        .await,
        "no second actuation from 4 was started"
    );
    child.kill().await.unwrap();
    p.hang_after.store(0, Ordering::SeqCst);

    let mut child = start(&path, &state);
    let st = state.clone();
    assert!(
        common::wait_until(Duration::from_secs(30), || decisions(&st).iter().any(|d| d.reason.contains("reconciled")))
            .await,
        "no reconciliation was recorded"
    );
    child.kill().await.unwrap();
    let all = decisions(&state);
    let r = all.iter().find(|d| d.reason.contains("reconciled")).unwrap();
    assert_eq!(r.current, 4, "counts from the last count it set, not `initial`: {}", r.reason);
    match &r.outcome {
        // (to 5, not 7: the default rate limit allows 4 more than the count 15 s before)
        Outcome::Failed { from: 4, to, reached: None, error } if *to > 4 => {
            assert!(error.contains("unknown"), "{error}")
        }
        other => panic!("{other:?}: {}", r.reason),
    }
    let _ = stop.send(());
}
