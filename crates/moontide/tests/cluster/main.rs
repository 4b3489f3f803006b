//! High availability against a real etcd: three `moontide run` processes
//! share one config; every policy is owned exactly once; kill -9 moves an
//! owner's policies to the survivors; a SIGSTOPped owner that lost its lease
//! performs no actuation after SIGCONT; cooldowns and Lua state survive a
//! failover; a pause sent to any instance's API stops the owner's
//! actuations, and a resume there starts them again; a change sent while
//! etcd cannot be reached, before or after its read, is refused (503) and
//! changes nothing; a script-mode policy's
//! script runs on its owner alone and moves with it. A receiving server on 127.0.0.1 plays the platform: it counts
//! actuations and checks their fencing tokens.
#![cfg(feature = "etcd")]

mod etcd;
#[path = "../common/pki.rs"]
mod pki;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use etcd::Etcd;
use etcd_client::GetOptions;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL_SECS: u64 = 2;
const POLICIES: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];

/// One actuation as the platform saw it.
#[derive(Clone, Debug)]
struct Act {
    policy: String,
    token: i64,
    at: Instant,
    n: u32,
    accepted: bool,
}

#[derive(Default)]
struct Platform {
    acts: Mutex<Vec<Act>>,
    counts: Mutex<HashMap<String, u32>>,
    highest: Mutex<HashMap<String, i64>>,
    rejected: AtomicUsize,
    cpu: Mutex<HashMap<String, f64>>,
}

impl Platform {
    fn count(&self, policy: &str) -> u32 {
        self.counts.lock().unwrap().get(policy).copied().unwrap_or(1)
    }

    fn acts(&self) -> Vec<Act> {
        self.acts.lock().unwrap().clone()
    }
}

async fn serve(p: Arc<Platform>) -> (String, tokio::sync::oneshot::Sender<()>) {
    async fn scale(
        State(p): State<Arc<Platform>>,
        UrlPath(policy): UrlPath<String>,
        Query(q): Query<HashMap<String, u32>>,
        headers: HeaderMap,
    ) -> StatusCode {
        let token = headers
            .get("moontide-fencing-token")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let n = q.get("n").copied().unwrap_or(0);
        let accepted = {
            let mut highest = p.highest.lock().unwrap();
            let h = highest.entry(policy.clone()).or_default();
            if token > 0 && token >= *h {
                *h = token;
                true
            } else {
                false
            }
        };
        p.acts.lock().unwrap().push(Act { policy: policy.clone(), token, at: Instant::now(), n, accepted });
        if !accepted {
            p.rejected.fetch_add(1, Ordering::SeqCst);
            return StatusCode::CONFLICT;
        }
        p.counts.lock().unwrap().insert(policy, n);
        StatusCode::OK
    }
    async fn status(State(p): State<Arc<Platform>>, UrlPath(policy): UrlPath<String>) -> axum::Json<Value> {
        let n = p.count(&policy);
        axum::Json(json!({ "replicas": n }))
    }
    async fn metric(State(p): State<Arc<Platform>>, UrlPath(policy): UrlPath<String>) -> axum::Json<Value> {
        // oscillating policies: hot below 5 replicas, cold at 5; others as the test sets
        let set = p.cpu.lock().unwrap().get(&policy).copied();
        let cpu = set.unwrap_or(if p.count(&policy) < 5 { 95.0 } else { 5.0 });
        axum::Json(json!({ "cpu": cpu }))
    }
    let app = axum::Router::new()
        .route("/scale/{policy}", axum::routing::post(scale))
        .route("/status/{policy}", axum::routing::get(status))
        .route("/m/{policy}", axum::routing::get(metric))
        .with_state(p);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    (format!("http://{addr}"), tx)
}

