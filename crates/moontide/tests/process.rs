//! The `process` target with real child processes: grow, shrink,
//! crash-restart, SIGKILL after the grace period, no orphans after
//! shutdown, after a copy exits or after `moontide run` gets SIGTERM /
//! SIGINT, and HTTP readiness probes that never go through a proxy.

mod common;

use common::{alive, children_of, group_members, wait_until};
use moontide::store::{Query as StoreQuery, Store};
use moontide::targets::process::{ProcessConfig, ProcessPool};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::path::Path;
use std::time::Duration;

fn pool_config(command: &[&str]) -> ProcessConfig {
    let mut c: ProcessConfig = toml::from_str("command = [\"true\"]").unwrap();
    c.command = command.iter().map(|s| s.to_string()).collect();
    c.grace = Duration::from_millis(500);
    c
}

fn pids(pool: &ProcessPool) -> Vec<u32> {
    pool.instances().borrow().iter().filter_map(|i| i.pid).collect()
}

#[tokio::test]
async fn grows_shrinks_restarts_and_leaves_nothing_behind() {
    let pool = ProcessPool::start("p", pool_config(&["sleep", "300"]));
    pool.scale(3, "k1").await.unwrap();
    let st = pool.status().await.unwrap();
    assert_eq!(st.current, 3);
    let first = pids(&pool);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|p| alive(*p)));
    let idx: Vec<u32> = pool.instances().borrow().iter().map(|i| i.index).collect();
    assert_eq!(idx, [0, 1, 2]);
    let ports: Vec<u16> = pool.instances().borrow().iter().map(|i| i.port).collect();
    assert!(ports.iter().all(|p| *p > 0) && ports[0] != ports[1]);

    // shrink: the highest indices go, and their processes are gone (reaped)
    pool.scale(1, "k2").await.unwrap();
    assert_eq!(pool.status().await.unwrap().current, 1);
    assert!(alive(first[0]));
    assert!(!alive(first[1]) && !alive(first[2]));

    // crash: the copy is restarted under the same index
    kill(Pid::from_raw(first[0] as i32), Signal::SIGKILL).unwrap();
    let inst = pool.instances();
    assert!(
        wait_until(Duration::from_secs(10), || {
            inst.borrow().first().is_some_and(|i| i.restarts == 1 && i.pid.is_some_and(|p| p != first[0]))
        })
        .await,
        "crashed copy restarted: {:?}",
        inst.borrow()
    );
    let restarted = pids(&pool);
    assert!(alive(restarted[0]));

    pool.shutdown().await;
    assert!(!alive(restarted[0]));
    assert!(pool.status().await.is_err(), "a shut-down pool says so");
}

#[tokio::test]
async fn copies_that_ignore_sigterm_get_sigkill_after_the_grace_period() {
    let pool = ProcessPool::start("p", pool_config(&["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]));
    pool.scale(1, "k").await.unwrap();
    let pid = pids(&pool)[0];
    // let the shell install its trap
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.scale(0, "k2").await.unwrap();
    assert!(!alive(pid));
}

#[tokio::test]
async fn templating_gives_each_copy_its_index_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!("echo \"$0 {{index}} {{port}} $MOONTIDE_PORT\" >> {}; exec sleep 300", out.display());
    let pool = ProcessPool::start("p", pool_config(&["sh", "-c", &script, "copy"]));
    pool.scale(2, "k").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&out).is_ok_and(|s| s.lines().count() == 2))
            .await
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let ports: Vec<u16> = pool.instances().borrow().iter().map(|i| i.port).collect();
    for (i, port) in ports.iter().enumerate() {
        assert!(text.contains(&format!("copy {i} {port} {port}")), "{text}");
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let pool = ProcessPool::start("p", pool_config(&["/nonexistent/moontide-test-binary"]));
    let err = pool.scale(1, "k").await.unwrap_err();
    assert!(err.message.contains("cannot start `/nonexistent/moontide-test-binary`"), "{}", err.message);
    assert_eq!(pool.status().await.unwrap().current, 0);
    pool.shutdown().await;
}

const RUN_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[sources.machine]
type = "host"

[targets.pool]
type = "process"
command = ["sleep", "300"]
grace = "1s"

[policies.pool]
target = "pool"
interval = "1s"
min = 2
max = 3

[policies.pool.metrics]
cpu = { source = "machine", query = "cpu" }

[policies.pool.checks.cpu]
strategy = "threshold"
conditions = [{ metric = "cpu", upper = 101 }]
"#;

async fn run_and_signal(signal: Signal) {
    let (dir, path) = common::config_file(RUN_CONFIG);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["run", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let me = child.id().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || children_of(me).len() == 2).await,
        "two copies started: {:?}",
        children_of(me)
    );
    let copies = children_of(me);
    kill(Pid::from_raw(me as i32), signal).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{signal}: {status}");
    for pid in copies {
        assert!(!alive(pid), "copy {pid} left behind after {signal}");
    }
}

