//! The live engine: policies tick on their own tasks, so a policy stuck on a
//! slow source does not delay the others; shutdown stops every task.

mod common;

use common::{TestServer, json, text};
use moontide::config::Config;
use moontide::engine::{Engine, SystemClock};
use moontide::store::Store;
use moontide_core::ReadingStatus;
use serde_json::json as j;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_slow_policy_never_delays_the_others() {
    // A metrics server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let quick = TestServer::start(|_, _| json(200, j!({"cpu": 50}))).await;
    let cloud = TestServer::start(|_, _| text(200, "ok")).await;
    let config = format!(
        r#"
[sources.stuck]
type = "http_json"
url = "http://{silent_addr}/m"
timeout = "3s"

[sources.quick]
type = "http_json"
url = "{quick}"

[targets.a]
type = "webhook"
url = "{cloud}"
initial = 1

[targets.b]
type = "webhook"
url = "{cloud}"
initial = 1

[policies.slow]
target = "a"
interval = "1s"
min = 1
max = 3
metrics = {{ cpu = {{ source = "stuck", query = "/cpu" }} }}
checks = {{ cpu = {{ strategy = "target_tracking", targets = [{{ metric = "cpu", target = 50 }}] }} }}

[policies.fast]
target = "b"
interval = "200ms"
min = 1
max = 3
metrics = {{ cpu = {{ source = "quick", query = "/cpu" }} }}
checks = {{ cpu = {{ strategy = "target_tracking", targets = [{{ metric = "cpu", target = 50 }}] }} }}
"#,
        quick = quick.url("/m"),
        cloud = cloud.url("/scale"),
    );
    let (dir, path) = common::config_file(&config);
    let config = Config::load(&path).unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let engine = Engine::build(&config, store, Arc::new(SystemClock), false).unwrap();
    let mut decisions = engine.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.run(stopped));

    let mut fast_before_slow = 0;
    let slow = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let d = decisions.recv().await.unwrap();
            if d.policy == "slow" {
                return d;
            }
            fast_before_slow += 1;
        }
    })
    .await
    .expect("the slow policy decides once its source times out");
    assert!(fast_before_slow >= 3, "only {fast_before_slow} fast decisions while the slow policy waited");
    assert_eq!(slow.inputs[0].status, ReadingStatus::Failed);
    assert!(slow.inputs[0].error.as_ref().unwrap().contains("timed out"), "{:?}", slow.inputs[0]);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), runner).await.unwrap().unwrap();
    assert!(cloud.seen().is_empty(), "nothing to scale: both policies were at target or failing");
    hold.abort();
}
