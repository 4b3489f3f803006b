//! `moontide demo` end to end, shortened: real workers, real traffic, real
//! scaling, and no worker left behind at the end or after Ctrl-C.

mod common;

use common::{alive, children_of, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn the_demo_scales_up_under_load_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["demo", "--duration", "35s", "--scale", "1.0", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let me = child.id().unwrap();
    let mut seen_workers = Vec::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut out = String::new();
    let reader = tokio::spawn(async move {
        let _ = stdout.read_to_string(&mut out).await;
        out
    });
    // Watch the pool while it runs (bounded).
    let _ = wait_until(Duration::from_secs(60), || {
        for pid in children_of(me) {
            if !seen_workers.contains(&pid) {
                seen_workers.push(pid);
            }
        }
        seen_workers.len() >= 2
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(90), child.wait()).await.unwrap().unwrap();
    let out = reader.await.unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("scaled 1 → "), "the pool grows under load:\n{out}");
    assert!(out.contains("All workers stopped"), "{out}");
    assert!(seen_workers.len() >= 2, "{seen_workers:?}");
    for pid in seen_workers {
        assert!(!alive(pid), "worker {pid} left behind");
    }
    // the decisions are on disk and readable
    let history = std::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["history", "--policy", "demo", "--outcome", "scaled", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&history.stdout);
    assert!(history.status.success() && text.contains("scaled 1 → "), "{text}");
}

#[tokio::test]
async fn ctrl_c_stops_the_demo_and_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["demo", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let me = child.id().unwrap();
    assert!(wait_until(Duration::from_secs(30), || !children_of(me).is_empty()).await);
    let workers = children_of(me);
    kill(Pid::from_raw(me as i32), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} left behind after Ctrl-C");
    }
}