fn policy(name: &str, base: &str, extra: &str) -> String {
    format!(
        r#"
[sources.s_{name}]
type = "http_json"
url = "{base}/m/{name}"

[targets.t_{name}]
type = "webhook"
url = "{base}/scale/{name}?n={{count}}"
status_url = "{base}/status/{name}"
status_pointer = "/replicas"
retries = 0
timeout = "2s"

[policies.{name}]
target = "t_{name}"
interval = "1s"
min = 1
max = 10

[policies.{name}.metrics]
cpu = {{ source = "s_{name}", query = "/cpu" }}

[policies.{name}.checks.cpu]
strategy = "threshold"
conditions = [{{ metric = "cpu", upper = 80, lower = 20 }}]
{extra}"#
    )
}

const COUNTER: &str = r#"
[policies.cool.checks.count]
strategy = "lua"
source = """
function decide(ctx)
  ctx.state.n = (ctx.state.n or 0) + 1
  return nil, "tick " .. ctx.state.n
end
"""

[policies.cool.behaviour]
scale_down = { stabilization = "0s", cooldown = "1h" }
"#;

fn config(etcd: &str, base: &str) -> String {
    let mut text =
        format!("[server]\nlisten = \"127.0.0.1:0\"\n\n[cluster]\netcd = [\"{etcd}\"]\nlease_ttl = \"{TTL_SECS}s\"\n");
    for p in POLICIES {
        text += &policy(p, base, &format!("\n[policies.{p}.behaviour]\nscale_down = {{ stabilization = \"0s\" }}\n"));
    }
    text += &policy("cool", base, COUNTER);
    text
}

struct Instance {
    name: String,
    child: Child,
}

