//! Helpers shared by the integration tests: a recording HTTP server on
//! 127.0.0.1 port 0, config files in temp dirs, bounded waits.
#![allow(dead_code)]

pub mod pki;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

type Handler = dyn Fn(&Seen, usize) -> Response + Send + Sync;

/// A test HTTP server that records every request and answers with `handler`
/// (given the request and its 0-based number). Stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Seen, usize) -> Response + Send + Sync + 'static) -> TestServer {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            let handler = handler.clone();
            async move {
                let s = Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: uri.query().map(str::to_string),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    at: Instant::now(),
                };
                let n = {
                    let mut r = record.lock().unwrap();
                    r.push(s.clone());
                    r.len() - 1
                };
                handler(&s, n)
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        TestServer { addr, seen, stop: Some(tx) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn seen_on(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn json(status: u16, v: serde_json::Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
}

pub fn text(status: u16, body: &str) -> Response {
    (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response()
}

/// A config of one policy `web` on a webhook target `cloud` (starting at 2)
/// reading `cpu` from an http_json source at `metrics` (`/cpuUsage`), ticking
/// every 10 s between 1 and 10 replicas, with `checks` (TOML) after it.
pub fn web_config(metrics: &str, scale: &str, checks: &str) -> String {
    format!(
        r#"
[sources.app]
type = "http_json"
url = "{metrics}"

[targets.cloud]
type = "webhook"
url = "{scale}"
initial = 2

[policies.web]
target = "cloud"
interval = "10s"
min = 1
max = 10
metrics = {{ cpu = {{ source = "app", query = "/cpuUsage" }} }}
{checks}
"#
    )
}

/// Writes `text` as a config file in a new temp dir; returns (dir, path).
pub fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moontide.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Polls `cond` every 50 ms for at most `limit`; true if it came true.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a process is alive (present in /proc and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // the state is the first field after the ")" that closes the command name
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// Live processes whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    processes_with(1, ppid)
}

/// Live processes in the process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    processes_with(2, pgid)
}

/// Live processes whose `field`-th number in /proc/PID/stat after the
/// command name (0 the state, 1 the parent, 2 the process group) is `value`.
fn processes_with(field: usize, value: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        if rest.split_whitespace().nth(field).and_then(|p| p.parse::<u32>().ok()) == Some(value) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// An engine built from a config file's text, ticking, with its API served on the config's
/// `[server]` address (TLS too when the config says so), as `moontide run` serves it.
pub struct Served {
    pub addr: SocketAddr,
    pub store: moontide::store::Store,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub engine: tokio::task::JoinHandle<()>,
    pub dir: tempfile::TempDir,
}

impl Served {
    pub async fn start(config_text: &str) -> Served {
        let (dir, path) = config_file(config_text);
        let config = moontide::config::Config::load(&path).unwrap_or_else(|e| panic!("{:?}", e.problems()));
        let store = moontide::store::Store::open(&dir.path().join("state")).unwrap();
        let engine =
            moontide::engine::Engine::build(&config, store.clone(), Arc::new(moontide::engine::SystemClock), false)
                .unwrap();
        let live = moontide::server::Live {
            pushes: engine.push_sources(),
            controls: engine.controls().into_iter().map(|c| (c.policy.clone(), c)).collect(),
            tokens: config.server.tokens.clone(),
            shared_controls: None,
        };
        let api = moontide::server::ApiState {
            store: store.clone(),
            decisions: engine.decision_sender(),
            clock: engine.clock(),
            reload: None,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let state = moontide::server::State::new(live, Some(api));
        let (addr, _) =
            moontide::server::start(config.server.addr().unwrap(), state, config.server.tls.as_ref(), stopped.clone())
                .await
                .unwrap();
        let engine = tokio::spawn(engine.run(stopped));
        Served { addr, store, stop, engine, dir }
    }

    /// Stops the engine and the server; waits (at most 30 s) for the engine's last ticks.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.engine).await.unwrap().unwrap();
    }
}
