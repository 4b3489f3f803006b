//! The server over TLS with rustls, and mutual TLS: certificates made by the
//! test (rcgen) for a CA, the server (127.0.0.1) and a client; a real
//! engine behind it; clients with and without the right certificates.

mod common;

use common::pki::Pki;
use common::{TestServer, json, text};
use moontide::server::auth::hash;
use std::time::Duration;

const TOKEN: &str = "mt_tls-test-token-000000000000000000000000000";

fn client(pki: &Pki, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap();
    let mut b = reqwest::Client::builder().add_root_certificate(ca).timeout(Duration::from_secs(10));
    if let Some(who) = identity {
        let mut pem = std::fs::read(pki.path(&format!("{who}.pem"))).unwrap();
        pem.extend(std::fs::read(pki.path(&format!("{who}.key"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

fn tls_section(pki: &Pki, mutual: bool) -> String {
    let p = |n: &str| pki.path(n).display().to_string();
    let mut s = format!("tls = {{ cert_file = \"{}\", key_file = \"{}\"", p("server.pem"), p("server.key"));
    if mutual {
        s.push_str(&format!(", client_ca_file = \"{}\"", p("ca.pem")));
    }
    s.push_str(" }");
    s
}

async fn serve(config_text: &str) -> (String, common::Served) {
    let served = common::Served::start(config_text).await;
    (format!("127.0.0.1:{}", served.addr.port()), served)
}

fn config(tls: &str, listen: &str, metrics: &str, cloud: &str) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\n{tls}\ntokens = [{{ name = \"ops\", role = \"viewer\", sha256 = \"{}\" }}]\n\n[sources.app]\ntype = \"http_json\"\nurl = \"{metrics}\"\n\n[targets.cloud]\ntype = \"webhook\"\nurl = \"{cloud}\"\ninitial = 1\n\n[policies.web]\ntarget = \"cloud\"\ninterval = \"1s\"\nmin = 1\nmax = 3\nmetrics = {{ cpu = {{ source = \"app\", query = \"/cpu\" }} }}\nchecks = {{ cpu = {{ strategy = \"target_tracking\", targets = [{{ metric = \"cpu\", target = 50 }}] }} }}\n",
        hash(TOKEN)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_in_only_clients_with_a_certificate_from_the_ca() {
    let pki = Pki::new();
    let metrics = TestServer::start(|_, _| json(200, serde_json::json!({"cpu": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (addr, served) =
        serve(&config(&tls_section(&pki, true), "127.0.0.1:0", &metrics.url("/m"), &cloud.url("/s"))).await;
    let url = format!("https://{addr}/api/v1/policies");

    let ok = client(&pki, Some("client")).get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // the certificate gets a client through TLS; the API still wants its token
    assert_eq!(client(&pki, Some("client")).get(&url).send().await.unwrap().status(), 401);
    for (who, what) in [(None, "no client certificate"), (Some("intruder"), "a certificate from another CA")] {
        let err = client(&pki, who).get(&url).bearer_auth(TOKEN).send().await;
        assert!(err.is_err(), "{what} got through: {:?}", err.map(|r| r.status()));
    }
    // plain HTTP to the TLS port gets nothing
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/api/v1/policies"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    // `moontide status` over mutual TLS
    let p = |n: &str| pki.path(n).display().to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["status", "--url", &format!("https://{addr}"), "--token", TOKEN, "--ca-file", &p("ca.pem")])
        .args(["--cert-file", &p("client.pem"), "--key-file", &p("client.key")])
        .env_remove("MOONTIDE_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("web"));
    served.stop().await;
}

#[tokio::test]
async fn tls_without_client_certificates_serves_any_client_that_trusts_the_ca() {
    let pki = Pki::new();
    let metrics = TestServer::start(|_, _| json(200, serde_json::json!({"cpu": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let (addr, served) =
        serve(&config(&tls_section(&pki, false), "127.0.0.1:0", &metrics.url("/m"), &cloud.url("/s"))).await;
    let url = format!("https://{addr}/api/v1/policies");
    assert_eq!(client(&pki, None).get(&url).bearer_auth(TOKEN).send().await.unwrap().status(), 200);
    // a client that does not trust the CA refuses the server
    assert!(reqwest::Client::new().get(&url).bearer_auth(TOKEN).send().await.is_err());
    served.stop().await;
}

#[test]
fn other_hosts_need_tls_and_a_token_and_bad_tls_files_are_named() {
    let pki = Pki::new();
    let validate = |text: &str| {
        let (_dir, path) = common::config_file(text);
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_moontide")).args(["validate"]).arg(&path).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (m, c) = ("http://127.0.0.1:1/m", "http://127.0.0.1:1/s");
    let all = "0.0.0.0:9464";
    // TLS and a token: fine on every address
    assert_eq!(validate(&config(&tls_section(&pki, false), all, m, c)).0, Some(0));
    // no TLS: refused, saying why
    let (code, err) = validate(&config("", all, m, c));
    assert_eq!(code, Some(2));
    assert!(err.contains("not a loopback address") && err.contains("[server.tls]"), "{err}");
    // TLS but no token: refused
    let no_tokens = config(&tls_section(&pki, false), all, m, c).replace("tokens = [", "# tokens = [");
    let (code, err) = validate(&no_tokens);
    assert_eq!(code, Some(2));
    assert!(err.contains("at least one [[server.tokens]]"), "{err}");
    // files that are not what they should be
    std::fs::write(pki.path("garbage.pem"), "not a certificate").unwrap();
    let bad = tls_section(&pki, false).replace("server.pem", "garbage.pem");
    let (code, err) = validate(&config(&bad, "127.0.0.1:0", m, c));
    assert_eq!(code, Some(2));
    assert!(err.contains("garbage.pem"), "{err}");
    let mismatched = tls_section(&pki, false).replace("server.key", "client.key");
    let (code, err) = validate(&config(&mismatched, "127.0.0.1:0", m, c));
    assert_eq!(code, Some(2));
    assert!(err.contains("do not make a certificate and its key"), "{err}");
}
