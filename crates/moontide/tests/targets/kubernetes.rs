//! The `kubernetes` target against a fake API server on 127.0.0.1: no real
//! API server can run here, so this fake speaks the real wire format of the
//! endpoints Moontide uses (the autoscaling/v1 Scale subresource with
//! resourceVersion checks and 409 Conflict Status bodies, apps/v1 objects'
//! status, pod lists by label selector, 401 for a wrong bearer token), as
//! the Kubernetes API documents them. The client is the real kube crate,
//! configured from a kubeconfig file.

use crate::common::{Seen, TestServer, json};
use crate::contract::{Kit, check};
use moontide::targets::{Target, TargetConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "k8s-s3cret-token";

struct Obj {
    kind: &'static str,
    api_version: &'static str,
    replicas: i64,
    ready: i64,
    rv: u64,
    selector: &'static str,
}

#[derive(Default)]
struct Cluster {
    /// By object path, e.g. /apis/apps/v1/namespaces/apps/deployments/web.
    objects: BTreeMap<String, Obj>,
    /// Pods: labels "k=v", and whether Ready.
    pods: Vec<(&'static str, bool)>,
    /// Someone else writes the object right before the next PUT lands.
    race_next_put: bool,
}

fn status(code: u16, reason: &str, message: &str) -> axum::response::Response {
    json(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

fn scale_json(path: &str, o: &Obj) -> serde_json::Value {
    let name = path.rsplit('/').next().unwrap();
    serde_json::json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": "apps", "uid": "6f1c0d3e", "resourceVersion": o.rv.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": o.replicas},
        "status": {"replicas": o.replicas, "selector": o.selector}
    })
}

fn fake(cluster: Arc<Mutex<Cluster>>) -> impl Fn(&Seen, usize) -> axum::response::Response + Send + Sync + 'static {
    move |req, _| {
        if req.header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
            return status(401, "Unauthorized", "Unauthorized");
        }
        let mut c = cluster.lock().unwrap();
        if req.path == "/api/v1/namespaces/apps/pods" {
            let query = req.query.clone().unwrap_or_default();
            let wanted =
                query.split('&').find_map(|kv| kv.strip_prefix("labelSelector=")).unwrap_or("").replace("%3D", "=");
            let items: Vec<_> = c
                .pods
                .iter()
                .enumerate()
                .filter(|(_, (labels, _))| *labels == wanted)
                .map(|(i, (labels, ready))| {
                    let (k, v) = labels.split_once('=').unwrap();
                    serde_json::json!({"metadata": {"name": format!("pod-{i}"), "namespace": "apps", "labels": {k: v}},
                        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if *ready { "True" } else { "False" }}]}})
                })
                .collect();
            return json(
                200,
                serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
            );
        }
        let (path, sub) = match req.path.strip_suffix("/scale") {
            Some(p) => (p.to_string(), true),
            None => (req.path.clone(), false),
        };
        let race = req.method == "PUT" && std::mem::take(&mut c.race_next_put);
        let Some(o) = c.objects.get_mut(&path) else {
            return status(404, "NotFound", &format!("\"{}\" not found", path.rsplit('/').next().unwrap()));
        };
        match (req.method.as_str(), sub) {
            ("GET", true) => json(200, scale_json(&path, o)),
            ("GET", false) => {
                let mut st = serde_json::json!({"replicas": o.replicas});
                if o.ready > 0 {
                    st["readyReplicas"] = o.ready.into(); // left out when 0, as the API server does
                }
                json(
                    200,
                    serde_json::json!({"apiVersion": o.api_version, "kind": o.kind,
                    "metadata": {"name": path.rsplit('/').next().unwrap(), "namespace": "apps", "resourceVersion": o.rv.to_string()},
                    "spec": {"replicas": o.replicas}, "status": st}),
                )
            }
            ("PUT", true) => {
                if race {
                    o.rv += 1; // someone else's write
                }
                let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
                assert_eq!(
                    (body["kind"].as_str(), body["apiVersion"].as_str()),
                    (Some("Scale"), Some("autoscaling/v1"))
                );
                if body["metadata"]["resourceVersion"].as_str() != Some(&o.rv.to_string()) {
                    return status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                o.replicas = body["spec"]["replicas"].as_i64().unwrap();
                o.rv += 1;
                json(200, scale_json(&path, o))
            }
            _ => status(405, "MethodNotAllowed", "method not allowed"),
        }
    }
}

fn kubeconfig(dir: &std::path::Path, name: &str, server: &str, token: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: moontide\ncurrent-context: fake\nusers:\n- name: moontide\n  user:\n    token: {token}\n"
        ),
    )
    .unwrap();
    p
}

fn cluster() -> Arc<Mutex<Cluster>> {
    let mut c = Cluster::default();
    c.objects.insert(
        "/apis/apps/v1/namespaces/apps/deployments/web".into(),
        Obj { kind: "Deployment", api_version: "apps/v1", replicas: 2, ready: 2, rv: 100, selector: "app=web" },
    );
    c.objects.insert(
        "/apis/apps/v1/namespaces/apps/statefulsets/db".into(),
        Obj { kind: "StatefulSet", api_version: "apps/v1", replicas: 3, ready: 0, rv: 7, selector: "app=db" },
    );
    c.objects.insert(
        "/apis/example.com/v1/namespaces/apps/widgets/w".into(),
        Obj { kind: "Widget", api_version: "example.com/v1", replicas: 3, ready: 0, rv: 1, selector: "app=widget" },
    );
    c.pods = vec![("app=widget", true), ("app=widget", false), ("app=widget", true), ("app=web", true)];
    Arc::new(Mutex::new(c))
}

