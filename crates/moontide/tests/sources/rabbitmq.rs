//! The `rabbitmq` source against the machine's RabbitMQ (AMQP on
//! 127.0.0.1:5672, the management API on 127.0.0.1:15672, which `.ci/run`
//! enables), with a monitoring user and a queue of its own, removed after.

use crate::contract::{Kit, check};
use crate::servers::{Silent, service, unique};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties, types::FieldTable};
use moontide::sources::{Source, SourceConfig};
use std::time::{Duration, Instant};

const API: &str = "http://127.0.0.1:15672";

async fn api(method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> u16 {
    let mut req = reqwest::Client::new().request(method, format!("{API}{path}")).basic_auth("guest", Some("guest"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn rabbitmq_passes_the_source_contract_and_counts_ready_and_unacked() {
    if !service(5672, "RabbitMQ") || !service(15672, "RabbitMQ's management API") {
        return;
    }
    let (user, queue, password) = (unique("moontide-user"), unique("moontide-queue"), unique("mq-pw"));
    assert_eq!(
        api(
            reqwest::Method::PUT,
            &format!("/api/users/{user}"),
            Some(serde_json::json!({"password": password, "tags": "monitoring"}))
        )
        .await
            / 100,
        2
    );
    let perms = serde_json::json!({"configure": "", "write": "", "read": ".*"});
    assert_eq!(api(reqwest::Method::PUT, &format!("/api/permissions/%2F/{user}"), Some(perms)).await / 100, 2);

    let amqp =
        Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default()).await.unwrap();
    let ch = amqp.create_channel().await.unwrap();
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    for i in 0..5 {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            format!("job {i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // a consumer holds two without acknowledging them
    for _ in 0..2 {
        ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }).await.unwrap().expect("a message");
    }

    let dir = tempfile::tempdir().unwrap();
    let (pw, wrong) = (dir.path().join("pw"), dir.path().join("wrong"));
    std::fs::write(&pw, &password).unwrap();
    std::fs::write(&wrong, "not-it").unwrap();
    let cfg = |file: &std::path::Path| {
        format!("type = \"rabbitmq\"\nurl = \"{API}\"\nusername = \"{user}\"\npassword_file = \"{}\"", file.display())
    };
    let c: SourceConfig = toml::from_str(&cfg(&pw)).unwrap();
    let s = Source::build("mq", &c).unwrap();
    // the management API refreshes its figures every few seconds
    let end = Instant::now() + Duration::from_secs(30);
    let (ready, unacked, total) = loop {
        let got = s.read(&[format!("{queue} ready"), format!("{queue} unacked"), queue.clone()]).await;
        let v: Vec<f64> = got.iter().filter_map(|r| r.as_ref().ok().map(|v| v.value)).collect();
        if v == [3.0, 2.0, 5.0] || Instant::now() > end {
            break (got[0].clone(), got[1].clone(), got[2].clone());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(ready.unwrap().value, 3.0);
    assert_eq!(unacked.unwrap().value, 2.0);
    assert_eq!(total.unwrap().value, 5.0);
    let missing = s.read(&[unique("moontide-none")]).await.remove(0).unwrap_err();
    assert!(missing.contains("no queue"), "{missing}");

    let silent = Silent::start();
    check(
        "rabbitmq",
        Kit {
            healthy: cfg(&pw),
            query: format!("{queue} ready"),
            expected: 3.0,
            failing: cfg(&wrong),
            failing_query: queue.clone(),
            failing_says: "HTTP 401",
            hanging: Some(format!(
                "type = \"rabbitmq\"\nurl = \"http://{}\"\nusername = \"u\"\npassword_file = \"{}\"\ntimeout = \"300ms\"",
                silent.addr,
                pw.display()
            )),
            secret: Some(password.clone()),
            feed: None,
        },
    )
    .await;

    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    let _ = amqp.close(0, "done".into()).await;
    api(reqwest::Method::DELETE, &format!("/api/users/{user}"), None).await;
}
