//! Decisions older than `keep_decisions` are deleted by the running daemon.

mod common;

use common::{TestServer, json, text};
use moontide::store::{Query, Store};
use moontide_core::{Decision, Outcome, Timestamp};
use serde_json::json as j;
use std::time::{Duration, Instant};

fn decision(at: Timestamp, outcome: Outcome) -> Decision {
    let mut d = Decision::skipped("web", at, 2, 2, "from before");
    d.outcome = outcome;
    d
}

#[tokio::test]
async fn the_daemon_deletes_decisions_older_than_keep_decisions_at_start() {
    let metrics = TestServer::start(|_, _| json(200, j!({"cpu": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (dir, path) = common::config_file(&format!(
        "keep_decisions = \"2h\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[sources.app]\ntype = \"http_json\"\nurl = \"{}\"\n\n\
         [targets.a]\ntype = \"webhook\"\nurl = \"{}\"\ninitial = 2\n\n\
         [policies.web]\ntarget = \"a\"\ninterval = \"1h\"\nmin = 1\nmax = 5\n\
         metrics = {{ cpu = {{ source = \"app\", query = \"/cpu\" }} }}\n\
         checks = {{ cpu = {{ strategy = \"target_tracking\", targets = [{{ metric = \"cpu\", target = 50 }}] }} }}\n",
        metrics.url("/m"),
        cloud.url("/a"),
    ));
    let state = dir.path().join("state");
    let now = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
    );
    {
        let store = Store::open(&state).unwrap();
        // three days ago: an actuation (kept, however old) and two holds; an hour ago: a hold
        store
            .append(&decision(now.minus(Duration::from_secs(3 * 86_400)), Outcome::Scaled { from: 2, to: 3 }))
            .unwrap();
        for s in [3 * 86_400 - 10, 3 * 86_400 - 20] {
            store.append(&decision(now.minus(Duration::from_secs(s)), Outcome::Hold)).unwrap();
        }
        store.append(&decision(now.minus(Duration::from_secs(3_600)), Outcome::Hold)).unwrap();
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["run", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let reasons = || {
        let store = Store::open_existing(&state).unwrap();
        let all = store.list(&Query { limit: 100, ..Default::default() }).unwrap();
        all.iter()
            .filter(|d| d.reason.ends_with("from before"))
            .map(|d| d.outcome.kind().to_string())
            .collect::<Vec<_>>()
    };
    let end = Instant::now() + Duration::from_secs(30);
    while reasons().len() > 2 {
        assert!(Instant::now() < end, "the old holds were never deleted: {:?}", reasons());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the hour-old hold and the three-day-old actuation stay
    assert_eq!(reasons(), ["hold", "scaled"]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
