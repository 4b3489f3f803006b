//! The `nats` source: the contract against a nats-server the test starts
//! with token auth (the machine's binary), and the backlog counts against
//! the machine's NATS JetStream (127.0.0.1:4222) on a stream of its own,
//! deleted after.

use crate::contract::{Kit, check};
use crate::servers::{NatsServer, Silent, service, unique};
use async_nats::jetstream::{self, consumer, stream};
use moontide::sources::{Source, SourceConfig};

/// A stream with `published` messages and a durable pull consumer `workers`
/// that has been given `taken` of them and acknowledged none.
async fn backlog(js: &jetstream::Context, name: &str, published: usize, taken: usize) -> Vec<jetstream::Message> {
    let stream = js
        .create_stream(stream::Config { name: name.into(), subjects: vec![format!("{name}.>")], ..Default::default() })
        .await
        .unwrap();
    for i in 0..published {
        js.publish(format!("{name}.job"), format!("job {i}").into()).await.unwrap().await.unwrap();
    }
    let c = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("workers".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let batch = c.fetch().max_messages(taken).messages().await.unwrap();
    use futures_util::StreamExt;
    batch.map(|m| m.unwrap()).collect().await
}

#[tokio::test]
async fn nats_passes_the_source_contract_with_token_auth() {
    let Some(server) = NatsServer::start("nats-s3cret").await else { return };
    let client =
        async_nats::ConnectOptions::new().token("nats-s3cret".into()).connect(server.url.as_str()).await.unwrap();
    let js = jetstream::new(client);
    let name = unique("moontide-stream");
    let _held = backlog(&js, &name, 6, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let (tok, wrong) = (dir.path().join("tok"), dir.path().join("wrong"));
    std::fs::write(&tok, "nats-s3cret").unwrap();
    std::fs::write(&wrong, "not-it").unwrap();
    let cfg = |file: &std::path::Path| {
        format!("type = \"nats\"\nurl = \"{}\"\ntoken_file = \"{}\"\ntimeout = \"2s\"", server.url, file.display())
    };
    let silent = Silent::start();
    check(
        "nats",
        Kit {
            healthy: cfg(&tok),
            query: format!("{name} workers"),
            expected: 6.0,
            failing: cfg(&wrong),
            failing_query: format!("{name} workers"),
            failing_says: "cannot connect",
            hanging: Some(format!("type = \"nats\"\nurl = \"nats://{}\"\ntimeout = \"300ms\"", silent.addr)),
            secret: Some("nats-s3cret".into()),
            feed: None,
        },
    )
    .await;
}

#[tokio::test]
async fn nats_counts_pending_and_unacknowledged_on_the_machines_jetstream() {
    if !service(4222, "NATS") {
        return;
    }
    let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = jetstream::new(client);
    let name = unique("moontide-stream");
    let held = backlog(&js, &name, 5, 2).await;
    assert_eq!(held.len(), 2);
    let c: SourceConfig = toml::from_str("type = \"nats\"\nurl = \"nats://127.0.0.1:4222\"").unwrap();
    let s = Source::build("n", &c).unwrap();
    let got = s
        .read(&[
            format!("{name} workers"),
            format!("{name} workers ack_pending"),
            format!("{name} workers total"),
            format!("{name} nobody"),
            "no-such-stream workers".into(),
        ])
        .await;
    assert_eq!(got[0].as_ref().unwrap().value, 3.0, "not yet delivered");
    assert_eq!(got[1].as_ref().unwrap().value, 2.0, "delivered, not acknowledged");
    assert_eq!(got[2].as_ref().unwrap().value, 5.0);
    assert!(got[3].as_ref().unwrap_err().contains("consumer `nobody`"), "{:?}", got[3]);
    assert!(got[4].as_ref().unwrap_err().contains("stream `no-such-stream`"), "{:?}", got[4]);
    js.delete_stream(&name).await.unwrap();
}
