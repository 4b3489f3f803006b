//! The contract every source kind passes.

use moontide::sources::{Source, SourceConfig};
use std::time::Duration;

/// Gives a source its value.
pub type Feed = Box<dyn Fn(&Source) + Send + Sync>;

/// How to try one source kind. Configs are TOML tables as under `[sources.NAME]`.
pub struct Kit {
    /// A source on a server that works, a query, and the value it must read.
    pub healthy: String,
    pub query: String,
    pub expected: f64,
    /// A source or query the server refuses, and what the error must say.
    pub failing: String,
    pub failing_query: String,
    pub failing_says: &'static str,
    /// A source on a server that never answers (with a short timeout); None
    /// for sources that wait for no one (push).
    pub hanging: Option<String>,
    /// The credential the healthy server requires (reading at all proves it was sent).
    pub secret: Option<String>,
    /// Gives a newly built healthy source its value, for sources that are given values (push).
    pub feed: Option<Feed>,
}

fn build(toml_text: &str) -> (SourceConfig, Source) {
    let config: SourceConfig = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let problems = config.validate();
    assert!(problems.is_empty(), "{problems:?}");
    let source = Source::build("contract", &config).unwrap_or_else(|e| panic!("{e}"));
    (config, source)
}

/// Runs the contract; panics naming the clause that failed.
pub async fn check(kind: &str, kit: Kit) {
    let (config, source) = build(&kit.healthy);
    assert_eq!(config.kind(), kind);
    config.check_query(&kit.query).unwrap_or_else(|e| panic!("{kind}: the query is refused: {e}"));
    if let Some(feed) = &kit.feed {
        feed(&source);
    }

    // reading: the value the server holds, once per query asked
    let got = source.read(&[kit.query.clone(), kit.query.clone()]).await;
    assert_eq!(got.len(), 2, "{kind}: one result per query");
    for r in &got {
        let v = r.as_ref().unwrap_or_else(|e| panic!("{kind}: read: {e}"));
        assert!((v.value - kit.expected).abs() < 1e-9, "{kind}: read {} instead of {}", v.value, kit.expected);
    }

    let no_secret = |what: &str, text: &str| {
        if let Some(s) = &kit.secret {
            assert!(!text.contains(s.as_str()), "{kind}: {what} shows the secret: {text}");
        }
    };
    no_secret("the config's Debug", &format!("{config:?}"));

    // errors: a failed reading that says why, never a number
    let (_, failing) = build(&kit.failing);
    let got = failing.read(std::slice::from_ref(&kit.failing_query)).await;
    let err = got[0].as_ref().expect_err("a refused query must fail");
    assert!(err.contains(kit.failing_says), "{kind}: `{err}` lacks `{}`", kit.failing_says);
    no_secret("an error", err);

    // timeouts: a server that never answers gives a failed reading, bounded
    let Some(hanging) = &kit.hanging else { return };
    let (_, hanging) = build(hanging);
    let got = tokio::time::timeout(Duration::from_secs(60), hanging.read(std::slice::from_ref(&kit.query)))
        .await
        .unwrap_or_else(|_| panic!("{kind}: the source's own timeout never fired"));
    let err = got[0].as_ref().expect_err("a silent server must fail the reading");
    assert!(err.contains("timed out"), "{kind}: {err}");
    no_secret("a timeout", err);
}
