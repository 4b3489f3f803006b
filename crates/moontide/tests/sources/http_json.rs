//! The `http_json` source against the contract (its own behaviour is tested
//! in tests/http_json.rs), and the limits its settings and replies are held to.

use crate::common::{TestServer, json, text};
use crate::contract::{Kit, check};
use crate::servers::Silent;
use moontide::sources::{Source, SourceConfig};

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

fn problems(text: &str) -> Vec<String> {
    toml::from_str::<SourceConfig>(text).unwrap().validate()
}

#[test]
fn credentials_in_the_url_are_refused_without_showing_them() {
    // the URL shows in errors and decisions
    let errs = problems("type = \"http_json\"\nurl = \"http://app:hunter2@127.0.0.1:8080/metrics\"");
    assert!(!errs.is_empty(), "a URL with user info must be refused");
    assert!(errs[0].contains("leave credentials out") && errs[0].contains("token_file"), "{errs:?}");
    assert!(!errs.iter().any(|e| e.contains("hunter2")), "{errs:?}");
}

#[test]
fn max_age_and_timeout_are_bounded() {
    let base = "type = \"http_json\"\nurl = \"http://127.0.0.1:8080/m\"\ntime_pointer = \"/at\"";
    assert!(problems(base).is_empty());
    let errs = problems(&format!("{base}\nmax_age = \"0s\""));
    assert!(errs.iter().any(|e| e.contains("max_age must be longer than 0s")), "{errs:?}");
    // the engine stops waiting for a reading after 30 s: a longer timeout would be cut without a word
    let errs = problems(&format!("{base}\ntimeout = \"45s\""));
    assert!(errs.iter().any(|e| e.contains("timeout") && e.contains("at most 30s")), "{errs:?}");
    assert!(problems(&format!("{base}\ntimeout = \"30s\"")).is_empty());
}

#[tokio::test]
async fn a_body_larger_than_the_limit_is_refused() {
    // valid JSON: without a limit it would be read whole and give 1
    let padded = format!("{{\"queue\": 1}}{}", " ".repeat(moontide::sources::BODY_LIMIT));
    let server = TestServer::start(move |_, _| text(200, &padded)).await;
    let url = server.url("/m");
    let c: SourceConfig = toml::from_str(&format!("type = \"http_json\"\nurl = \"{url}\"")).unwrap();
    let s = Source::build("app", &c).unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), s.read(&["/queue".into()]))
        .await
        .expect("a body over the limit is refused in time");
    let err = got[0].as_ref().unwrap_err();
    assert!(err.contains("larger than 16 MiB") && err.contains(&url), "{err}");
}
