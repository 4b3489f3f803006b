//! The `process` target with real child processes: grow, shrink,
//! crash-restart, SIGKILL after the grace period, and no orphans after
//! shutdown or after `moontide run` gets SIGTERM / SIGINT.

mod common;

use common::{alive, children_of, wait_until};
use moontide::targets::process::{ProcessConfig, ProcessPool};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
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
