//! The `redis` source against the machine's Redis (127.0.0.1:6379), with an
//! ACL user of its own, keys of its own, and everything removed after.

use crate::contract::{Kit, check};
use crate::servers::{Silent, service, unique};
use moontide::sources::{Source, SourceConfig};

async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/0").unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn run(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn).await.unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[tokio::test]
async fn redis_passes_the_source_contract_and_reads_lists_and_streams() {
    if !service(6379, "Redis") {
        return;
    }
    let mut admin = admin().await;
    let (user, key, stream) = (unique("moontide-user"), unique("moontide-list"), unique("moontide-stream"));
    let password = unique("pw");
    // a user that may read only this test's keys
    let (pw_rule, keys_rule) = (format!(">{password}"), "~moontide-*".to_string());
    run(&mut admin, &["ACL", "SETUSER", &user, "on", &pw_rule, &keys_rule, "+@read", "+@connection"]).await;
    for i in 0..5 {
        run(&mut admin, &["RPUSH", &key, &format!("job-{i}")]).await;
    }
    for i in 0..4 {
        run(&mut admin, &["XADD", &stream, "*", "n", &i.to_string()]).await;
    }
    run(&mut admin, &["XGROUP", "CREATE", &stream, "workers", "0"]).await;
    // a worker takes three and acknowledges none
    run(&mut admin, &["XREADGROUP", "GROUP", "workers", "w1", "COUNT", "3", "STREAMS", &stream, ">"]).await;

    let dir = tempfile::tempdir().unwrap();
    let (pw, wrong) = (dir.path().join("pw"), dir.path().join("wrong"));
    std::fs::write(&pw, &password).unwrap();
    std::fs::write(&wrong, "not-it").unwrap();
    let cfg = |file: &std::path::Path| {
        format!(
            "type = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\nusername = \"{user}\"\npassword_file = \"{}\"",
            file.display()
        )
    };
    let silent = Silent::start();
    check(
        "redis",
        Kit {
            healthy: cfg(&pw),
            query: format!("llen {key}"),
            expected: 5.0,
            failing: cfg(&wrong),
            failing_query: format!("llen {key}"),
            failing_says: "Password authentication failed",
            hanging: Some(format!("type = \"redis\"\nurl = \"redis://{}/0\"\ntimeout = \"300ms\"", silent.addr)),
            secret: Some(password.clone()),
            feed: None,
        },
    )
    .await;

    let c: SourceConfig = toml::from_str(&cfg(&pw)).unwrap();
    let s = Source::build("r", &c).unwrap();
    let got = s
        .read(&[format!("xpending {stream} workers"), format!("xlen {stream}"), format!("xpending {stream} nobody")])
        .await;
    assert_eq!(got[0].as_ref().unwrap().value, 3.0, "three delivered, none acknowledged");
    assert_eq!(got[1].as_ref().unwrap().value, 4.0);
    assert!(got[2].as_ref().unwrap_err().contains("NOGROUP"), "{:?}", got[2]);
    // a key outside the user's pattern is refused by Redis, and said so
    let other = s.read(&["llen someone-elses-key".into()]).await.remove(0).unwrap_err();
    assert!(other.contains("NOPERM"), "{other}");

    run(&mut admin, &["DEL", &key, &stream]).await;
    run(&mut admin, &["ACL", "DELUSER", &user]).await;
}
