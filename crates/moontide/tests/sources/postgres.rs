//! The `postgres` source against the machine's PostgreSQL (127.0.0.1:5432,
//! database `test`), in a schema of its own, dropped after. The machine's
//! server trusts local connections, so it accepts any password: the tests
//! check that the password never shows, not that the server checks it.

use crate::contract::{Kit, check};
use crate::servers::{Silent, service, unique};
use moontide::sources::{Source, SourceConfig};

#[tokio::test]
async fn postgres_passes_the_source_contract_read_only_and_bounded() {
    if !service(5432, "PostgreSQL") {
        return;
    }
    let (admin, conn) =
        tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=test", tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    let schema = unique("moontide_test").replace('-', "_");
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.jobs (id serial primary key, state text not null);
             INSERT INTO {schema}.jobs (state) SELECT 'queued' FROM generate_series(1, 7);
             INSERT INTO {schema}.jobs (state) VALUES ('done'), ('done');"
        ))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pg-s3cret-password").unwrap();
    let cfg = format!(
        "type = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\npassword_file = \"{}\"\ntimeout = \"2s\"",
        pw.display()
    );
    let silent = Silent::start();
    check(
        "postgres",
        Kit {
            healthy: cfg.clone(),
            query: format!("SELECT count(*) FROM {schema}.jobs WHERE state = 'queued'"),
            expected: 7.0,
            failing: cfg.clone(),
            failing_query: format!("SELECT count(*) FROM {schema}.missing"),
            failing_says: "42P01",
            hanging: Some(format!(
                "type = \"postgres\"\nurl = \"host=127.0.0.1 port={} user=x dbname=y\"\ntimeout = \"300ms\"",
                silent.addr.port()
            )),
            secret: Some("pg-s3cret-password".into()),
            feed: None,
        },
    )
    .await;

    let c: SourceConfig = toml::from_str(&cfg.replace("timeout = \"2s\"", "timeout = \"500ms\"")).unwrap();
    let s = Source::build("pg", &c).unwrap();
    for (q, want) in [
        // read only: a query cannot change data
        (
            format!(
                "WITH x AS (INSERT INTO {schema}.jobs (state) VALUES ('queued') RETURNING 1) SELECT count(*) FROM x"
            ),
            "25006",
        ),
        // bounded: a slow query is cancelled by the statement timeout
        ("SELECT count(*) FROM pg_sleep(3)".to_string(), "57014"),
        ("SELECT 'many'".to_string(), "cast with ::float8"),
        ("SELECT 1.5".to_string(), "cast with ::float8"),
        ("SELECT NULL::int".to_string(), "NULL"),
        (format!("SELECT id FROM {schema}.jobs"), "returned 9 rows"),
        (format!("SELECT id FROM {schema}.jobs WHERE false"), "no row"),
    ] {
        let err = s.read(std::slice::from_ref(&q)).await.remove(0).unwrap_err();
        assert!(err.contains(want), "{q}: {err}");
    }
    // the connection survives those errors
    let ok = s.read(&["SELECT 1.5::float8".into(), format!("SELECT count(*)::int2 FROM {schema}.jobs")]).await;
    assert_eq!(ok[0].as_ref().unwrap().value, 1.5);
    assert_eq!(ok[1].as_ref().unwrap().value, 9.0, "the INSERT did not happen");

    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
    drop(admin);
    let _ = conn.await;
}
