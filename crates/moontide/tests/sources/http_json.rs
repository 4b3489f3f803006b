//! The `http_json` source against the contract (its own behaviour is tested
//! in tests/http_json.rs).

use crate::common::{TestServer, json, text};
use crate::contract::{Kit, check};
use crate::servers::Silent;

#[tokio::test]
async fn http_json_passes_the_source_contract() {
    let server = TestServer::start(|req, _| {
        if req.header("authorization").as_deref() != Some("Bearer json-s3cret") {
            return text(401, "no");
        }
        json(200, serde_json::json!({"queue": {"depth": 17}}))
    })
    .await;
    let refusing = TestServer::start(|_, _| text(503, "down")).await;
    let silent = Silent::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "json-s3cret").unwrap();
    let t = token.display();
    check(
        "http_json",
        Kit {
            healthy: format!("type = \"http_json\"\nurl = \"{}\"\ntoken_file = \"{t}\"", server.url("/m")),
            query: "/queue/depth".into(),
            expected: 17.0,
            failing: format!("type = \"http_json\"\nurl = \"{}\"\ntoken_file = \"{t}\"", refusing.url("/m")),
            failing_query: "/queue/depth".into(),
            failing_says: "HTTP 503",
            hanging: Some(format!("type = \"http_json\"\nurl = \"http://{}/m\"\ntimeout = \"300ms\"", silent.addr)),
            secret: Some("json-s3cret".into()),
            feed: None,
        },
    )
    .await;
}
