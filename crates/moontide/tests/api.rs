//! The HTTP API end to end: a real engine ticking against real HTTP servers
//! on 127.0.0.1, the API served on an ephemeral port, every endpoint tried
//! with no token, an unknown token, a viewer and an operator.

mod common;

use common::{TestServer, json, text};
use moontide::server::auth::hash;
use serde_json::{Value, json as j};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const OPERATOR: &str = "mt_operator-token-for-tests-0000000000000000000";
const VIEWER: &str = "mt_viewer-token-for-tests-00000000000000000000";
const EXPIRED: &str = "mt_expired-token-for-tests-0000000000000000000";

struct Running {
    base: String,
    cloud: TestServer,
    load: Arc<AtomicU32>,
    served: common::Served,
    _metrics: TestServer,
}

impl Running {
    async fn start() -> Running {
        // the work to do, in fully busy replicas: CPU is that work spread over the replicas running
        let load = Arc::new(AtomicU32::new(1));
        let count = Arc::new(AtomicU32::new(2));
        let (l, c) = (load.clone(), count.clone());
        let metrics = TestServer::start(move |_, _| {
            let cpu = (100 * l.load(Ordering::SeqCst) / c.load(Ordering::SeqCst).max(1)).min(100);
            json(200, j!({ "cpu": cpu }))
        })
        .await;
        let n = count.clone();
        let cloud = TestServer::start(move |req, _| {
            if req.method == "GET" {
                return json(200, j!({"replicas": n.load(Ordering::SeqCst)}));
            }
            let v: u32 = req.query.as_deref().and_then(|q| q.strip_prefix("n=")).unwrap().parse().unwrap();
            n.store(v, Ordering::SeqCst);
            text(200, "ok")
        })
        .await;
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
tokens = [
  {{ name = "olga", role = "operator", sha256 = "{op}" }},
  {{ name = "vic", role = "viewer", sha256 = "{vw}" }},
  {{ name = "old", role = "operator", sha256 = "{ex}", expires = "2020-01-01T00:00:00Z" }},
]

[sources.app]
type = "http_json"
url = "{metrics}"

[targets.cloud]
type = "webhook"
url = "{cloud}"
status_url = "{status}"

[policies.web]
target = "cloud"
interval = "200ms"
min = 1
max = 10
metrics = {{ cpu = {{ source = "app", query = "/cpu" }} }}
checks = {{ cpu = {{ strategy = "target_tracking", targets = [{{ metric = "cpu", target = 50 }}] }} }}
behaviour = {{ scale_down = {{ stabilization = "0s" }} }}
"#,
            op = hash(OPERATOR),
            vw = hash(VIEWER),
            ex = hash(EXPIRED),
            metrics = metrics.url("/m"),
            cloud = cloud.url("/scale?n={count}"),
            status = cloud.url("/status"),
        );
        let served = common::Served::start(&config).await;
        Running { base: format!("http://{}", served.addr), cloud, load, served, _metrics: metrics }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    fn scaled_to(&self) -> Vec<String> {
        self.cloud.seen().iter().filter(|r| r.method != "GET").filter_map(|r| r.query.clone()).collect()
    }

