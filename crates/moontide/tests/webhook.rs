//! The `webhook` target against real HTTP servers on 127.0.0.1: set-count and
//! step modes, idempotency keys, bearer auth, retries on 5xx and 429 with
//! Retry-After, no retry on other 4xx, the client-side rate limit, status reads.

mod common;

use common::{TestServer, json, text};
use moontide::targets::webhook::{Mode, RateLimit, Webhook, WebhookConfig};
use serde_json::json as j;
use std::time::Duration;

fn config(mode: Mode) -> WebhookConfig {
    let toml = match mode {
        Mode::SetCount => "url = \"http://127.0.0.1:1/\"\ninitial = 2",
        Mode::Step => {
            "mode = \"step\"\nscale_up_url = \"http://127.0.0.1:1/\"\nscale_down_url = \"http://127.0.0.1:1/\"\ninitial = 2"
        }
    };
    let mut c: WebhookConfig = toml::from_str(toml).unwrap();
    c.backoff = Duration::from_millis(20);
    c.rate_limit = RateLimit { per_second: 1000.0, burst: 100 };
    c
}

#[tokio::test]
async fn set_count_sends_the_count_with_key_and_token() {
    let server = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), "t0ken").unwrap();
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/scale?replicas={count}"));
    c.body = Some(r#"{"replicas": {count}, "from": {current}}"#.into());
    c.token_file = Some(dir.path().join("tok"));
    let hook = Webhook::new("cloud", &c).unwrap();
    let act = hook.scale(2, 5, "web-1000-5").await.unwrap();
    assert_eq!(act.attempts, 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].query.as_deref(), Some("replicas=5"));
    assert_eq!(seen[0].body, r#"{"replicas": 5, "from": 2}"#);
    assert_eq!(seen[0].header("idempotency-key").as_deref(), Some("web-1000-5"));
    assert_eq!(seen[0].header("authorization").as_deref(), Some("Bearer t0ken"));
    assert_eq!(seen[0].header("content-type").as_deref(), Some("application/json"));
    let st = hook.status().await.unwrap();
    assert_eq!(st.current, 5, "without status_url Moontide counts what it set");
    assert!(st.note.unwrap().contains("tracked by Moontide"));
}

#[tokio::test]
async fn step_mode_calls_once_per_replica_with_distinct_keys() {
    let server = TestServer::start(|_, _| text(200, "ok")).await;
    let mut c = config(Mode::Step);
    c.scale_up_url = Some(server.url("/scale-up"));
    c.scale_down_url = Some(server.url("/scale-down"));
    let hook = Webhook::new("cloud", &c).unwrap();
    hook.scale(2, 5, "k").await.unwrap();
    let ups = server.seen_on("/scale-up");
    assert_eq!(ups.len(), 3);
    let keys: Vec<_> = ups.iter().map(|s| s.header("idempotency-key").unwrap()).collect();
    assert_eq!(keys, ["k-1", "k-2", "k-3"]);
    hook.scale(5, 3, "d").await.unwrap();
    assert_eq!(server.seen_on("/scale-down").len(), 2);
    assert_eq!(hook.status().await.unwrap().current, 3);
}

#[tokio::test]
async fn retries_5xx_and_timeouts_then_succeeds_with_the_same_key() {
    let server = TestServer::start(|_, n| if n < 2 { text(503, "busy") } else { text(200, "ok") }).await;
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/scale"));
    let hook = Webhook::new("cloud", &c).unwrap();
    let act = hook.scale(1, 2, "key-a").await.unwrap();
    assert_eq!(act.attempts, 3);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.header("idempotency-key").as_deref() == Some("key-a")));
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = TestServer::start(|_, n| {
        if n == 0 {
            let mut r = text(429, "slow down");
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        } else {
            text(200, "ok")
        }
    })
    .await;
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/scale"));
    let hook = Webhook::new("cloud", &c).unwrap();
    let act = hook.scale(1, 2, "k").await.unwrap();
    assert_eq!(act.attempts, 2);
    let seen = server.seen();
    // the retry waited for the server's Retry-After (1 s), not the 20 ms backoff
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(950));
}

