//! The `prometheus` source against a real Prometheus (Debian's package),
//! started by the test on 127.0.0.1 behind basic auth, scraping two test
//! endpoints whose values the test sets.

use crate::common::{TestServer, text};
use crate::contract::{Kit, check};
use crate::servers::{PROM_PASSWORD, PROM_USER, Prometheus, Silent};
use moontide::sources::{Source, SourceConfig};
use moontide_core::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    Timestamp::from_millis(since.as_millis() as i64)
}

/// An endpoint serving `app_queue_depth{queue="jobs"} N` in the exposition format.
async fn exporter(depth: Arc<AtomicU32>) -> TestServer {
    TestServer::start(move |_, _| {
        text(
            200,
            &format!(
                "# TYPE app_queue_depth gauge\napp_queue_depth{{queue=\"jobs\"}} {}\n",
                depth.load(Ordering::SeqCst)
            ),
        )
    })
    .await
}

fn config(prom: &Prometheus, extra: &str, password_file: &std::path::Path) -> String {
    format!(
        "type = \"prometheus\"\nurl = \"{}\"\nusername = \"{PROM_USER}\"\npassword_file = \"{}\"\n{extra}",
        prom.url,
        password_file.display()
    )
}

fn source(text: &str) -> Source {
    let c: SourceConfig = toml::from_str(text).unwrap();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    Source::build("prom", &c).unwrap()
}

#[tokio::test]
async fn prometheus_passes_the_source_contract_and_reads_series_and_history() {
    let (a, b) = (Arc::new(AtomicU32::new(7)), Arc::new(AtomicU32::new(5)));
    let (ea, eb) = (exporter(a.clone()).await, exporter(b.clone()).await);
    let Some(prom) = Prometheus::start(&[ea.addr, eb.addr]).await else { return };
    prom.wait_for("app_queue_depth", 2).await;
    let first_seen = now();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, PROM_PASSWORD).unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password").unwrap();
    let silent = Silent::start();

    check(
        "prometheus",
        Kit {
            healthy: config(&prom, "", &pw),
            query: "sum(app_queue_depth{queue=\"jobs\"})".into(),
            expected: 12.0,
            failing: config(&prom, "", &wrong),
            failing_query: "sum(app_queue_depth)".into(),
            failing_says: "HTTP 401",
            hanging: Some(format!("type = \"prometheus\"\nurl = \"http://{}\"\ntimeout = \"300ms\"", silent.addr)),
            secret: Some(PROM_PASSWORD.into()),
            feed: None,
        },
    )
    .await;

    // several series: an error unless the source says how to combine them
    let plain = source(&config(&prom, "", &pw));
    let err = plain.read(&["app_queue_depth".into()]).await.remove(0).unwrap_err();
    assert!(err.contains("gave 2 series") && err.contains("aggregate"), "{err}");
    let max = source(&config(&prom, "aggregate = \"max\"", &pw));
    assert_eq!(max.read(&["app_queue_depth".into()]).await.remove(0).unwrap().value, 7.0);
    let avg = source(&config(&prom, "aggregate = \"avg\"", &pw));
    assert_eq!(avg.read(&["app_queue_depth".into()]).await.remove(0).unwrap().value, 6.0);
    // nothing matched, a range vector, a NaN, a query Prometheus refuses: failed readings that say so
    for (q, want) in [
        ("app_queue_depth{queue=\"none\"}", "matched no series"),
        ("app_queue_depth[1m]", "range vector"),
        ("scalar(vector(0) / 0)", "not a usable number"),
        ("rate(app_queue_depth)", "Prometheus refused the query"),
    ] {
        let err = plain.read(&[q.into()]).await.remove(0).unwrap_err();
        assert!(err.contains(want), "{q}: {err}");
    }
    // a value the endpoint changes is read on the next scrape
    a.store(30, Ordering::SeqCst);
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = plain.read(&["sum(app_queue_depth)".into()]).await.remove(0).unwrap().value;
        if v == 35.0 {
            break;
        }
        assert!(std::time::Instant::now() < end, "the new value never arrived (last {v})");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // history: a range query, one point per step, oldest first (from when Prometheus first had data)
    let wait = 4000 - (now().as_millis() - first_seen.as_millis());
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let points = plain
        .history("sum(app_queue_depth)", first_seen, now(), Duration::from_secs(1))
        .await
        .expect("prometheus keeps history")
        .unwrap();
    assert!(points.len() >= 3, "{points:?}");
    assert!(points.windows(2).all(|w| w[1].0.as_millis() - w[0].0.as_millis() == 1000), "{points:?}");
    assert_eq!(points.last().unwrap().1, 35.0);
}

