//! `kubernetes`: any resource with a `/scale` subresource: Deployments,
//! StatefulSets, ReplicaSets, and custom resources that declare one.
//!
//! The count is the scale subresource's `spec.replicas`. Ready is the
//! workload's `status.readyReplicas` for the apps/v1 kinds, and for other
//! kinds the pods matching the scale's `status.selector` whose Ready
//! condition is True.
//!
//! A change is written with the resourceVersion just read, so a change
//! someone else makes is detected, never overwritten: if the count differs
//! from what the tick saw, or the object changes between Moontide's read and
//! its write (the API server answers 409 Conflict), the actuation fails and
//! says so; the next tick starts from the new count.
//!
//! Credentials: a kubeconfig file (and context) when given; otherwise the
//! pod's service account when running in a cluster, else `KUBECONFIG` or
//! `~/.kube/config`. Built only with the `kubernetes` cargo feature (on by
//! default).

use moontide_core::duration::serde_text;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_kind() -> String {
    "Deployment".into()
}

fn default_namespace() -> String {
    "default".into()
}

/// `type = "kubernetes"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The object's name.
    pub name: String,
    /// Its kind (default Deployment). StatefulSet and ReplicaSet are known
    /// (`api_version` or `resource` given for one replaces just that part);
    /// any other kind needs `api_version` and `resource`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// `group/version` of another kind, e.g. `example.com/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The plural resource name of another kind, e.g. `widgets`.
    #[serde(default)]
    pub resource: Option<String>,
    /// A kubeconfig file (default: in-cluster credentials, else KUBECONFIG or ~/.kube/config).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Per-request timeout (default 10s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

/// The built-in kinds: (kind, api_version, plural).
const KNOWN: [(&str, &str, &str); 3] = [
    ("Deployment", "apps/v1", "deployments"),
    ("StatefulSet", "apps/v1", "statefulsets"),
    ("ReplicaSet", "apps/v1", "replicasets"),
];

impl KubernetesConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !cfg!(feature = "kubernetes") {
            errs.push("this moontide was built without the `kubernetes` feature".into());
        }
        if self.name.trim().is_empty() {
            errs.push("name is empty".into());
        }
        if self.namespace.trim().is_empty() {
            errs.push("namespace is empty".into());
        }
        let known = KNOWN.iter().any(|(k, _, _)| *k == self.kind);
        if !known && (self.api_version.is_none() || self.resource.is_none()) {
            errs.push(format!(
                "kind `{}` is not one of Deployment, StatefulSet, ReplicaSet: give its api_version (like \"example.com/v1\") and resource (its plural, like \"widgets\")",
                self.kind
            ));
        }
        if let Some(v) = &self.api_version
            && (v.is_empty() || v.split('/').count() > 2 || v.split('/').any(str::is_empty))
        {
            errs.push(format!("api_version `{v}` is not `group/version` or `version`"));
        }
        if self.context.is_some() && self.kubeconfig.is_none() {
            errs.push("context needs kubeconfig".into());
        }
        if self.timeout.is_zero() {
            errs.push("timeout must be longer than 0s".into());
        }
        errs
    }

    /// (group, version, plural) of the configured kind; for a known kind,
    /// whichever of `api_version` and `resource` is not given is its own.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    fn gvr(&self) -> (String, String, String) {
        let known = KNOWN.iter().find(|(k, _, _)| *k == self.kind);
        let api_version = self.api_version.clone().or_else(|| known.map(|(_, v, _)| v.to_string())).unwrap_or_default();
        let plural = self.resource.clone().or_else(|| known.map(|(_, _, p)| p.to_string())).unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version),
        };
        (group, version, plural)
    }
}

#[cfg(feature = "kubernetes")]
pub use live::Kubernetes;

#[cfg(feature = "kubernetes")]
mod live {
    use super::KubernetesConfig;
    use crate::targets::{ScaleError, Status};
    use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
    use moontide_core::Actuation;
    use moontide_core::duration::format as fmt_d;
    use std::future::Future;
    use tokio::sync::OnceCell;

    /// A live `kubernetes` target.
    pub struct Kubernetes {
        cfg: KubernetesConfig,
        resource: ApiResource,
        client: OnceCell<kube::Client>,
    }