#[tokio::test]
async fn no_orphans_after_sigterm() {
    run_and_signal(Signal::SIGTERM).await;
}

#[tokio::test]
async fn no_orphans_after_sigint() {
    run_and_signal(Signal::SIGINT).await;
}

#[tokio::test]
async fn a_crash_looping_copy_backs_off() {
    let pool = ProcessPool::start("p", pool_config(&["sh", "-c", "exit 1"]));
    let started = std::time::Instant::now();
    pool.scale(1, "k").await.unwrap();
    let inst = pool.instances();
    assert!(
        wait_until(Duration::from_secs(30), || inst.borrow().first().is_some_and(|i| i.restarts >= 3)).await,
        "{:?}",
        inst.borrow()
    );
    // waits of 0.5 s, 1 s and 2 s come before the third restart
    assert!(started.elapsed() >= Duration::from_millis(3500), "{:?}", started.elapsed());
    pool.shutdown().await;
}

#[tokio::test]
async fn what_an_exited_copy_left_in_its_group_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let leader = dir.path().join("pgid");
    // the copy exits at once, leaving a `sleep` behind in its process group
    let script = format!("sleep 300 & echo $$ > '{}'; exit 1", leader.display());
    let mut cfg = pool_config(&["sh", "-c", &script]);
    cfg.restart = false;
    let pool = ProcessPool::start("p", cfg);
    pool.scale(1, "k").await.unwrap();
    let pgid = || std::fs::read_to_string(&leader).ok().and_then(|s| s.trim().parse::<u32>().ok());
    assert!(wait_until(Duration::from_secs(10), || pgid().is_some()).await, "the copy never ran");
    let group = pgid().unwrap();
    let inst = pool.instances();
    assert!(
        wait_until(Duration::from_secs(10), || inst.borrow().is_empty()).await,
        "the exited copy (not restarted) is still listed: {:?}",
        inst.borrow()
    );
    let emptied = wait_until(Duration::from_secs(5), || group_members(group).is_empty()).await;
    let left = group_members(group);
    if !left.is_empty() {
        let _ = killpg(Pid::from_raw(group as i32), Signal::SIGKILL);
    }
    assert!(emptied, "left running in the exited copy's group {group}: {left:?}");
    pool.shutdown().await;
}

/// Whether a decision of policy `pool` in the store at `state` saw a ready copy.
fn saw_ready(state: &Path) -> bool {
    let Ok(store) = Store::open_existing(state) else { return false };
    let q = StoreQuery { policy: Some("pool".into()), limit: 100, ..Default::default() };
    store.list(&q).unwrap_or_default().iter().any(|d| d.ready >= 1)
}

#[tokio::test]
async fn http_readiness_probes_do_not_go_through_a_proxy() {
    let config = r#"
[server]
listen = "127.0.0.1:0"

[sources.machine]
type = "host"

[targets.pool]
type = "process"
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
ready = "http"
grace = "1s"

[policies.pool]
target = "pool"
interval = "1s"
min = 1
max = 1

[policies.pool.metrics]
cpu = { source = "machine", query = "cpu" }

[policies.pool.checks.cpu]
strategy = "threshold"
conditions = [{ metric = "cpu", upper = 101 }]
"#;
    let (dir, path) = common::config_file(config);
    let state = dir.path().join("state");
    // a proxy that refuses every connection: a probe sent through it never succeeds
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["run", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(&state)
        .current_dir(dir.path())
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .env("http_proxy", "http://127.0.0.1:1")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("REQUEST_METHOD") // a CGI environment's HTTP_PROXY is ignored
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = wait_until(Duration::from_secs(30), || saw_ready(&state)).await;
    // stop moontide, and with it the copy, before judging
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(ready, "with HTTP_PROXY set, the copy never counted as ready (moontide: {status})");
    assert!(status.success(), "{status}");
}