#[tokio::test]
async fn kubernetes_passes_the_target_contract() {
    let c = cluster();
    let server = TestServer::start(fake(c.clone())).await;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = kubeconfig(dir.path(), "good", &server.url(""), TOKEN);
    let bad = kubeconfig(dir.path(), "bad", &server.url(""), "stolen");
    let hang = kubeconfig(dir.path(), "hang", &format!("http://{}", silent.local_addr().unwrap()), TOKEN);
    let cfg = |kc: &std::path::Path| {
        format!("type = \"kubernetes\"\nname = \"web\"\nnamespace = \"apps\"\nkubeconfig = \"{}\"", kc.display())
    };
    let count = c.clone();
    check(
        "kubernetes",
        Kit {
            healthy: cfg(&good),
            count: Box::new(move || {
                count.lock().unwrap().objects["/apis/apps/v1/namespaces/apps/deployments/web"].replicas as u32
            }),
            reads_status: true,
            failing: cfg(&bad),
            failing_says: "HTTP 401 Unauthorized",
            hanging: format!("{}\ntimeout = \"300ms\"", cfg(&hang)),
            secret: Some((TOKEN.into(), Box::new(|| true))),
        },
    )
    .await;
    assert!(server.seen().iter().all(|r| r.header("authorization").is_some()));
}

#[tokio::test]
async fn a_change_by_someone_else_is_detected_not_overwritten() {
    let c = cluster();
    let server = TestServer::start(fake(c.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "kc", &server.url(""), TOKEN);
    let config: TargetConfig = toml::from_str(&format!(
        "type = \"kubernetes\"\nname = \"web\"\nnamespace = \"apps\"\nkubeconfig = \"{}\"",
        kc.display()
    ))
    .unwrap();
    let t = Target::build("web", &config).unwrap();
    let web =
        |c: &Arc<Mutex<Cluster>>| c.lock().unwrap().objects["/apis/apps/v1/namespaces/apps/deployments/web"].replicas;
    let s = t.status().await.unwrap();
    assert_eq!((s.current, s.ready), (2, 2));

    // someone scales to 6 after the tick read 2: Moontide's 4 is not written
    c.lock().unwrap().objects.get_mut("/apis/apps/v1/namespaces/apps/deployments/web").unwrap().replicas = 6;
    let err = t.scale(2, 4, "k1").await.unwrap_err();
    assert!(err.message.contains("changed from 2 to 6"), "{}", err.message);
    assert_eq!(web(&c), 6);

    // someone writes between Moontide's read and its write: 409, not overwritten
    c.lock().unwrap().race_next_put = true;
    let err = t.scale(6, 8, "k2").await.unwrap_err();
    assert!(err.message.contains("409 Conflict") && err.message.contains("not overwritten"), "{}", err.message);
    assert_eq!(web(&c), 6);

    // with no one in the way it goes through
    t.scale(6, 8, "k3").await.unwrap();
    assert_eq!(web(&c), 8);
}

#[tokio::test]
async fn statefulsets_and_custom_resources_scale_and_count_ready() {
    let c = cluster();
    let server = TestServer::start(fake(c.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "kc", &server.url(""), TOKEN);
    let build = |extra: &str| {
        let config: TargetConfig = toml::from_str(&format!(
            "type = \"kubernetes\"\nnamespace = \"apps\"\nkubeconfig = \"{}\"\n{extra}",
            kc.display()
        ))
        .unwrap();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        Target::build("t", &config).unwrap()
    };
    let db = build("kind = \"StatefulSet\"\nname = \"db\"");
    let s = db.status().await.unwrap();
    assert_eq!((s.current, s.ready), (3, 0), "readyReplicas left out means 0");
    db.scale(3, 5, "k").await.unwrap();
    assert_eq!(c.lock().unwrap().objects["/apis/apps/v1/namespaces/apps/statefulsets/db"].replicas, 5);

    // a custom resource: ready = its selector's pods with Ready=True
    let w = build("kind = \"Widget\"\napi_version = \"example.com/v1\"\nresource = \"widgets\"\nname = \"w\"");
    let s = w.status().await.unwrap();
    assert_eq!((s.current, s.ready), (3, 2));
    w.scale(3, 1, "k").await.unwrap();
    assert_eq!(c.lock().unwrap().objects["/apis/example.com/v1/namespaces/apps/widgets/w"].replicas, 1);
    let pods = server.seen_on("/api/v1/namespaces/apps/pods");
    assert!(
        pods.iter().all(|r| r.query.as_deref().is_some_and(|q| q.contains("labelSelector=app%3Dwidget"))),
        "{:?}",
        pods.iter().map(|r| r.query.clone()).collect::<Vec<_>>()
    );

    let missing = build("name = \"nope\"");
    let err = missing.status().await.unwrap_err();
    assert!(err.contains("HTTP 404 NotFound"), "{err}");
}
