//! The `webhook` target against the contract: a real HTTP server on
//! 127.0.0.1 holding the count and requiring a bearer token; and the
//! methods it sends.

use crate::common::{TestServer, json, text};
use crate::contract::{Kit, check};
use moontide::targets::webhook::{Webhook, WebhookConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[tokio::test]
async fn webhook_passes_the_target_contract() {
    let count = Arc::new(AtomicU32::new(2));
    let c = count.clone();
    let server = TestServer::start(move |req, _| {
        if req.header("authorization").as_deref() != Some("Bearer s3cret-token") {
            return text(401, "who are you");
        }
        if req.method == "GET" {
            return json(200, serde_json::json!({"replicas": c.load(Ordering::SeqCst)}));
        }
        let n: u32 = req.query.as_deref().and_then(|q| q.strip_prefix("replicas=")).unwrap().parse().unwrap();
        c.store(n, Ordering::SeqCst);
        text(200, "ok")
    })
    .await;
    let failing = TestServer::start(|_, _| text(403, "forbidden")).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let t = token.display();
    let healthy = format!(
        r#"type = "webhook"
url = "{}"
status_url = "{}"
token_file = "{t}""#,
        server.url("/scale?replicas={count}"),
        server.url("/status")
    );
    let failing = format!("type = \"webhook\"\nurl = \"{}\"\ninitial = 1\ntoken_file = \"{t}\"", failing.url("/scale"));
    let hanging = format!(
        "type = \"webhook\"\nurl = \"http://{hang}/scale\"\ninitial = 1\ntimeout = \"300ms\"\nretries = 0\ntoken_file = \"{t}\""
    );
    let seen = Arc::new(server);
    let s2 = seen.clone();
    check(
        "webhook",
        Kit {
            healthy,
            count: Box::new(move || count.load(Ordering::SeqCst)),
            reads_status: true,
            failing,
            failing_says: "HTTP 403",
            hanging,
            secret: Some((
                "s3cret-token".into(),
                Box::new(move || s2.seen().iter().all(|r| r.header("authorization").is_some())),
            )),
        },
    )
    .await;
    drop(listener);
}

#[tokio::test]
async fn the_method_is_one_of_five_in_any_case_and_sent_upper_case() {
    let server = TestServer::start(|_, _| text(200, "ok")).await;
    let mut c: WebhookConfig =
        toml::from_str(&format!("url = \"{}\"\ninitial = 1\nmethod = \"put\"", server.url("/scale"))).unwrap();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    Webhook::new("cloud", &c).unwrap().scale(1, 2, "k").await.unwrap();
    let methods: Vec<String> = server.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["PUT"]);
    for good in ["GET", "post", "Patch", "delete"] {
        c.method = good.into();
        assert!(c.validate().is_empty(), "{good}: {:?}", c.validate());
    }
    // real methods with no place in a scale request, extension methods and nothing at all
    for bad in ["CONNECT", "TRACE", "FETCH", ""] {
        c.method = bad.into();
        let want = format!("method `{bad}` is not one of GET, POST, PUT, PATCH, DELETE");
        assert!(c.validate().contains(&want), "{bad}: {:?}", c.validate());
    }
}
