//! The contract every target kind passes.

use moontide::targets::{Target, TargetConfig};
use std::time::Duration;

/// How to try one target kind. Configs are TOML tables as under `[targets.NAME]`.
pub struct Kit {
    /// A target on a platform that works.
    pub healthy: String,
    /// The platform's real count, as the platform itself knows it.
    pub count: Box<dyn Fn() -> u32 + Send + Sync>,
    /// Whether the target reads the count from the platform (not its own bookkeeping).
    pub reads_status: bool,
    /// A target on a platform that refuses every change.
    pub failing: String,
    /// What the refusal's message must contain.
    pub failing_says: &'static str,
    /// A target on a platform that never answers (with a short timeout).
    pub hanging: String,
    /// The credential the healthy platform requires, and whether it arrived.
    pub secret: Option<(String, Box<dyn Fn() -> bool + Send + Sync>)>,
}

fn build(toml_text: &str) -> (TargetConfig, Target) {
    let config: TargetConfig = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let problems = config.validate();
    assert!(problems.is_empty(), "{problems:?}");
    let target = Target::build("contract", &config).unwrap();
    (config, target)
}

/// Runs the contract; panics naming the clause that failed.
pub async fn check(kind: &str, kit: Kit) {
    let (config, target) = build(&kit.healthy);
    assert_eq!(config.kind(), kind);

    // scaling: the platform reaches the count, and the target reads it back
    let start = target.status().await.unwrap_or_else(|e| panic!("{kind}: status: {e}"));
    let up = start.current + 2;
    let act = target.scale(start.current, up, "contract-1").await.unwrap_or_else(|e| panic!("{kind}: scale: {e:?}"));
    assert_eq!(act.key, "contract-1", "{kind}: the actuation carries its key");
    assert_eq!((kit.count)(), up, "{kind}: the platform reached the count");
    let now = target.status().await.unwrap();
    assert_eq!(now.current, up, "{kind}: status after scaling up");
    if kit.reads_status {
        assert_eq!(now.note, None, "{kind}: the count is the platform's word");
    }
    // setting the same count again is safe
    target.scale(up, up, "contract-2").await.unwrap_or_else(|e| panic!("{kind}: repeat: {e:?}"));
    assert_eq!((kit.count)(), up, "{kind}: a repeated count changes nothing");
    target.scale(up, 1, "contract-3").await.unwrap_or_else(|e| panic!("{kind}: scale down: {e:?}"));
    assert_eq!((kit.count)(), 1, "{kind}: scaled down");
    assert_eq!(target.status().await.unwrap().current, 1, "{kind}: status after scaling down");

    // credentials: sent, and never printed
    if let Some((secret, seen)) = &kit.secret {
        assert!(seen(), "{kind}: the platform received the credential");
        assert!(!format!("{config:?}").contains(secret.as_str()), "{kind}: the config's Debug shows the secret");
    }
    let secret = kit.secret.as_ref().map(|(s, _)| s.clone());
    let no_secret = |what: &str, text: &str| {
        if let Some(s) = &secret {
            assert!(!text.contains(s.as_str()), "{kind}: {what} shows the secret: {text}");
        }
    };

    // errors: a refused change is a failed actuation that says why
    let (_, failing) = build(&kit.failing);
    let err = failing.scale(1, 3, "contract-4").await.expect_err("a refused change must fail");
    assert!(err.message.contains(kit.failing_says), "{kind}: `{}` lacks `{}`", err.message, kit.failing_says);
    assert_eq!(err.actuation.key, "contract-4");
    no_secret("an error", &format!("{err:?}"));

    // timeouts: a platform that never answers fails the actuation, bounded
    let (_, hanging) = build(&kit.hanging);
    let err = tokio::time::timeout(Duration::from_secs(60), hanging.scale(1, 3, "contract-5"))
        .await
        .unwrap_or_else(|_| panic!("{kind}: the target's own timeout never fired"))
        .expect_err("a hanging platform must fail the actuation");
    assert!(err.message.contains("timed out"), "{kind}: {}", err.message);
    no_secret("a timeout", &format!("{err:?}"));
    target.shutdown().await;
}