#[tokio::test]
async fn a_retry_after_beyond_max_backoff_fails_instead_of_waiting() {
    let server = TestServer::start(|_, _| {
        let mut r = text(429, "");
        r.headers_mut().insert("retry-after", "3600".parse().unwrap());
        r
    })
    .await;
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/scale"));
    let hook = Webhook::new("cloud", &c).unwrap();
    let err = hook.scale(1, 2, "k").await.unwrap_err();
    assert!(err.message.contains("Retry-After 1h is longer than max_backoff"), "{}", err.message);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn other_4xx_are_not_retried_and_exhausted_retries_fail() {
    let server =
        TestServer::start(|s, _| if s.path == "/bad" { text(400, "no such group") } else { text(500, "") }).await;
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/bad"));
    let err = Webhook::new("cloud", &c).unwrap().scale(1, 2, "k").await.unwrap_err();
    assert!(err.message.contains("HTTP 400: no such group (not retried)"), "{}", err.message);
    assert_eq!(err.actuation.attempts, 1);
    c.url = Some(server.url("/down"));
    c.retries = 2;
    let hook = Webhook::new("cloud", &c).unwrap();
    let err = hook.scale(1, 2, "k").await.unwrap_err();
    assert_eq!(err.actuation.attempts, 3);
    assert!(err.message.contains("after 3 attempt(s)"), "{}", err.message);
    assert_eq!(hook.status().await.unwrap().current, 2, "a failed set-count leaves the tracked count alone");
}

#[tokio::test]
async fn step_failure_part_way_tracks_what_was_done() {
    let server = TestServer::start(|_, n| if n < 2 { text(200, "ok") } else { text(403, "quota") }).await;
    let mut c = config(Mode::Step);
    c.scale_up_url = Some(server.url("/up"));
    let hook = Webhook::new("cloud", &c).unwrap();
    let err = hook.scale(2, 6, "k").await.unwrap_err();
    assert!(err.message.starts_with("step 3 of 4"), "{}", err.message);
    assert_eq!(hook.status().await.unwrap().current, 4);
}

/// The token bucket is never exceeded, retries included: every 1 s window
/// seen by the server holds at most burst + rate requests.
#[tokio::test]
async fn the_rate_limit_holds_retries_included() {
    let server = TestServer::start(|_, n| if n % 3 == 0 { text(500, "") } else { text(200, "ok") }).await;
    let mut c = config(Mode::Step);
    c.scale_up_url = Some(server.url("/up"));
    c.rate_limit = RateLimit { per_second: 4.0, burst: 2 };
    c.backoff = Duration::from_millis(1);
    let hook = Webhook::new("cloud", &c).unwrap();
    hook.scale(0, 8, "k").await.unwrap();
    let times: Vec<_> = server.seen().iter().map(|s| s.at).collect();
    assert!(times.len() >= 11, "8 steps with every third request failing: {}", times.len());
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(1)).count();
        assert!(in_window <= 2 + 4, "{in_window} requests within 1 s of request {i}");
    }
}

#[tokio::test]
async fn reads_status_and_rejects_bad_status() {
    let server = TestServer::start(|s, _| match s.path.as_str() {
        "/ok" => json(200, j!({"spec": {"replicas": 4}, "ready": 3})),
        "/neg" => json(200, j!({"replicas": -1})),
        "/html" => text(200, "<html>"),
        _ => text(503, ""),
    })
    .await;
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/scale"));
    c.status_url = Some(server.url("/ok"));
    c.status_pointer = Some("/spec/replicas".into());
    c.ready_pointer = Some("/ready".into());
    let st = Webhook::new("cloud", &c).unwrap().status().await.unwrap();
    assert_eq!((st.current, st.ready, st.note), (4, 3, None));
    for (path, want) in [("/neg", "not a replica count"), ("/html", "malformed JSON"), ("/down", "HTTP 503")] {
        c.status_url = Some(server.url(path));
        c.status_pointer = None;
        c.ready_pointer = None;
        let err = Webhook::new("cloud", &c).unwrap().status().await.unwrap_err();
        assert!(err.contains(want), "{path}: {err}");
    }
}