impl Instance {
    fn start(name: &str, config: &Path, dir: &Path) -> Instance {
        let child = Command::new(env!("CARGO_BIN_EXE_moontide"))
            .args(["run", "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(dir.join(format!("state-{name}")))
            .env("MOONTIDE_INSTANCE", name)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        Instance { name: name.to_string(), child }
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// policy → (owner, fencing token), as etcd has it.
async fn owners(c: &mut etcd_client::Client) -> BTreeMap<String, (String, i64)> {
    let resp = c.get("/moontide/owners/", Some(GetOptions::new().with_prefix())).await.unwrap();
    resp.kvs()
        .iter()
        .map(|kv| {
            let policy = kv.key_str().unwrap().trim_start_matches("/moontide/owners/").to_string();
            (policy, (kv.value_str().unwrap().to_string(), kv.create_revision()))
        })
        .collect()
}

async fn wait_for<F: std::future::Future<Output = bool>>(limit: Duration, mut cond: impl FnMut() -> F) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The instances' logs, for failure messages.
fn logs(dir: &Path, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("--- {n}\n{}", std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until all seven policies of [`config`] are owned, spread over `instances` distinct owners.
async fn spread_over(c: &etcd_client::Client, instances: usize) -> bool {
    wait_for(Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            let o = owners(&mut c).await;
            let distinct: std::collections::BTreeSet<_> = o.values().map(|(i, _)| i.clone()).collect();
            o.len() == 7 && distinct.len() == instances
        }
    })
    .await
}

fn all_policies() -> Vec<String> {
    POLICIES.iter().map(|p| p.to_string()).chain(["cool".to_string()]).collect()
}

/// The Lua tick counter of each shared decision of `cool`, in time order.
async fn shared_counter(c: &mut etcd_client::Client) -> Vec<i64> {
    let resp = c.get("/moontide/decisions/cool/", Some(GetOptions::new().with_prefix())).await.unwrap();
    resp.kvs()
        .iter()
        .filter_map(|kv| {
            let d: Value = serde_json::from_slice(kv.value()).ok()?;
            let checks = d["checks"].as_array()?;
            checks.iter().find(|c| c["check"] == "count")?["state"]["n"].as_i64()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_own_each_policy_once_and_fail_over_safely() {
    let Some(etcd) = Etcd::start().await else { return };
    let mut c = etcd.client().await;
    let platform = Arc::new(Platform::default());
    platform.cpu.lock().unwrap().insert("cool".into(), 95.0);
    let (base, stop) = serve(platform.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moontide.toml");
    std::fs::write(&path, config(&etcd.url, &base)).unwrap();
    let mut instances: Vec<Instance> =
        ["i0", "i1", "i2"].iter().map(|n| Instance::start(n, &path, dir.path())).collect();
    let logs = |dir: &Path| logs(dir, &["i0", "i1", "i2"]);

    // every policy owned, spread over the instances
    let spread = spread_over(&c, 3).await;
    assert!(spread, "policies not owned by all three: {:?}\n{}", owners(&mut c).await, logs(dir.path()));
    let before = owners(&mut c).await;
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), {
        let mut all = all_policies();
        all.sort();
        all
    });

    // cool scales up once, then its load drops: the 1 h scale-down cooldown holds it
    assert!(wait_for(Duration::from_secs(20), || async { platform.count("cool") >= 2 }).await, "cool never scaled up");
    platform.cpu.lock().unwrap().insert("cool".into(), 5.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (cool_high, cool_seen) = (platform.count("cool"), platform.acts().len());
    for p in POLICIES {
        let p = p.to_string();
        assert!(
            wait_for(Duration::from_secs(20), || async { platform.acts().iter().any(|a| a.policy == p) }).await,
            "{p} was never actuated"
        );
    }

    // kill -9 the owner of cool: its policies move to the survivors
    let victim_name = before["cool"].0.clone();
    let victim_policies: Vec<String> =
        before.iter().filter(|(_, (o, _))| *o == victim_name).map(|(p, _)| p.clone()).collect();
    let counter_before = shared_counter(&mut c).await;
    let idx = instances.iter().position(|i| i.name == victim_name).unwrap();
    let killed_at = Instant::now();
    instances[idx].child.kill().unwrap();
    let _ = instances[idx].child.wait();
    let moved = wait_for(Duration::from_secs(30), || {
        let mut c = c.clone();
        let (victim, vp) = (victim_name.clone(), victim_policies.clone());
        async move {
            let o = owners(&mut c).await;
            vp.iter().all(|p| o.get(p).is_some_and(|(owner, _)| *owner != victim))
        }
    })
    .await;
    assert!(moved, "the killed owner's policies did not move: {:?}\n{}", owners(&mut c).await, logs(dir.path()));
    println!(
        "failover after kill -9: {} policies moved in {:.2} s (lease TTL {TTL_SECS} s, interval 1 s)",
        victim_policies.len(),
        killed_at.elapsed().as_secs_f64()
    );

    // the new owner of cool carries on: its Lua counter continues and the cooldown still holds
    let new_owner_acts = wait_for(Duration::from_secs(20), || {
        let mut c = c.clone();
        let n = counter_before.len();
        async move { shared_counter(&mut c).await.len() > n + 3 }
    })
    .await;
    assert!(new_owner_acts, "the new owner of cool never ticked\n{}", logs(dir.path()));
    let counter = shared_counter(&mut c).await;
    for w in counter.windows(2) {
        assert!(w[1] > w[0], "the Lua state was reset by the failover: {counter:?}");
    }
    assert!(platform.count("cool") >= cool_high, "cool was scaled down inside its cooldown after the failover");
    let later: Vec<Act> = platform.acts().into_iter().skip(cool_seen).filter(|a| a.policy == "cool").collect();
    assert!(later.iter().all(|a| a.n >= cool_high), "cool scaled down inside its cooldown: {later:?}");

    // SIGSTOP an owner past its lease, let the others take over, SIGCONT it
    let now_owners = owners(&mut c).await;
    let frozen_name = now_owners["p0"].0.clone();
    let frozen_tokens: BTreeMap<String, i64> =
        now_owners.iter().filter(|(_, (o, _))| *o == frozen_name).map(|(p, (_, t))| (p.clone(), *t)).collect();
    let frozen = instances.iter().find(|i| i.name == frozen_name).unwrap();
    frozen.signal(Signal::SIGSTOP);
    let taken = wait_for(Duration::from_secs(30), || {
        let mut c = c.clone();
        let ft = frozen_tokens.clone();
        async move {
            let o = owners(&mut c).await;
            ft.iter().all(|(p, t)| o.get(p).is_some_and(|(_, token)| token != t))
        }
    })
    .await;
    assert!(taken, "the frozen owner's policies were not taken over\n{}", logs(dir.path()));
    let taken_at = Instant::now();
    frozen.signal(Signal::SIGCONT);
    tokio::time::sleep(Duration::from_secs(3 * TTL_SECS)).await;
    let acts = platform.acts();
    let late: Vec<&Act> =
        acts.iter().filter(|a| a.at > taken_at && frozen_tokens.get(&a.policy) == Some(&a.token)).collect();
    let late_accepted = late.iter().filter(|a| a.accepted).count();
    println!(
        "after SIGCONT: {} request(s) with the old owner's tokens, {} accepted; {} rejected in all",
        late.len(),
        late_accepted,
        platform.rejected.load(Ordering::SeqCst)
    );
    assert_eq!(late_accepted, 0, "the old owner actuated after losing ownership: {late:?}");

    // never two owners in one period: per policy, accepted tokens only grow
    let mut seen: HashMap<String, i64> = HashMap::new();
    for a in acts.iter().filter(|a| a.accepted) {
        let last = seen.entry(a.policy.clone()).or_default();
        assert!(a.token >= *last, "{} went back from token {} to {}", a.policy, last, a.token);
        *last = a.token;
    }
    let ever = owners(&mut c).await;
    assert_eq!(ever.len(), 7, "{ever:?}");
    drop(instances);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_reach_etcd_over_mutual_tls_and_one_without_a_certificate_is_refused() {
    let pki = pki::Pki::new();
    let Some(etcd) = Etcd::start_tls(&pki).await else { return };
    let mut c = etcd.client().await;
    let platform = Arc::new(Platform::default());
    let (base, stop) = serve(platform.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let tls = |cert: bool| {
        let mut t = format!("ca_file = \"{}\"\n", pki.path("ca.pem").display());
        if cert {
            t += &format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                pki.path("client.pem").display(),
                pki.path("client.key").display()
            );
        }
        config(&etcd.url, &base).replacen("[cluster]\n", &format!("[cluster]\n{t}"), 1)
    };
    let with_cert = dir.path().join("with.toml");
    std::fs::write(&with_cert, tls(true)).unwrap();
    let _i0 = Instance::start("i0", &with_cert, dir.path());
    let owned_by_i0 = wait_for(Duration::from_secs(30), || {
        let mut c = c.clone();
        async move { owners(&mut c).await.values().filter(|(o, _)| o == "i0").count() == all_policies().len() }
    })
    .await;
    let log = |n: &str| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default();
    assert!(owned_by_i0, "i0 never owned every policy over TLS:\n{}", log("i0"));

    // the CA alone is not enough: etcd asks for a client certificate, and the instance stops with the reason
    let without = dir.path().join("without.toml");
    std::fs::write(&without, tls(false)).unwrap();
    let mut i1 = Instance::start("i1", &without, dir.path());
    let mut status = None;
    for _ in 0..300 {
        status = i1.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| panic!("i1 kept running without a client certificate:\n{}", log("i1")));
    assert!(!status.success());
    assert!(log("i1").contains("cannot reach etcd at https://127.0.0.1"), "{}", log("i1"));
    assert!(log("i1").contains("give cluster.cert_file and cluster.key_file"), "{}", log("i1"));
    assert!(owners(&mut c).await.values().all(|(o, _)| o == "i0"));
    let _ = stop.send(());
}

const OPERATOR: &str = "mt_cluster-operator-token-for-tests-0000000000";

/// One instance's API, answering as the operator.
async fn api(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{base}/api/v1{path}")).bearer_auth(OPERATOR);
    if let Some(b) = body {
        req = req.json(&b);
    }
    // longer than the instance's own wait for etcd (5 s), so that its answer is seen
    match req.timeout(Duration::from_secs(15)).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// Starts one instance of [`config`] per name, each with its API on a port
/// of its own and the operator's token; returns them and name → API base URL.
fn start_with_api(names: &[&str], dir: &Path, etcd: &str, base: &str) -> (Vec<Instance>, BTreeMap<String, String>) {
    let mut apis = BTreeMap::new();
    let mut instances = Vec::new();
    for name in names {
        let port = etcd::free_port();
        let server = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [{{ name = \"olga\", role = \"operator\", sha256 = \"{}\" }}]\n",
            moontide::server::auth::hash(OPERATOR)
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config(etcd, base).replacen("[server]\nlisten = \"127.0.0.1:0\"\n", &server, 1)).unwrap();
        instances.push(Instance::start(name, &path, dir));
        apis.insert(name.to_string(), format!("http://127.0.0.1:{port}"));
    }
    (instances, apis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_sent_to_any_instance_reaches_the_policys_owner() {
    let Some(etcd) = Etcd::start().await else { return };
    let mut c = etcd.client().await;
    let platform = Arc::new(Platform::default());
    let (base, stop) = serve(platform.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (instances, apis) = start_with_api(&["i0", "i1"], dir.path(), &etcd.url, &base);
    let logs = || logs(dir.path(), &["i0", "i1"]);
    // both instances own some policies: the hand-overs that follow a join are done
    let spread = spread_over(&c, 2).await;
    assert!(spread, "policies not spread over both instances: {:?}\n{}", owners(&mut c).await, logs());
    let ready = wait_for(Duration::from_secs(20), || {
        let apis = apis.clone();
        async move {
            for base in apis.values() {
                if api(base, reqwest::Method::GET, "/policies/p0", None).await.0 != 200 {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(ready, "the APIs never answered\n{}", logs());
    let (owner, token) = owners(&mut c).await["p0"].clone();
    let other = if owner == "i0" { "i1" } else { "i0" };
    let acted = |since: usize| platform.acts().iter().skip(since).filter(|a| a.policy == "p0" && a.accepted).count();
    assert!(wait_for(Duration::from_secs(20), || async { acted(0) > 0 }).await, "p0 never scaled\n{}", logs());

    // paused through the instance that does not own p0
    let (status, body) =
        api(&apis[other], reqwest::Method::POST, "/policies/p0/pause", Some(json!({ "reason": "maintenance" }))).await;
    assert_eq!(status, 200, "{body}");
    let done = body["done"].as_str().unwrap_or_default().to_string();
    assert!(!done.contains("not shared"), "{done}");
    let paused_at = Instant::now();
    let reached = wait_for(Duration::from_secs(10), || async {
        api(&apis[&owner], reqwest::Method::GET, "/policies/p0", None).await.1["paused"]["reason"] == "maintenance"
    })
    .await;
    assert!(reached, "the owner {owner} never saw the pause sent to {other}\n{}", logs());
    println!(
        "a pause sent to {other} was in force on the owner {owner} {:.2} s later (lease TTL {TTL_SECS} s)",
        paused_at.elapsed().as_secs_f64()
    );
    // an actuation already under way when the pause arrived may still land; after that, none
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = platform.acts().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let late: Vec<Act> = platform.acts().into_iter().skip(seen).filter(|a| a.policy == "p0").collect();
    assert!(late.is_empty(), "p0 was actuated while paused: {late:?}\n{}", logs());
    // on a loaded machine a lease may lapse and p0 move: then its new owner has the pause too
    let (now_owner, now_token) = owners(&mut c).await["p0"].clone();
    if (now_owner.clone(), now_token) != (owner.clone(), token) {
        let paused = api(&apis[&now_owner], reqwest::Method::GET, "/policies/p0", None).await.1;
        assert_eq!(paused["paused"]["reason"], "maintenance", "p0 moved to {now_owner} without its pause: {paused}");
    }
    // other policies kept scaling meanwhile: the pause is p0's alone
    let others = platform.acts().iter().skip(seen).filter(|a| a.policy != "p0" && a.accepted).count();
    assert!(others > 0, "no policy was actuated while p0 was paused\n{}", logs());

    // resumed through the same instance: the owner scales p0 again
    let (status, body) = api(&apis[other], reqwest::Method::POST, "/policies/p0/resume", Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let seen = platform.acts().len();
    let again = wait_for(Duration::from_secs(20), || async { acted(seen) > 0 }).await;
    assert!(again, "p0 was not scaled after the resume\n{}", logs());
    drop(instances);
    let _ = stop.send(());
}

/// A cluster config with one script-mode policy whose script asks for one
/// replica more, then one fewer, every second.
fn script_config(etcd: &str, base: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[cluster]
etcd = ["{etcd}"]
lease_ttl = "{TTL_SECS}s"

[targets.t_s]
type = "webhook"
url = "{base}/scale/s?n={{count}}"
status_url = "{base}/status/s"
status_pointer = "/replicas"
retries = 0
timeout = "2s"

[policies.s]
target = "t_s"
min = 1
max = 10

[policies.s.script]
allow_hosts = []
urls = {{ "http://provider.test/up" = {{ action = "scale_up" }}, "http://provider.test/down" = {{ action = "scale_down" }} }}
source = '''
local socket = require("socket")
local http = require("socket.http")
while true do
  http.request("http://provider.test/up")
  socket.sleep(1)
  http.request("http://provider.test/down")
  socket.sleep(1)
end
'''

[policies.s.behaviour]
scale_down = {{ stabilization = "0s" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_mode_policy_runs_on_its_owner_alone_and_moves_with_it() {
    let Some(etcd) = Etcd::start().await else { return };
    let mut c = etcd.client().await;
    let platform = Arc::new(Platform::default());
    let (base, stop) = serve(platform.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moontide.toml");
    std::fs::write(&path, script_config(&etcd.url, &base)).unwrap();
    let logs = || logs(dir.path(), &["i0", "i1"]);
    let mut instances = vec![Instance::start("i0", &path, dir.path()), Instance::start("i1", &path, dir.path())];
    let two_members_one_owner = wait_for(Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            let members = c.get("/moontide/members/", Some(GetOptions::new().with_prefix())).await.unwrap();
            members.kvs().len() == 2 && owners(&mut c).await.contains_key("s")
        }
    })
    .await;
    assert!(two_members_one_owner, "the script-mode policy was never owned by one of two instances\n{}", logs());
    // settled: the same owner over a few rounds (a join may hand the policy over once)
    let mut last = owners(&mut c).await["s"].clone();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(TTL_SECS)).await;
        let now = owners(&mut c).await["s"].clone();
        if now == last {
            break;
        }
        last = now;
    }
    let (owner, token) = owners(&mut c).await["s"].clone();
    let seen = platform.acts().len();
    let by = |since: usize, token: i64| {
        platform.acts().iter().skip(since).filter(|a| a.policy == "s" && a.accepted && a.token == token).count()
    };
    assert!(
        wait_for(Duration::from_secs(20), || async { by(seen, token) >= 3 }).await,
        "the owner {owner}'s script did not act\n{}",
        logs()
    );
    let others: Vec<Act> = platform.acts().into_iter().skip(seen).filter(|a| a.token != token).collect();
    assert!(others.is_empty(), "something besides the owner's script acted: {others:?}\n{}", logs());

    // the owner dies: the survivor owns the policy and starts the script
    let idx = instances.iter().position(|i| i.name == owner).unwrap();
    let killed_at = Instant::now();
    instances[idx].child.kill().unwrap();
    let _ = instances[idx].child.wait();
    let moved = wait_for(Duration::from_secs(30), || {
        let mut c = c.clone();
        let owner = owner.clone();
        async move { owners(&mut c).await.get("s").is_some_and(|(o, _)| *o != owner) }
    })
    .await;
    assert!(moved, "the script-mode policy did not move after kill -9\n{}", logs());
    let (survivor, new_token) = owners(&mut c).await["s"].clone();
    assert!(new_token > token, "{new_token} after {token}");
    let seen = platform.acts().len();
    assert!(
        wait_for(Duration::from_secs(20), || async { by(seen, new_token) >= 3 }).await,
        "{survivor} owns the policy but its script did not act\n{}",
        logs()
    );
    let first = platform.acts().into_iter().find(|a| a.token == new_token).map(|a| a.at - killed_at);
    println!(
        "script-mode failover after kill -9: {survivor}'s script acted first {:.2} s after the kill",
        first.unwrap_or_default().as_secs_f64()
    );
    let stale: Vec<Act> = platform.acts().into_iter().skip(seen).filter(|a| a.token != new_token).collect();
    assert!(stale.is_empty(), "actions not from the new owner's script: {stale:?}");
    drop(instances);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_started_from_settings_changed_meanwhile_is_refused_and_theirs_stand() {
    use moontide::cluster::{Cluster, ClusterConfig, ControlSharing};
    use moontide::engine::control::{Control, OperatorState, Pause};
    use moontide::engine::shared::SharedControls;

    let Some(etcd) = Etcd::start().await else { return };
    let mut c = etcd.client().await;
    let dir = tempfile::tempdir().unwrap();
    let store = moontide::store::Store::open(dir.path()).unwrap();
    let control = Arc::new(Control::new("p", "t", Duration::from_secs(1), 1, 10, false));
    let cfg: ClusterConfig = toml::from_str(&format!("etcd = [\"{}\"]\ninstance = \"a\"", etcd.url)).unwrap();
    let clock = Arc::new(moontide::engine::SystemClock);
    let cluster = Cluster::join(&cfg, vec![control.clone()], store.clone(), clock).await.unwrap();
    let sharing = ControlSharing(cluster);
    let pause = |by: &str| OperatorState {
        paused: Some(Pause { by: by.into(), reason: "test".into(), since: moontide_core::Timestamp::from_secs(1) }),
        ..Default::default()
    };

    // nothing set yet: a change from revision 0 is written
    let rev = sharing.refresh("p".into()).await.unwrap();
    assert_eq!(rev, 0);
    control.update(|s| s.operator = pause("olga"));
    assert!(sharing.publish("p".into(), pause("olga"), rev).await.unwrap());

    // read, then another instance writes before this change is shared: refused, theirs taken here
    let rev = sharing.refresh("p".into()).await.unwrap();
    let theirs = OperatorState { dry_run: Some(true), ..pause("vic") };
    c.put("/moontide/controls/p", serde_json::to_string(&theirs).unwrap(), None).await.unwrap();
    let mine = OperatorState::default();
    control.update(|s| s.operator = mine.clone());
    assert!(!sharing.publish("p".into(), mine, rev).await.unwrap(), "a stale change was written over theirs");
    assert_eq!(control.operator(), theirs, "the refused change is not left in force here");
    let saved: OperatorState = serde_json::from_str(&store.control("p").unwrap().unwrap()).unwrap();
    assert_eq!(saved, theirs, "what stands is what this instance starts from next time");
    let in_etcd = c.get("/moontide/controls/p", None).await.unwrap();
    let in_etcd: OperatorState = serde_json::from_slice(in_etcd.kvs()[0].value()).unwrap();
    assert_eq!(in_etcd, theirs);

    // sent again from what stands now, it goes through
    let rev = sharing.refresh("p".into()).await.unwrap();
    control.update(|s| s.operator = OperatorState::default());
    assert!(sharing.publish("p".into(), OperatorState::default(), rev).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_while_etcd_is_unreachable_is_refused_and_changes_nothing() {
    let Some(mut etcd) = Etcd::start().await else { return };
    let platform = Arc::new(Platform::default());
    let (base, stop) = serve(platform.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (instances, apis) = start_with_api(&["i0"], dir.path(), &etcd.url, &base);
    let logs = || logs(dir.path(), &["i0"]);
    let api0 = &apis["i0"];
    let ready = wait_for(Duration::from_secs(20), || async {
        api(api0, reqwest::Method::GET, "/policies/p0", None).await.0 == 200
    })
    .await;
    assert!(ready, "the API never answered\n{}", logs());

    etcd.stop();
    let (status, body) =
        api(api0, reqwest::Method::POST, "/policies/p0/pause", Some(json!({ "reason": "maintenance" }))).await;
    assert_eq!(status, 503, "{body}\n{}", logs());
    let why = body["error"].as_str().unwrap_or_default();
    assert!(why.contains("etcd") && why.contains("nothing was changed"), "{body}");
    // the refused change is in force nowhere: not here, and not in the store a restart reads
    let (status, view) = api(api0, reqwest::Method::GET, "/policies/p0", None).await;
    assert_eq!(status, 200, "{view}");
    assert!(view["paused"].is_null(), "paused although the change was refused: {view}");
    drop(instances);
    let store = moontide::store::Store::open(&dir.path().join("state-i0")).unwrap();
    if let Some(saved) = store.control("p0").unwrap() {
        let saved: moontide::engine::control::OperatorState = serde_json::from_str(&saved).unwrap();
        assert!(saved.paused.is_none(), "the refused change was saved: {saved:?}");
    }
    let _ = stop.send(());
}

/// Shares through etcd, but etcd crashes right after the change's read: the
/// write that follows fails for real.
struct CrashAfterRead {
    inner: moontide::cluster::ControlSharing,
    etcd: Mutex<Option<Etcd>>,
}

impl moontide::engine::shared::SharedControls for CrashAfterRead {
    fn refresh(&self, policy: String) -> moontide_lua::script::BoxFuture<Result<i64, String>> {
        let read = self.inner.refresh(policy);
        let etcd = self.etcd.lock().unwrap().take();
        Box::pin(async move {
            let r = read.await;
            if let Some(mut etcd) = etcd {
                etcd.stop();
            }
            r
        })
    }

    fn publish(
        &self,
        policy: String,
        state: moontide::engine::control::OperatorState,
        revision: i64,
    ) -> moontide_lua::script::BoxFuture<Result<bool, String>> {
        self.inner.publish(policy, state, revision)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_etcd_cannot_take_after_reading_is_undone_and_refused() {
    use moontide::cluster::{Cluster, ClusterConfig, ControlSharing};
    use moontide::engine::control::Control;

    let Some(etcd) = Etcd::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = moontide::store::Store::open(dir.path()).unwrap();
    let control = Arc::new(Control::new("p", "t", Duration::from_secs(1), 1, 10, false));
    let cfg: ClusterConfig = toml::from_str(&format!("etcd = [\"{}\"]\ninstance = \"a\"", etcd.url)).unwrap();
    let clock: Arc<dyn moontide_core::Clock> = Arc::new(moontide::engine::SystemClock);
    let cluster = Cluster::join(&cfg, vec![control.clone()], store.clone(), clock.clone()).await.unwrap();
    let sharing = CrashAfterRead { inner: ControlSharing(cluster), etcd: Mutex::new(Some(etcd)) };
    let tokens: Vec<moontide::server::auth::TokenConfig> = toml::from_str::<moontide::server::ServerConfig>(&format!(
        "tokens = [{{ name = \"olga\", role = \"operator\", sha256 = \"{}\" }}]",
        moontide::server::auth::hash(OPERATOR)
    ))
    .unwrap()
    .tokens;
    let live = moontide::server::Live {
        pushes: BTreeMap::new(),
        controls: [("p".to_string(), control.clone())].into(),
        tokens,
        shared_controls: Some(Arc::new(sharing)),
    };
    let api_state = moontide::server::ApiState {
        store: store.clone(),
        decisions: tokio::sync::broadcast::channel(16).0,
        clock,
        reload: None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let state = moontide::server::State::new(live, Some(api_state));
    let (addr, server) = moontide::server::start("127.0.0.1:0".parse().unwrap(), state, None, stopped).await.unwrap();

    let (status, body) = api(
        &format!("http://{addr}"),
        reqwest::Method::POST,
        "/policies/p/pause",
        Some(json!({ "reason": "maintenance" })),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let why = body["error"].as_str().unwrap_or_default();
    assert!(why.contains("cannot share this change through etcd") && why.contains("nothing was changed"), "{body}");
    assert_eq!(control.operator().paused, None, "the change stayed in force here");
    assert_eq!(store.control("p").unwrap(), None, "the change was saved");
    stop.send(true).unwrap();
    let _ = server.await;
}