    /// A kube error in a few words: the API server's status when it sent one.
    fn describe(e: &kube::Error) -> String {
        match e {
            kube::Error::Api(s) => format!("HTTP {} {}: {}", s.code, s.reason, s.message),
            other => other.to_string(),
        }
    }

    impl Kubernetes {
        /// Its per-request timeout.
        pub fn timeout(&self) -> std::time::Duration {
            self.cfg.timeout
        }

        /// A target for `cfg` (credentials are read on first use).
        pub fn new(_name: &str, cfg: &KubernetesConfig) -> Result<Self, String> {
            let (group, version, plural) = cfg.gvr();
            let gvk = GroupVersionKind::gvk(&group, &version, &cfg.kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
            Ok(Kubernetes { cfg: cfg.clone(), resource, client: OnceCell::new() })
        }

        async fn client(&self) -> Result<kube::Client, String> {
            self.client
                .get_or_try_init(|| async {
                    let mut config = match &self.cfg.kubeconfig {
                        Some(path) => {
                            let kc = kube::config::Kubeconfig::read_from(path)
                                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
                            let opts = kube::config::KubeConfigOptions {
                                context: self.cfg.context.clone(),
                                ..Default::default()
                            };
                            kube::Config::from_custom_kubeconfig(kc, &opts)
                                .await
                                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
                        }
                        None => kube::Config::infer().await.map_err(|e| format!("no Kubernetes credentials: {e}"))?,
                    };
                    // a tick retries soon enough; kube's own retries could wait for minutes
                    config.default_retry = false;
                    config.read_timeout = Some(self.cfg.timeout);
                    config.connect_timeout = Some(self.cfg.timeout);
                    kube::Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
                })
                .await
                .cloned()
        }

        async fn api(&self) -> Result<Api<DynamicObject>, String> {
            Ok(Api::namespaced_with(self.client().await?, &self.cfg.namespace, &self.resource))
        }

        /// Runs `f` within the timeout.
        async fn bounded<T>(&self, what: &str, f: impl Future<Output = Result<T, kube::Error>>) -> Result<T, String> {
            match tokio::time::timeout(self.cfg.timeout, f).await {
                Ok(r) => r.map_err(|e| format!("{what}: {}", describe(&e))),
                Err(_) => Err(format!("{what}: timed out after {}", fmt_d(self.cfg.timeout))),
            }
        }

        fn object(&self) -> String {
            format!("{} {}/{}", self.cfg.kind, self.cfg.namespace, self.cfg.name)
        }

        async fn scale_of(&self, api: &Api<DynamicObject>) -> Result<Scale, String> {
            self.bounded(&format!("scale of {}", self.object()), api.get_scale(&self.cfg.name)).await
        }

        /// The count from the scale subresource, and the ready count.
        pub async fn status(&self) -> Result<Status, String> {
            let api = self.api().await?;
            let scale = self.scale_of(&api).await?;
            let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
            let ready = if self.cfg.gvr().0 == "apps" {
                let obj = self.bounded(&self.object(), api.get(&self.cfg.name)).await?;
                obj.data["status"]["readyReplicas"].as_i64().unwrap_or(0).max(0) as u32
            } else {
                let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
                if selector.is_empty() {
                    // no selector: every pod would match; the scale's own count is all there is
                    scale.status.as_ref().map(|s| s.replicas).unwrap_or(0).max(0) as u32
                } else {
                    let pods: Api<Pod> = Api::namespaced(self.client().await?, &self.cfg.namespace);
                    let list = self
                        .bounded(&format!("pods `{selector}`"), pods.list(&ListParams::default().labels(&selector)))
                        .await?;
                    list.items
                        .iter()
                        .filter(|p| {
                            p.status
                                .as_ref()
                                .and_then(|s| s.conditions.as_ref())
                                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                        })
                        .count() as u32
                }
            };
            Ok(Status { current, ready, note: None })
        }

        /// Sets `spec.replicas`, only if it still is `current`, with the resourceVersion just read.
        pub async fn scale(&self, current: u32, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
            let mut act = Actuation { key: key.to_string(), attempts: 1, detail: String::new() };
            let fail = |act: Actuation, message: String| Err(ScaleError { message, reached: None, actuation: act });
            let api = match self.api().await {
                Ok(a) => a,
                Err(e) => return fail(act, e),
            };
            let mut scale = match self.scale_of(&api).await {
                Ok(s) => s,
                Err(e) => return fail(act, e),
            };
            let now = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
            if now != current {
                act.detail = format!("count changed from {current} to {now} by someone else");
                return fail(
                    act,
                    format!(
                        "{}: the count changed from {current} to {now} since the tick read it; not overwritten",
                        self.object()
                    ),
                );
            }
            let version = scale.metadata.resource_version.clone().unwrap_or_default();
            scale.spec = Some(ScaleSpec { replicas: Some(desired as i32) });
            let params = PostParams::default();
            let put = api.replace_scale(&self.cfg.name, &params, &scale);
            match tokio::time::timeout(self.cfg.timeout, put).await {
                Ok(Ok(s)) => {
                    act.detail = format!(
                        "spec.replicas {desired}, resourceVersion {version} → {}",
                        s.metadata.resource_version.unwrap_or_default()
                    );
                    Ok(act)
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                    act.detail = "409 Conflict".into();
                    fail(
                        act,
                        format!(
                            "{}: changed by someone else between read and write (409 Conflict); not overwritten",
                            self.object()
                        ),
                    )
                }
                Ok(Err(e)) => {
                    act.detail = describe(&e);
                    fail(act, format!("{}: {}", self.object(), describe(&e)))
                }
                Err(_) => {
                    act.detail = "timed out".into();
                    fail(act, format!("{}: timed out after {}", self.object(), fmt_d(self.cfg.timeout)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: &str) -> KubernetesConfig {
        KubernetesConfig {
            name: "web".into(),
            kind: kind.into(),
            namespace: default_namespace(),
            api_version: None,
            resource: None,
            kubeconfig: None,
            context: None,
            timeout: default_timeout(),
        }
    }

    #[test]
    fn kinds_map_to_resources() {
        assert_eq!(cfg("Deployment").gvr(), ("apps".into(), "v1".into(), "deployments".into()));
        assert_eq!(cfg("StatefulSet").gvr(), ("apps".into(), "v1".into(), "statefulsets".into()));
        let widget = KubernetesConfig {
            api_version: Some("example.com/v1".into()),
            resource: Some("widgets".into()),
            ..cfg("Widget")
        };
        assert!(widget.validate().is_empty(), "{:?}", widget.validate());
        assert_eq!(widget.gvr(), ("example.com".into(), "v1".into(), "widgets".into()));
        let rc = KubernetesConfig {
            api_version: Some("v1".into()),
            resource: Some("replicationcontrollers".into()),
            ..cfg("ReplicationController")
        };
        assert_eq!(rc.gvr(), ("".into(), "v1".into(), "replicationcontrollers".into()));
        assert!(cfg("Widget").validate()[0].contains("give its api_version"));
        let bad = KubernetesConfig { api_version: Some("a/b/c".into()), resource: Some("x".into()), ..cfg("X") };
        assert!(bad.validate()[0].contains("not `group/version`"));
    }

    #[test]
    fn a_known_kind_fills_in_what_is_not_given() {
        // the problems besides a build without the feature (gvr is built either way)
        let problems =
            |c: &KubernetesConfig| c.validate().into_iter().filter(|e| !e.contains("feature")).collect::<Vec<_>>();
        let only_version = KubernetesConfig { api_version: Some("apps/v1".into()), ..cfg("StatefulSet") };
        assert!(problems(&only_version).is_empty(), "{:?}", problems(&only_version));
        assert_eq!(only_version.gvr(), ("apps".into(), "v1".into(), "statefulsets".into()));
        let only_resource = KubernetesConfig { resource: Some("replicasets".into()), ..cfg("ReplicaSet") };
        assert!(problems(&only_resource).is_empty(), "{:?}", problems(&only_resource));
        assert_eq!(only_resource.gvr(), ("apps".into(), "v1".into(), "replicasets".into()));
        // what is given wins over the known default
        let other_version = KubernetesConfig { api_version: Some("apps/v1beta2".into()), ..cfg("Deployment") };
        assert_eq!(other_version.gvr(), ("apps".into(), "v1beta2".into(), "deployments".into()));
        // an unknown kind has nothing to fill in with: validate says so
        let half = KubernetesConfig { api_version: Some("example.com/v1".into()), ..cfg("Widget") };
        assert!(problems(&half)[0].contains("give its api_version"), "{:?}", problems(&half));
    }
}