/// A receiver verifies the signature the way the README tells: HMAC-SHA256
/// over "TIME." + body with the shared secret, compared in constant time,
/// and refuses a forged body or an old time.
#[tokio::test]
async fn signed_requests_can_be_verified_and_forgeries_rejected() {
    use hmac::{KeyInit, Mac};
    fn verify(secret: &[u8], header: &str, body: &str, now: u64) -> Result<(), &'static str> {
        let (t, v1) = header.split_once(',').ok_or("malformed header")?;
        let t: u64 = t.strip_prefix("t=").ok_or("no time")?.parse().map_err(|_| "bad time")?;
        let v1 = v1.strip_prefix("v1=").ok_or("no signature")?;
        if now.abs_diff(t) > 300 {
            return Err("too old: a replay");
        }
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        let bytes: Vec<u8> =
            (0..v1.len()).step_by(2).filter_map(|i| u8::from_str_radix(&v1[i..i + 2], 16).ok()).collect();
        mac.verify_slice(&bytes).map_err(|_| "forged")
    }
    let server = TestServer::start(|_, _| text(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "whsec_test").unwrap();
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/scale"));
    c.body = Some(r#"{"replicas": {count}}"#.into());
    c.signing_secret_file = Some(dir.path().join("secret"));
    Webhook::new("cloud", &c).unwrap().scale(2, 3, "k").await.unwrap();
    let seen = &server.seen()[0];
    let header = seen.header("moontide-signature").expect("a signed request");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(verify(b"whsec_test", &header, &seen.body, now), Ok(()));
    assert_eq!(verify(b"whsec_test", &header, r#"{"replicas": 30}"#, now), Err("forged"));
    assert_eq!(verify(b"another", &header, &seen.body, now), Err("forged"));
    assert_eq!(verify(b"whsec_test", &header, &seen.body, now + 3600), Err("too old: a replay"));
    assert!(!format!("{:?}{}", seen.headers, seen.body).contains("whsec_test"), "the secret never travels");
    // a known answer, computed independently (Python's hmac module)
    assert_eq!(
        moontide::targets::webhook::sign(b"whsec_test", 1_700_000_000, r#"{"replicas": 3}"#),
        "t=1700000000,v1=c263f23b006fd5587747661a551282bb85d2a9f2c63872f156f3bb040f224b1f"
    );
}

#[tokio::test]
async fn policy_is_the_name_of_the_policy_in_urls_body_and_status_url() {
    let server = TestServer::start(|s, _| match s.path.as_str() {
        "/groups/web" => json(200, j!({"replicas": 3})),
        _ => text(200, "ok"),
    })
    .await;
    let mut c = config(Mode::SetCount);
    c.url = Some(server.url("/groups/{policy}/scale"));
    c.body = Some(r#"{"group": "{policy}"}"#.into());
    c.status_url = Some(server.url("/groups/{policy}"));
    // the target is `cloud`; the policy driving it, `web`, is what {policy} names
    let target = moontide::targets::Target::build("cloud", &moontide::targets::TargetConfig::Webhook(c.clone()))
        .unwrap()
        .for_policy("web");
    target.scale(2, 5, "k").await.unwrap();
    let seen = server.seen_on("/groups/web/scale");
    assert_eq!(seen.len(), 1, "{:?}", server.seen().iter().map(|s| s.path.clone()).collect::<Vec<_>>());
    assert_eq!(seen[0].body, r#"{"group": "web"}"#);
    assert_eq!(target.status().await.unwrap().current, 3, "status_url is filled in too");
    // a count has no value where the count is read
    c.status_url = Some(server.url("/groups/{count}"));
    let errs = c.validate();
    assert!(errs.iter().any(|e| e.contains("status_url") && e.contains("{count}")), "{errs:?}");
    // a password in a URL would be echoed into errors and decisions
    c.status_url = Some("http://moontide:hunter2@127.0.0.1:9/groups/{policy}".into());
    let errs = c.validate();
    assert!(errs.iter().any(|e| e.contains("status_url: leave credentials out of the URL")), "{errs:?}");
    assert!(errs.iter().all(|e| !e.contains("hunter2")), "{errs:?}");
}
