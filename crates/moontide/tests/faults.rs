//! Fault injection: a metrics server that delays, drops, answers 500/429,
//! garbage or stale data on command, and targets that fail. The engine must
//! never scale down on bad data, must fall back after N failed ticks, hold back
//! a lone implausible reading, back off and open a circuit per target without
//! touching other policies, and honour budgets. Virtual time (a manual clock);
//! real HTTP over 127.0.0.1.

mod common;

use common::{TestServer, text};
use moontide::config::Config;
use moontide::engine::Engine;
use moontide::store::Store;
use moontide_core::{Clock, Decision, GuardKind, ManualClock, Outcome, ReadingStatus, Timestamp};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the metrics server does with the next request.
#[derive(Clone, Debug)]
enum Fault {
    /// `{"cpu": v, "ts": now}`.
    Value(f64),
    /// Waits this long, then answers a value.
    Delay(Duration),
    /// An empty answer with this status (429 carries Retry-After).
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Closes the connection without a word.
    Drop,
    /// A value measured an hour ago.
    Stale(f64),
}

/// A raw HTTP/1.1 server on 127.0.0.1 whose behaviour is switched by the test.
struct FaultServer {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    async fn start(clock: Arc<ManualClock>) -> FaultServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::Value(50.0)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (f, h) = (fault.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (fault, clock) = (f.lock().unwrap().clone(), clock.clone());
                h.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
                    let now = clock.now().as_millis() / 1000;
                    let reply = |status: &str, body: String, extra: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let answer = match fault {
                        Fault::Value(v) => reply("200 OK", format!(r#"{{"cpu": {v}, "ts": {now}}}"#), ""),
                        Fault::Delay(d) => {
                            tokio::time::sleep(d).await;
                            reply("200 OK", format!(r#"{{"cpu": 1, "ts": {now}}}"#), "")
                        }
                        Fault::Status(429) => reply("429 Too Many Requests", String::new(), "Retry-After: 1\r\n"),
                        Fault::Status(c) => reply(&format!("{c} Fault"), String::new(), ""),
                        Fault::Garbage => reply("200 OK", "\u{1}<html>oops".into(), ""),
                        Fault::Drop => return,
                        Fault::Stale(v) => reply("200 OK", format!(r#"{{"cpu": {v}, "ts": {}}}"#, now - 3600), ""),
                    };
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FaultServer { addr, fault, hits, task }
    }

    fn set(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    fn url(&self) -> String {
        format!("http://{}/m", self.addr)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn source(url: &str) -> String {
    format!(
        "[sources.app]\ntype = \"http_json\"\nurl = \"{url}\"\ntimeout = \"300ms\"\ntime_pointer = \"/ts\"\nmax_age = \"1m\"\n\n"
    )
}

fn policy(name: &str, target: &str, extra: &str) -> String {
    format!(
        r#"
[policies.{name}]
target = "{target}"
interval = "10s"
min = 1
max = 20

[policies.{name}.metrics]
cpu = {{ source = "app", query = "/cpu" }}

[policies.{name}.checks.cpu]
strategy = "threshold"
conditions = [{{ metric = "cpu", upper = 80, lower = 20 }}]

[policies.{name}.behaviour]
scale_down = {{ stabilization = "0s" }}
{extra}
"#
    )
}

fn webhook(name: &str, url: &str, initial: u32) -> String {
    format!("[targets.{name}]\ntype = \"webhook\"\nurl = \"{url}\"\ninitial = {initial}\nretries = 0\n\n")
}

fn engine(text: &str, clock: &Arc<ManualClock>) -> (Engine, tempfile::TempDir) {
    let (dir, path) = common::config_file(text);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir.path().join("state")).unwrap();
    (Engine::build(&config, store, clock.clone(), false).unwrap(), dir)
}

async fn tick(e: &mut Engine, clock: &ManualClock, policy: &str) -> Decision {
    clock.advance(Duration::from_secs(10));
    e.tick(policy).await.unwrap()
}

fn metric_line(name: &str, labels: &str) -> Option<f64> {
    let text = moontide::metrics::get().render();
    let prefix = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn bad_data_never_scales_down_and_falls_back_after_n_failed_ticks() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let app = FaultServer::start(clock.clone()).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let text = source(&app.url())
        + &webhook("cloud", &cloud.url("/scale?n={count}"), 4)
        + &policy("faulty", "cloud", "on_error = { fallback = 6, after = 3 }");
    let (mut e, _dir) = engine(&text, &clock);

    // good low data does scale down: the faults below are what stops it
    app.set(Fault::Value(5.0));
    let d = tick(&mut e, &clock, "faulty").await;
    assert_eq!(d.outcome, Outcome::Scaled { from: 4, to: 3 }, "{}", d.reason);

    let faults = [
        (Fault::Delay(Duration::from_secs(2)), "timed out"),
        (Fault::Status(500), "500"),
        (Fault::Status(429), "429"),
        (Fault::Garbage, "JSON"),
        (Fault::Drop, ""),
        (Fault::Stale(5.0), "older than max_age"),
    ];
    let mut seen = Vec::new();
    for (i, (fault, says)) in faults.into_iter().enumerate() {
        app.set(fault.clone());
        let d = tick(&mut e, &clock, "faulty").await;
        let input = &d.inputs[0];
        assert_ne!(input.status, ReadingStatus::Ok, "{fault:?}: {input:?}");
        let err = input.error.as_deref().unwrap_or_default();
        assert!(err.contains(says), "{fault:?}: the error says what happened: {err}");
        assert!(d.desired >= d.current, "{fault:?}: scaled down on bad data: {}", d.reason);
        let on_error = d.guards.iter().find(|g| g.guard == GuardKind::OnError);
        assert!(on_error.is_some(), "{fault:?}: the on_error guard is named: {}", d.reason);
        if i == 2 {
            // the third failed tick in a row brings the fallback
            assert_eq!(d.outcome, Outcome::Scaled { from: 3, to: 6 }, "{}", d.reason);
            assert!(on_error.unwrap().note.contains("fallback to 6"));
        }
        seen.push(d.outcome.kind());
    }
    assert_eq!(seen, ["hold", "hold", "scaled", "hold", "hold", "hold"]);
    let failing = metric_line("moontide_reading_failing_ticks", r#"policy="faulty",metric="cpu""#);
    assert_eq!(failing, Some(6.0), "the alert metric counts the failed ticks in a row");

    // good data again: the alert clears and scale-down resumes
    app.set(Fault::Value(5.0));
    let d = tick(&mut e, &clock, "faulty").await;
    assert_eq!(d.outcome, Outcome::Scaled { from: 6, to: 5 }, "{}", d.reason);
    assert_eq!(metric_line("moontide_reading_failing_ticks", r#"policy="faulty",metric="cpu""#), Some(0.0));
    assert!(app.hits.load(Ordering::SeqCst) >= 8);
    e.shutdown().await;
}

#[tokio::test]
async fn one_implausible_reading_is_held_back_until_confirmed() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let app = FaultServer::start(clock.clone()).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    // with a fallback: a held reading fails the check, and that must not set it off
    let sanity = "sanity = { factor = 10 }\non_error = { fallback = 12 }";
    let text =
        source(&app.url()) + &webhook("cloud", &cloud.url("/scale?n={count}"), 4) + &policy("spiky", "cloud", sanity);
    // a target-tracking check would jump far on a spike; use one on the raw value
    let text = text.replace(
        "strategy = \"threshold\"\nconditions = [{ metric = \"cpu\", upper = 80, lower = 20 }]",
        "strategy = \"target_tracking\"\ntargets = [{ metric = \"cpu\", target = 50, aggregate = \"total\" }]",
    );
    let (mut e, _dir) = engine(&text, &clock);
    app.set(Fault::Value(40.0));
    for _ in 0..3 {
        let d = tick(&mut e, &clock, "spiky").await;
        assert!(d.desired <= 4, "{}", d.reason);
    }
    let before = cloud.seen().len();

    // one spoofed sample, 100× the usual
    app.set(Fault::Value(4000.0));
    let d = tick(&mut e, &clock, "spiky").await;
    assert_eq!(d.inputs[0].status, ReadingStatus::Held, "{:?}", d.inputs);
    assert!(d.inputs[0].error.as_deref().unwrap().contains("held back"), "{:?}", d.inputs[0]);
    assert!(d.desired <= d.current, "no scale-up on a lone spike: {}", d.reason);
    assert_eq!(cloud.seen().len(), before, "the target was not called");

    // back to normal: the spike is dropped
    app.set(Fault::Value(40.0));
    let d = tick(&mut e, &clock, "spiky").await;
    assert_eq!(d.inputs[0].status, ReadingStatus::Ok);
    assert!(d.desired <= 4, "{}", d.reason);

    // a real jump: held once, confirmed by the next reading, then acted on
    app.set(Fault::Value(4000.0));
    assert_eq!(tick(&mut e, &clock, "spiky").await.inputs[0].status, ReadingStatus::Held);
    app.set(Fault::Value(3800.0));
    let d = tick(&mut e, &clock, "spiky").await;
    assert_eq!(d.inputs[0].status, ReadingStatus::Ok);
    assert!(d.inputs[0].error.as_deref().unwrap().contains("confirms"), "{:?}", d.inputs[0]);
    assert!(d.desired > d.current, "a confirmed jump scales up: {}", d.reason);
    let held = metric_line("moontide_readings_held_total", r#"policy="spiky",metric="cpu""#);
    assert_eq!(held, Some(2.0));
    e.shutdown().await;
}

#[tokio::test]
async fn a_failing_target_backs_off_and_opens_its_circuit_while_others_carry_on() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let app = FaultServer::start(clock.clone()).await;
    app.set(Fault::Value(95.0));
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    let cloud =
        TestServer::start(
            move |s, _| {
                if s.path == "/a" && b.load(Ordering::SeqCst) { text(500, "down") } else { text(200, "ok") }
            },
        )
        .await;
    let text = source(&app.url())
        + "[breaker]\nbackoff = \"10s\"\nmax_backoff = \"40s\"\nopen_after = 3\nhalf_open_after = \"60s\"\n\n"
        + &webhook("ta", &cloud.url("/a"), 1)
        + &webhook("tb", &cloud.url("/b"), 1)
        + &policy("pa", "ta", "")
        + &policy("pb", "tb", "");
    let (mut e, _dir) = engine(&text, &clock);
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        clock.advance(Duration::from_secs(10));
        let ds = e.tick_all().await;
        let (a, b) = (&ds[0], &ds[1]);
        assert_eq!((a.policy.as_str(), b.policy.as_str()), ("pa", "pb"));
        assert!(matches!(b.outcome, Outcome::Scaled { .. }), "the healthy target is untouched: {}", b.reason);
        let word = match &a.outcome {
            Outcome::Failed { .. } => "failed",
            Outcome::Deferred { reason, .. } if reason.contains("circuit open") => "open",
            Outcome::Deferred { reason, .. } if reason.contains("backing off") => "backoff",
            other => panic!("unexpected {other:?}"),
        };
        outcomes.push(word);
        if outcomes.len() == 5 {
            assert_eq!(metric_line("moontide_circuit_open", r#"target="ta""#), Some(1.0));
        }
    }
    // t10 fail, t20 retry after 10 s, fail; t30 waits (20 s); t40 fails a third time: open for 60 s
    assert_eq!(outcomes, ["failed", "failed", "backoff", "failed", "open", "open", "open", "open", "open", "failed"]);
    assert_eq!(cloud.seen_on("/a").len(), 4, "one request per attempt, none while backing off or open");

    // the target recovers: the next half-open trial closes the circuit
    broken.store(false, Ordering::SeqCst);
    for _ in 0..6 {
        clock.advance(Duration::from_secs(10));
        e.tick_all().await;
    }
    let d = tick(&mut e, &clock, "pa").await;
    assert!(matches!(d.outcome, Outcome::Scaled { .. }), "{}", d.reason);
    assert_eq!(metric_line("moontide_circuit_open", r#"target="ta""#), Some(0.0));
    e.shutdown().await;
}

#[tokio::test]
async fn a_global_budget_caps_scale_up_across_policies_and_says_so() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let app = FaultServer::start(clock.clone()).await;
    app.set(Fault::Value(95.0));
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let step = "step_up = 4\nconditions";
    let text = (source(&app.url())
        + "[budget]\nmax_cost_per_hour = 10\nprice_per_replica_hour = 1\n\n"
        + &webhook("tx", &cloud.url("/x"), 1)
        + &webhook("ty", &cloud.url("/y"), 1)
        + &policy("bx", "tx", "")
        + &policy("by", "ty", "budget = { price_per_replica_hour = 2 }"))
        .replace("conditions", step);
    let (mut e, _dir) = engine(&text, &clock);
    let mut last = Vec::new();
    for _ in 0..4 {
        clock.advance(Duration::from_secs(30));
        last = e.tick_all().await;
    }
    let (x, y) = (&last[0], &last[1]);
    // 10 per hour: x's replicas cost 1, y's cost 2
    let cost = x.desired as f64 + 2.0 * y.desired as f64;
    assert!(cost <= 10.0, "x {} y {}", x.desired, y.desired);
    let capped: Vec<&Decision> =
        last.iter().filter(|d| d.guards.iter().any(|g| g.guard == GuardKind::Budget)).collect();
    assert!(!capped.is_empty(), "the budget bit: {} / {}", x.reason, y.reason);
    let note = &capped[0].guards.iter().find(|g| g.guard == GuardKind::Budget).unwrap().note;
    assert!(note.contains("global budget: 10/h"), "{note}");
    assert!(metric_line("moontide_budget_capped_total", &format!("policy=\"{}\"", capped[0].policy)).unwrap() >= 1.0);
    e.shutdown().await;
}