    /// Waits (at most 20 s) for a decision of `web` whose reason contains `needle`.
    async fn decision_saying(&self, needle: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self.call("GET", "/api/v1/policies/web/decisions?limit=5", Some(VIEWER), None).await;
            if let Some(d) = v["decisions"]
                .as_array()
                .and_then(|l| l.iter().find(|d| d["reason"].as_str().unwrap_or("").contains(needle)))
            {
                return d.clone();
            }
            assert!(Instant::now() < end, "no decision saying `{needle}`: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

#[tokio::test]
async fn every_endpoint_answers_401_403_or_200_as_the_token_allows() {
    let r = Running::start().await;
    let reads = ["/api/v1/policies", "/api/v1/policies/web", "/api/v1/policies/web/decisions"];
    let changes: [(&str, &str, Option<&str>); 5] = [
        ("POST", "/api/v1/policies/web/pause", Some(r#"{"reason": "test"}"#)),
        ("POST", "/api/v1/policies/web/resume", None),
        ("POST", "/api/v1/policies/web/override", Some(r#"{"replicas": 3, "for": "1m", "reason": "test"}"#)),
        ("DELETE", "/api/v1/policies/web/override", None),
        ("POST", "/api/v1/policies/web/dry-run", Some(r#"{"enabled": null}"#)),
    ];
    for p in reads {
        assert_eq!(r.call("GET", p, None, None).await.0, 401, "{p} without a token");
        assert_eq!(r.call("GET", p, Some("mt_forged"), None).await.0, 401, "{p} with a forged token");
        assert_eq!(r.call("GET", p, Some(VIEWER), None).await.0, 200, "{p} as viewer");
        assert_eq!(r.call("GET", p, Some(OPERATOR), None).await.0, 200, "{p} as operator");
    }
    for (m, p, b) in changes {
        assert_eq!(r.call(m, p, None, b).await.0, 401, "{m} {p} without a token");
        assert_eq!(
            r.call(m, p, Some(&OPERATOR[..OPERATOR.len() - 1]), b).await.0,
            401,
            "{m} {p} with a near-miss token"
        );
        let (code, v) = r.call(m, p, Some(EXPIRED), b).await;
        assert_eq!(code, 401, "{m} {p} with an expired token");
        assert!(v["error"].as_str().unwrap().contains("`old` has expired"), "{v}");
        let (code, v) = r.call(m, p, Some(VIEWER), b).await;
        assert_eq!(code, 403, "{m} {p} as viewer");
        assert!(v["error"].as_str().unwrap().contains("viewer role"), "{v}");
    }
    // none of those refused calls changed anything
    let (_, v) = r.call("GET", "/api/v1/policies/web", Some(VIEWER), None).await;
    assert!(v["paused"].is_null() && v["hold"].is_null(), "{v}");
    for (m, p, b) in changes {
        assert_eq!(r.call(m, p, Some(OPERATOR), b).await.0, 200, "{m} {p} as operator");
    }
    assert_eq!(r.call("GET", "/api/v1/audit", Some(VIEWER), None).await.0, 403);
    let (code, v) = r.call("GET", "/api/v1/audit?limit=1000", Some(OPERATOR), None).await;
    assert_eq!(code, 200);
    let entries = v["entries"].as_array().unwrap();
    let who = |name: &str, status: u64| entries.iter().filter(|e| e["who"] == name && e["status"] == status).count();
    assert_eq!(who("-", 401), 3 * 2 + 5 * 2, "every unknown caller is recorded");
    assert_eq!(who("vic", 403), 5 + 1);
    assert_eq!(who("old", 401), 5, "an expired token is named in the audit log");
    assert_eq!(who("olga", 200), 5);
    let text = v.to_string();
    assert!(!text.contains(OPERATOR) && !text.contains(VIEWER), "the audit log never holds a token");
    // the OpenAPI document
    let (code, doc) = r.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!((code, doc["openapi"].as_str()), (200, Some("3.0.3")));
    r.stop().await;
}

#[tokio::test]
async fn bad_requests_get_a_4xx_that_says_what_is_wrong() {
    let r = Running::start().await;
    let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024));
    for (m, p, b, code, words) in [
        ("GET", "/api/v1/policies/nope", None, 404, "no policy named `nope` (policies: web)"),
        // what axum answers itself is JSON too
        ("GET", "/api/v1/nowhere", None, 404, "no such path: the API's paths are listed in /api/v1/openapi.json"),
        ("DELETE", "/api/v1/policies", None, 405, "method not allowed here"),
        ("POST", "/api/v1/policies/web/pause", Some(huge.as_str()), 413, "over the limit of 64 KiB"),
        ("POST", "/api/v1/policies/nope/pause", Some("{}"), 404, "no policy named `nope`"),
        ("POST", "/api/v1/policies/web/pause", Some("{\"reason\": "), 400, "malformed JSON body"),
        ("POST", "/api/v1/policies/web/pause", Some("{\"why\": \"x\"}"), 400, "unknown field `why`"),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 3, "for": "1m"}"#),
            400,
            "missing field `reason`",
        ),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 3, "for": "1m", "reason": " "}"#),
            400,
            "say why",
        ),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 30, "for": "1m", "reason": "x"}"#),
            400,
            "outside the policy's bounds 1..=10",
        ),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 3, "reason": "x"}"#),
            400,
            "give either `until`",
        ),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 3, "until": "2001-01-01T00:00:00Z", "reason": "x"}"#),
            400,
            "not in the future",
        ),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 3, "for": "30d", "reason": "x"}"#),
            400,
            "at most 7 days",
        ),
        ("POST", "/api/v1/policies/web/dry-run", Some(r#"{"enabled": "yes"}"#), 400, "malformed JSON body"),
        ("POST", "/api/v1/policies/web/dry-run", None, 400, "missing field `enabled`"),
        ("POST", "/api/v1/policies/web/dry-run", Some("{}"), 400, "missing field `enabled`"),
        (
            "POST",
            "/api/v1/policies/web/override",
            Some(r#"{"replicas": 3, "for": "0s", "reason": "x"}"#),
            400,
            "for: the hold would end at",
        ),
        ("GET", "/api/v1/policies/web/decisions?limit=0", None, 400, "limit"),
        ("GET", "/api/v1/policies/web/decisions?outcome=won", None, 400, "not one of hold, scaled"),
        ("GET", "/api/v1/policies/web/decisions?since=yesterday", None, 400, "not an RFC 3339 time"),
        ("GET", "/api/v1/policies/web/decisions?colour=red", None, 400, "unknown parameter `colour`"),
        ("GET", "/api/v1/audit?limit=abc", None, 400, "limit: `abc` is not a number from 1 to"),
        ("GET", "/api/v1/audit?colour=red", None, 400, "unknown parameter `colour` (limit)"),
        ("GET", "/api/v1/events?foo=1", None, 400, "unknown parameter `foo` (policy)"),
    ] {
        let (got, v) = r.call(m, p, Some(OPERATOR), b).await;
        assert_eq!(got, code, "{m} {p} {b:?}: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains(words), "{m} {p} {b:?}: {v}");
    }
    let (_, v) = r.call("GET", "/api/v1/policies/web", Some(VIEWER), None).await;
    assert!(v["paused"].is_null() && v["hold"].is_null(), "no bad request changed anything: {v}");
    // a refused change is audited with what the caller was told
    let (_, v) = r.call("GET", "/api/v1/audit", Some(OPERATOR), None).await;
    let audited = v["entries"].as_array().unwrap().iter().any(|e| {
        e["status"] == 400
            && e["detail"].as_str().unwrap_or("").contains("refused: reason: say why, in 1 to 500 characters")
    });
    assert!(audited, "{v}");
    r.stop().await;
}

#[tokio::test]
async fn pause_override_and_dry_run_act_on_the_next_tick_and_are_recorded() {
    let r = Running::start().await;
    r.decision_saying("hold at 2").await;

    // paused: twice the work (100 % on 2: the check wants 4), the count stays
    r.call("POST", "/api/v1/policies/web/pause", Some(OPERATOR), Some(r#"{"reason": "maintenance"}"#)).await;
    r.load.store(2, Ordering::SeqCst);
    let d = r.decision_saying("paused by olga").await;
    assert_eq!((d["current"].as_u64(), d["desired"].as_u64()), (Some(2), Some(2)), "{d}");
    assert!(d["reason"].as_str().unwrap().contains("maintenance"), "{d}");
    assert!(r.scaled_to().is_empty(), "{:?}", r.scaled_to());
    r.call("POST", "/api/v1/policies/web/resume", Some(OPERATOR), None).await;
    r.decision_saying("scaled 2 → 4").await;
    r.decision_saying("hold at 4").await;

    // dry-run: decided, not done
    r.call("POST", "/api/v1/policies/web/dry-run", Some(OPERATOR), Some(r#"{"enabled": true}"#)).await;
    r.load.store(1, Ordering::SeqCst);
    let d = r.decision_saying("dry-run: would scale 4 → 2").await;
    assert_eq!(d["outcome"]["kind"], "dry_run");
    assert_eq!(r.scaled_to(), ["n=4"]);
    r.call("POST", "/api/v1/policies/web/dry-run", Some(OPERATOR), Some(r#"{"enabled": false}"#)).await;
    r.decision_saying("scaled 4 → 2").await;

    // an override holds its count, recorded with who and why, until it is due
    let (code, v) = r
        .call(
            "POST",
            "/api/v1/policies/web/override",
            Some(OPERATOR),
            Some(r#"{"replicas": 7, "for": "2s", "reason": "launch day"}"#),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["hold"]["replicas"], 7);
    let d = r.decision_saying("held at 7 by olga").await;
    assert!(d["reason"].as_str().unwrap().contains("launch day"), "{d}");
    assert!(r.scaled_to().contains(&"n=7".to_string()), "{:?}", r.scaled_to());
    r.decision_saying("hold at 7 ended").await;
    r.decision_saying("scaled 7 → 2").await;
    let (_, v) = r.call("GET", "/api/v1/policies/web", Some(VIEWER), None).await;
    assert!(v["hold"].is_null(), "the hold expired: {v}");
    r.stop().await;
}

#[tokio::test]
async fn what_operators_set_outlives_a_restart() {
    let r = Running::start().await;
    r.decision_saying("hold at 2").await;
    for (path, body) in [
        ("pause", r#"{"reason": "maintenance"}"#),
        ("override", r#"{"replicas": 3, "for": "1h", "reason": "launch day"}"#),
        ("dry-run", r#"{"enabled": true}"#),
    ] {
        let (code, v) = r.call("POST", &format!("/api/v1/policies/web/{path}"), Some(OPERATOR), Some(body)).await;
        assert_eq!(code, 200, "{path}: {v}");
        assert!(!v["done"].as_str().unwrap().contains("not saved"), "{v}");
    }
    let common::Served { dir, stop, engine, .. } = r.served;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), engine).await.unwrap().unwrap();

    // built again from the same config and store, as a restart or a reload does
    let config = moontide::config::Config::load(&dir.path().join("moontide.toml")).unwrap();
    let store = moontide::store::Store::open(&dir.path().join("state")).unwrap();
    let engine =
        moontide::engine::Engine::build(&config, store, Arc::new(moontide::engine::SystemClock), false).unwrap();
    let control = &engine.controls()[0];
    // (the dry-run set last: the store holds all three, each change saved in turn)
    let st = control.operator();
    assert_eq!(st.paused.as_ref().map(|p| (p.by.as_str(), p.reason.as_str())), Some(("olga", "maintenance")));
    assert_eq!(st.hold.as_ref().map(|h| (h.replicas, h.reason.as_str())), Some((3, "launch day")));
    assert_eq!(st.dry_run, Some(true));
    assert!(control.dry_run());
    drop(engine);

    // `run --dry-run` wins over an operator's "off" saved from before
    let store = moontide::store::Store::open(&dir.path().join("state")).unwrap();
    let off = moontide::engine::control::OperatorState { dry_run: Some(false), ..Default::default() };
    off.save(&store, "web", moontide_core::Timestamp::from_secs(1_700_000_000)).unwrap();
    let engine =
        moontide::engine::Engine::build(&config, store, Arc::new(moontide::engine::SystemClock), true).unwrap();
    let control = &engine.controls()[0];
    assert_eq!(control.operator().dry_run, Some(false));
    assert!(control.dry_run(), "--dry-run keeps the policy in dry-run");
}

#[tokio::test]
async fn history_pages_and_the_event_stream_delivers_decisions() {
    let r = Running::start().await;
    // the stream: the first decision event arrives
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/events?policy=web", r.base))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut resp = resp;
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(line) = seen.lines().find(|l| l.starts_with("data: ")) {
                return serde_json::from_str::<Value>(&line[6..]).unwrap();
            }
        }
        panic!("the stream ended")
    })
    .await
    .expect("a decision event within 20 s");
    assert_eq!(got["policy"], "web");
    assert!(seen.contains("event: decision"));
    let (code, _) = r.call("GET", "/api/v1/events?policy=nope", Some(VIEWER), None).await;
    assert_eq!(code, 404);

    // paging: wait for at least 5 decisions, then walk them 2 at a time
    let end = Instant::now() + Duration::from_secs(20);
    while r
        .served
        .store
        .list(&moontide::store::Query { policy: Some("web".into()), limit: 10, ..Default::default() })
        .unwrap()
        .len()
        < 5
    {
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, first) = r.call("GET", "/api/v1/policies/web/decisions?limit=2", Some(VIEWER), None).await;
    let page1 = first["decisions"].as_array().unwrap().clone();
    assert_eq!(page1.len(), 2);
    let next = first["next_until"].as_i64().expect("a next page");
    let (_, second) =
        r.call("GET", &format!("/api/v1/policies/web/decisions?limit=2&until={next}"), Some(VIEWER), None).await;
    let page2 = second["decisions"].as_array().unwrap();
    assert!(page2[0]["at"].as_i64().unwrap() < page1[1]["at"].as_i64().unwrap() + 1);
    assert!(page1.iter().all(|d| !page2.contains(d)), "pages do not overlap");
    let (_, held) = r.call("GET", "/api/v1/policies/web/decisions?outcome=scaled", Some(VIEWER), None).await;
    assert!(held["decisions"].as_array().unwrap().iter().all(|d| d["outcome"]["kind"] == "scaled"));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_explain_print_what_the_api_says() {
    let r = Running::start().await;
    r.decision_saying("hold at 2").await;
    let moontide = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
            .args(args)
            .env_remove("MOONTIDE_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = moontide(&["status", "--url", &r.base, "--token", VIEWER]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web") && out.contains("running") && out.contains("hold at 2"), "{out}");
    // the address as the daemon logs it, with /api/v1
    let (code, again, err) = moontide(&["status", "--url", &format!("{}/api/v1/", r.base), "--token", VIEWER]);
    assert_eq!(code, Some(0), "{err}");
    assert!(again.contains("hold at 2"), "{again}");
    let (code, out, err) = moontide(&["explain", "web", "--url", &r.base, "--token", VIEWER]);
    assert_eq!(code, Some(0), "{err}");
    for part in ["readings", "cpu", "checks", "target_tracking", "outcome: hold at 2"] {
        assert!(out.contains(part), "`{part}` missing:\n{out}");
    }
    // its time as `history` and `--at` write it: RFC 3339, not Unix seconds
    let head = out.lines().next().unwrap_or_default();
    assert!(head.starts_with("web at 20") && head.contains("Z: 2 replicas"), "{head}");
    let (code, _, err) = moontide(&["status", "--url", &r.base, "--token", "mt_wrong"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("HTTP 401"), "{err}");
    let (code, _, err) = moontide(&["explain", "nope", "--url", &r.base, "--token", VIEWER]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no policy named `nope`"), "{err}");
    let (code, _, err) =
        moontide(&["explain", "web", "--url", &r.base, "--token", VIEWER, "--at", "2001-01-01T00:00:00Z"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no decision of `web` at or before"), "{err}");
    r.stop().await;
}

#[test]
fn token_new_prints_a_token_once_and_its_config_lines() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["token", "new", "alice", "--role", "operator"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(token.starts_with("mt_") && token.len() == 46, "{token}");
    assert!(err.contains(&format!("sha256 = \"{}\"", hash(&token))), "{err}");
    assert!(err.contains("name = \"alice\"") && err.contains("role = \"operator\""));
    // both forms, each valid TOML in its place
    let inline = err.lines().find(|l| l.trim_start().starts_with("{ name")).expect("an inline entry");
    let parsed: toml::Table = toml::from_str(&format!("tokens = [{}]", inline.trim().trim_end_matches(','))).unwrap();
    assert_eq!(parsed["tokens"][0]["sha256"].as_str(), Some(hash(&token).as_str()));
    let tables = &err[err.find("[[server.tokens]]").expect("a table form")..];
    let parsed: toml::Table = toml::from_str(tables).unwrap();
    assert_eq!(parsed["server"]["tokens"][0]["name"].as_str(), Some("alice"));
    assert!(!err.contains(&token), "the token is printed once, on stdout");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["token", "new", "bob", "--role", "admin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn metrics_count_ticks_decisions_actuations_and_reads() {
    let r = Running::start().await;
    r.load.store(2, Ordering::SeqCst);
    r.decision_saying("scaled 2 → 4").await;
    r.decision_saying("hold at 4").await;
    assert_eq!(r.call("GET", "/metrics", None, None).await.0, 401);
    let resp = reqwest::Client::new().get(format!("{}/metrics", r.base)).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let value = |line_start: &str| -> f64 {
        let line =
            text.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("no `{line_start}` in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("moontide_ticks_total{policy=\"web\"}") >= 2.0);
    assert!(value("moontide_decisions_total{policy=\"web\",outcome=\"scaled\"}") >= 1.0);
    assert!(value("moontide_decisions_total{policy=\"web\",outcome=\"hold\"}") >= 1.0);
    assert!(value("moontide_actuations_total{target=\"cloud\",result=\"ok\"}") >= 1.0);
    // (other tests in this process run policies named `web` too: the gauge holds one of theirs or ours)
    assert!((1.0..=10.0).contains(&value("moontide_replicas{policy=\"web\",kind=\"desired\"}")));
    assert!(value("moontide_source_read_seconds_count{source=\"app\"}") >= 2.0);
    assert!(text.contains("moontide_rate_limit_wait_seconds_total{target=\"cloud\"}"), "{text}");
    r.stop().await;
}

#[tokio::test]
async fn a_reload_is_validated_first_and_a_bad_config_leaves_the_old_one_running() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpu": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let policy = |name: &str, target: &str| {
        format!(
            "[policies.{name}]\ntarget = \"{target}\"\ninterval = \"200ms\"\nmin = 1\nmax = 5\nmetrics = {{ cpu = {{ source = \"app\", query = \"/cpu\" }} }}\nchecks = {{ cpu = {{ strategy = \"target_tracking\", targets = [{{ metric = \"cpu\", target = 50 }}] }} }}\n"
        )
    };
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [{{ name = \"olga\", role = \"operator\", sha256 = \"{}\" }}]\n\n[sources.app]\ntype = \"http_json\"\nurl = \"{}\"\n\n[targets.a]\ntype = \"webhook\"\nurl = \"{}\"\ninitial = 1\n\n[targets.b]\ntype = \"webhook\"\nurl = \"{}\"\ninitial = 1\n\n",
        hash(OPERATOR),
        metrics.url("/m"),
        cloud.url("/a"),
        cloud.url("/b")
    );
    let (dir, path) = common::config_file(&(base.clone() + &policy("web", "a")));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["run", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let names = || async {
        let v: Value =
            client.get(format!("{url}/api/v1/policies")).bearer_auth(OPERATOR).send().await.ok()?.json().await.ok()?;
        Some(v["policies"].as_array()?.iter().map(|p| p["name"].as_str().unwrap().to_string()).collect::<Vec<_>>())
    };
    let end = Instant::now() + Duration::from_secs(30);
    while names().await.is_none() {
        assert!(Instant::now() < end, "the API never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(names().await.unwrap(), ["web"]);
    let reload = || async {
        let resp = client.post(format!("{url}/api/v1/reload")).bearer_auth(OPERATOR).send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };

    // a broken file: refused with its problems, the running config stays
    std::fs::write(&path, base.clone() + &policy("web", "a").replace("min = 1", "min = 9")).unwrap();
    let (code, v) = reload().await;
    assert_eq!(code, 422, "{v}");
    assert!(v["problems"][0].as_str().unwrap().contains("min (9) is greater than max (5)"), "{v}");
    assert_eq!(names().await.unwrap(), ["web"]);
    // and it keeps deciding
    let last_at = || async {
        let v: Value = client
            .get(format!("{url}/api/v1/policies/web"))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["last_decision"]["at"].as_i64()
    };
    let before = last_at().await;
    let end = Instant::now() + Duration::from_secs(20);
    while last_at().await == before {
        assert!(Instant::now() < end, "the old config stopped deciding");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // a good one: the new policies run
    std::fs::write(&path, base + &policy("web", "a") + &policy("api", "b")).unwrap();
    let (code, v) = reload().await;
    assert_eq!(code, 200, "{v}");
    assert!(v["done"].as_str().unwrap().contains("2 policies"), "{v}");
    assert_eq!(names().await.unwrap(), ["api", "web"]);
    // no token, no reload
    assert_eq!(client.post(format!("{url}/api/v1/reload")).send().await.unwrap().status(), 401);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
