//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs), driven over WebDriver: it
//! signs in with an operator token, shows live decisions and charts with data
//! points, and its Pause button pauses the policy (seen through the API).
//! A screenshot is kept under the target directory; its path is printed.

mod common;

use common::{TestServer, json, text};
use fantoccini::{ClientBuilder, Locator};
use moontide::server::auth::hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OPERATOR: &str = "mt_dashboard-operator-token-00000000000000000";

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running engine with one policy deciding every 300 ms, served with its API and dashboard.
struct Running {
    base: String,
    served: common::Served,
    _servers: (TestServer, TestServer),
}

impl Running {
    async fn stop(self) {
        self.served.stop().await;
    }

    /// Waits (at most 30 s) until the API says `web` is paused by olga.
    async fn paused_by_olga(&self) {
        let client = reqwest::Client::new();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let v: serde_json::Value = client
                .get(format!("{}/api/v1/policies/web", self.base))
                .bearer_auth(OPERATOR)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["paused"]["by"] == "olga" {
                return;
            }
            assert!(Instant::now() < end, "the policy was never paused: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// True (and a skip message) when a tool is missing outside CI; on CI a missing tool fails the test.
fn missing(paths: &[&str], install: &str) -> bool {
    let absent: Vec<&&str> = paths.iter().filter(|p| !std::path::Path::new(p).exists()).collect();
    if absent.is_empty() {
        return false;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must provide {absent:?} (.ci/run does)");
    eprintln!("skipped: {absent:?} missing ({install})");
    true
}

async fn start() -> Running {
    // a policy that decides every 300 ms on a metric that moves
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let m = n.clone();
    let metrics = TestServer::start(move |_, _| {
        let i = m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        json(200, serde_json::json!({ "cpu": 40 + (i % 5) * 10 }))
    })
    .await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ name = \"olga\", role = \"operator\", sha256 = \"{}\" }}]\n\n[sources.app]\ntype = \"http_json\"\nurl = \"{}\"\n\n[targets.cloud]\ntype = \"webhook\"\nurl = \"{}\"\ninitial = 2\n\n[policies.web]\ntarget = \"cloud\"\ninterval = \"300ms\"\nmin = 1\nmax = 10\nmetrics = {{ cpu = {{ source = \"app\", query = \"/cpu\" }} }}\nchecks = {{ cpu = {{ strategy = \"target_tracking\", targets = [{{ metric = \"cpu\", target = 50 }}] }} }}\n",
        hash(OPERATOR),
        metrics.url("/m"),
        cloud.url("/scale?n={count}")
    );
    let served = common::Served::start(&config).await;
    let base = format!("http://127.0.0.1:{}", served.addr.port());
    Running { base, served, _servers: (metrics, cloud) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_decisions_and_pauses_a_policy_in_chromium() {
    let (chromium, chromedriver) =
        (std::path::Path::new("/usr/bin/chromium"), std::path::Path::new("/usr/bin/chromedriver"));
    if missing(&["/usr/bin/chromium", "/usr/bin/chromedriver"], "apt-get install chromium chromium-driver") {
        return;
    }
    let running = start().await;
    let base = running.base.clone();

    // chromedriver on a free port, and a headless Chromium session
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _driver = Driver(
        std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{port}/status")).await.is_err() {
        assert!(Instant::now() < end, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000",
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser =
        ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.unwrap();

    browser.goto(&base).await.unwrap();
    browser.find(Locator::Css("#token")).await.unwrap().send_keys(OPERATOR).await.unwrap();
    browser.find(Locator::Css("#signin-button")).await.unwrap().click().await.unwrap();
    let wait = |sel: &'static str| {
        let b = browser.clone();
        async move { b.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(sel)).await }
    };
    // a live decision arrives, and the charts hold data points
    wait("#policy-web ol.timeline li.decision").await.expect("a decision in the timeline");
    let live_status = browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::XPath("//span[@id='status' and text()='live']"))
        .await;
    assert!(live_status.is_ok(), "the event stream never connected");
    let before = browser.find_all(Locator::Css("#policy-web ol.timeline li.decision")).await.unwrap().len();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let now = browser.find_all(Locator::Css("#policy-web ol.timeline li.decision")).await.unwrap().len();
        if now > before {
            break;
        }
        assert!(Instant::now() < end, "no new decision arrived live ({before} in the timeline)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let points = browser.find_all(Locator::Css("#policy-web svg.replicas circle.pt")).await.unwrap().len();
    assert!(points >= 2, "the replica chart has {points} points");
    let metric_lines = browser.find_all(Locator::Css("#policy-web svg.metrics path.metric")).await.unwrap().len();
    assert_eq!(metric_lines, 1, "one line for the one metric");
    // a decision's reason opens on click
    let first = browser.find(Locator::Css("#policy-web ol.timeline li.decision")).await.unwrap();
    first.click().await.unwrap();
    let detail =
        browser.find(Locator::Css("#policy-web ol.timeline li.decision.open pre")).await.unwrap().text().await.unwrap();
    assert!(detail.contains("check cpu (target_tracking)"), "{detail}");

    // pause as an operator: the API says the policy is paused
    browser.find(Locator::Css("#policy-web button.pause")).await.unwrap().click().await.unwrap();
    running.paused_by_olga().await;
    wait("#policy-web .badge.paused").await.expect("the paused badge");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, browser.screenshot().await.unwrap()).unwrap();
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    browser.close().await.unwrap();
    running.stop().await;
}

/// The same in Firefox (Debian's `firefox-esr`), driven over WebDriver BiDi by
/// puppeteer-core (from npm; `.ci/run` installs it under target/browser-tools)
/// running tests/browser/dashboard.cjs with Node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_decisions_and_pauses_a_policy_in_firefox() {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_path_buf();
    let puppeteer = std::env::var("MOONTIDE_PUPPETEER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| target.join("browser-tools/node_modules/puppeteer-core"));
    let node = ["/usr/bin/node", "/usr/local/bin/node"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("node");
    if missing(
        &["/usr/bin/firefox-esr", node, puppeteer.to_str().unwrap()],
        "apt-get install firefox-esr; npm install --prefix target/browser-tools puppeteer-core@24",
    ) {
        return;
    }
    let running = start().await;
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-firefox.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.cjs");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(node)
            .arg(script)
            .arg(&puppeteer)
            .args(["firefox", "/usr/bin/firefox-esr", &running.base, OPERATOR])
            .arg(&shot)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finished within 2 minutes")
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["points"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["metricLines"], 1, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("check cpu (target_tracking)"), "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "the page threw: {v}");
    running.paused_by_olga().await;
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    running.stop().await;
}