#[tokio::test]
async fn a_policy_starts_with_its_window_filled_from_prometheus() {
    let depth = Arc::new(AtomicU32::new(90));
    let ex = exporter(depth).await;
    let Some(prom) = Prometheus::start(&[ex.addr]).await else { return };
    prom.wait_for("app_queue_depth", 1).await;
    // let Prometheus hold a few seconds of 90s
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, PROM_PASSWORD).unwrap();
    // "above 80 for 3 s" can only fire on the first tick if the window was filled
    let text_cfg = format!(
        r#"
[sources.prom]
type = "prometheus"
url = "{url}"
username = "{PROM_USER}"
password_file = "{pw}"

[targets.cloud]
type = "webhook"
url = "{cloud}"
initial = 2

[policies.jobs]
target = "cloud"
interval = "1s"
min = 1
max = 10
metrics = {{ depth = {{ source = "prom", query = "max(app_queue_depth)" }} }}
checks = {{ busy = {{ strategy = "threshold", conditions = [{{ metric = "depth", upper = 80, lower = 10, up_for = "3s" }}] }} }}
"#,
        url = prom.url,
        pw = pw.display(),
        cloud = cloud.url("/scale?n={count}"),
    );
    let (cdir, path) = crate::common::config_file(&text_cfg);
    let config = moontide::config::Config::load(&path).unwrap();
    let store = moontide::store::Store::open(&cdir.path().join("state")).unwrap();
    let mut engine =
        moontide::engine::Engine::build(&config, store, Arc::new(moontide::engine::SystemClock), false).unwrap();
    let d = engine.tick("jobs").await.unwrap();
    assert_eq!((d.current, d.desired), (2, 3), "the first tick scales up: {d:?}");
    engine.shutdown().await;
}

/// Prometheus itself serves no bearer auth; proxies in front of it (and
/// Mimir, Thanos, VictoriaMetrics) do. This endpoint answers the query API
/// the way Prometheus does, but only to the right bearer token and tenant.
#[tokio::test]
async fn a_bearer_token_and_headers_reach_a_prometheus_api_behind_a_proxy() {
    let server = TestServer::start(|req, _| {
        if req.header("authorization").as_deref() != Some("Bearer mimir-s3cret") || req.header("x-scope-orgid").as_deref() != Some("team-a") {
            return text(401, "Unauthorized");
        }
        crate::common::json(200, serde_json::json!({"status": "success", "data": {"resultType": "scalar", "result": [1700000000.0, "3.25"]}}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    std::fs::write(&tok, "mimir-s3cret").unwrap();
    let cfg = |headers: &str| {
        format!(
            "type = \"prometheus\"\nurl = \"{}/prometheus\"\ntoken_file = \"{}\"\n{headers}",
            server.url(""),
            tok.display()
        )
    };
    let s = source(&cfg("headers = { \"X-Scope-OrgID\" = \"team-a\" }"));
    assert_eq!(s.read(&["scalar(up)".into()]).await.remove(0).unwrap().value, 3.25);
    assert_eq!(server.seen()[0].path, "/prometheus/api/v1/query", "the API lives under the configured URL");
    let err = source(&cfg("")).read(&["scalar(up)".into()]).await.remove(0).unwrap_err();
    assert!(err.contains("HTTP 401") && !err.contains("mimir-s3cret"), "{err}");
}

/// VictoriaMetrics says `"isPartial": true` when a storage node did not
/// answer; Thanos leaves a store out unless asked for `partial_response=false`.
/// Either way a sum over part of the series would understate the load.
#[tokio::test]
async fn a_partial_answer_fails_the_reading_with_its_warnings() {
    use serde_json::json;
    let server = TestServer::start(|req, _| {
        let vector = json!({"resultType": "vector", "result": [{"metric": {}, "value": [1700000000.0, "4"]}]});
        let query = req.query.as_deref().unwrap_or_default();
        let (status, reply) = if query.contains("query=sum%28up%29") {
            (200, json!({"status": "success", "isPartial": true, "warnings": ["vmstorage-2 is down"], "data": vector}))
        } else if query.contains("query=warned") {
            (200, json!({"status": "success", "warnings": ["result may be inaccurate"], "data": vector}))
        } else {
            (422, json!({"status": "error", "errorType": "execution", "error": "boom", "warnings": ["store is down"]}))
        };
        crate::common::json(status, reply)
    })
    .await;
    let s = source(&format!("type = \"prometheus\"\nurl = \"{}\"", server.url("")));
    let err = s.read(&["sum(up)".into()]).await.remove(0).unwrap_err();
    assert!(err.contains("partial") && err.contains("vmstorage-2 is down"), "{err}");
    let asked = server.seen()[0].query.clone().unwrap_or_default();
    assert!(asked.split('&').any(|p| p == "partial_response=false"), "{asked}");
    // warnings on a whole answer keep its value
    assert_eq!(s.read(&["warned".into()]).await.remove(0).unwrap().value, 4.0);
    // a refused query says what the server warned of too
    let err = s.read(&["other".into()]).await.remove(0).unwrap_err();
    assert!(err.contains("Prometheus refused the query") && err.contains("store is down"), "{err}");
    // the range query asks for a whole answer as well
    let history = s.history("sum(up)", Timestamp::from_secs(1_700_000_000), now(), Duration::from_secs(60)).await;
    assert!(history.expect("prometheus keeps history").unwrap_err().contains("partial"));
    let range = server.seen_on("/api/v1/query_range");
    assert!(range[0].query.as_deref().unwrap_or_default().contains("partial_response=false"), "{range:?}");
}
