//! Real servers the source tests start on 127.0.0.1 and stop when dropped:
//! Prometheus (Debian's `prometheus` package), and a port that accepts
//! connections but never answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that accepts connections and never answers; closed when dropped.
pub struct Silent {
    pub addr: std::net::SocketAddr,
    _listener: std::net::TcpListener,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Silent { addr: listener.local_addr().unwrap(), _listener: listener }
    }
}

/// Finds a binary from a Debian package, or says why the test is skipped.
/// On CI a missing binary fails the test: `.ci/run` installs it.
pub fn binary(path: &str, package: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.exists() {
        return Some(p.to_path_buf());
    }
    assert!(std::env::var_os("CI").is_none(), "CI must install {package} (.ci/run does)");
    eprintln!("skipped: {path} is missing (apt-get install {package})");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub const PROM_USER: &str = "moontide";
pub const PROM_PASSWORD: &str = "prom-test-password";
/// bcrypt of PROM_PASSWORD (cost 4), as Prometheus's web config wants it.
const PROM_PASSWORD_HASH: &str = "$2b$04$7.MCba/kfJsfaWDpKICOBeCsF08LBdlPPlYs22nzMxg8YwPLfeOqu";

/// A Prometheus on 127.0.0.1 scraping `targets` every second, behind basic auth.
pub struct Prometheus {
    pub url: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts it; None when the binary is missing outside CI.
    pub async fn start(targets: &[std::net::SocketAddr]) -> Option<Prometheus> {
        let bin = binary("/usr/bin/prometheus", "prometheus")?;
        let dir = tempfile::tempdir().unwrap();
        let list: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [{}]}}]\n",
                list.join(", ")
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("web.yml"),
            format!("basic_auth_users:\n  {PROM_USER}: '{PROM_PASSWORD_HASH}'\n"),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--web.config.file={}", dir.path().join("web.yml").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let prom = Prometheus { url: format!("http://127.0.0.1:{port}"), child, dir };
        let client = reqwest::Client::new();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/-/ready", prom.url))
                .basic_auth(PROM_USER, Some(PROM_PASSWORD))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Some(prom);
            }
            assert!(Instant::now() < end, "Prometheus not ready in 30 s: {}", prom.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query with the test's credentials; the number of series and the first value.
    pub async fn query(&self, q: &str) -> (usize, Option<f64>) {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", q)])
            .basic_auth(PROM_USER, Some(PROM_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        let first = result.first().and_then(|s| s["value"][1].as_str()).and_then(|t| t.parse().ok());
        (result.len(), first)
    }

    /// Waits (at most 60 s) until `q` gives `series` series.
    pub async fn wait_for(&self, q: &str, series: usize) {
        let end = Instant::now() + Duration::from_secs(60);
        while self.query(q).await.0 != series {
            assert!(Instant::now() < end, "`{q}` never gave {series} series: {}", self.log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's prometheus-node-exporter on 127.0.0.1.
pub struct NodeExporter {
    pub url: String,
    child: Child,
}

impl NodeExporter {
    /// Starts it; None when the binary is missing outside CI.
    pub async fn start() -> Option<NodeExporter> {
        let bin = binary("/usr/bin/prometheus-node-exporter", "prometheus-node-exporter")?;
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ne = NodeExporter { url: format!("http://127.0.0.1:{port}/metrics"), child };
        let end = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(&ne.url).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < end, "node_exporter not answering in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(ne)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name no other test run uses: `prefix-PID-RANDOM`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..))
}

/// Whether a TCP port answers on 127.0.0.1; on CI a missing service fails the test.
pub fn service(port: u16, what: &str) -> bool {
    let up = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok();
    if !up {
        assert!(std::env::var_os("CI").is_none(), "{what} must be running on 127.0.0.1:{port} in CI");
        eprintln!("skipped: {what} is not running on 127.0.0.1:{port}");
    }
    up
}

/// A nats-server (the machine's binary) with JetStream and token auth, on a free port.
pub struct NatsServer {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start(token: &str) -> Option<NatsServer> {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].into_iter().find(|p| Path::new(p).exists());
        let Some(bin) = bin else {
            assert!(std::env::var_os("CI").is_none(), "CI needs nats-server");
            eprintln!("skipped: nats-server is missing");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "--auth", token])
            .arg("-sd")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "nats-server not listening in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(NatsServer { url: format!("nats://127.0.0.1:{port}"), child, _dir: dir })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
