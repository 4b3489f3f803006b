//! The `nomad` target against a fake Nomad agent on 127.0.0.1: no Nomad
//! binary can run here, so this fake speaks the wire format of the three
//! endpoints Moontide uses (job scale status, job scale, job allocations),
//! as Nomad's API documents them, with its ACL token check and its
//! plain-text errors.

use crate::common::{Seen, TestServer, json, text};
use crate::contract::{Kit, check};
use moontide::targets::{Target, TargetConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "nomad-s3cret-token";

/// The job `web` and its groups: desired count, allocations still pending, allocations unhealthy.
#[derive(Default)]
struct Job {
    groups: BTreeMap<String, (u32, u32, u32)>,
}

fn fake(job: Arc<Mutex<Job>>) -> impl Fn(&Seen, usize) -> axum::response::Response + Send + Sync + 'static {
    move |req, _| {
        if req.header("x-nomad-token").as_deref() != Some(TOKEN) {
            return text(403, "Permission denied");
        }
        let mut job = job.lock().unwrap();
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/job/web/scale") => {
                let groups: serde_json::Map<String, serde_json::Value> = job
                    .groups
                    .iter()
                    .map(|(g, (desired, pending, _))| {
                        (g.clone(), serde_json::json!({"Desired": desired, "Placed": desired, "Running": desired - pending, "Healthy": desired - pending, "Unhealthy": 0, "Events": null}))
                    })
                    .collect();
                json(
                    200,
                    serde_json::json!({"JobID": "web", "Namespace": "default", "JobModifyIndex": 18, "JobStopped": false, "TaskGroups": groups}),
                )
            }
            ("GET", "/v1/job/web/allocations") => {
                let mut allocs = Vec::new();
                for (g, (desired, pending, unhealthy)) in &job.groups {
                    for i in 0..*desired {
                        let client = if i < *pending { "pending" } else { "running" };
                        let healthy = if i >= desired - unhealthy {
                            serde_json::json!({"Healthy": false})
                        } else {
                            serde_json::json!({"Healthy": true})
                        };
                        allocs.push(serde_json::json!({"ID": format!("{g}-{i}"), "TaskGroup": g, "DesiredStatus": "run", "ClientStatus": client, "DeploymentStatus": healthy}));
                    }
                    // a stopped allocation never counts
                    allocs.push(serde_json::json!({"ID": format!("{g}-old"), "TaskGroup": g, "DesiredStatus": "stop", "ClientStatus": "complete", "DeploymentStatus": null}));
                }
                json(200, serde_json::Value::Array(allocs))
            }
            ("POST", "/v1/job/web/scale") => {
                let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
                let group = body["Target"]["Group"].as_str().unwrap_or_default().to_string();
                let Some(g) = job.groups.get_mut(&group) else {
                    return text(400, &format!("task group \"{group}\" specified for scaling does not exist in job"));
                };
                g.0 = body["Count"].as_u64().unwrap() as u32;
                json(
                    200,
                    serde_json::json!({"EvalID": "116f3ede-f6a5-f6e7-2d0e-1fda136390f0", "EvalCreateIndex": 45, "JobModifyIndex": 44, "Index": 45, "Warnings": ""}),
                )
            }
            (_, p) if p.starts_with("/v1/job/") && p.ends_with("/scale") => text(404, "job not found"),
            _ => text(404, "not found"),
        }
    }
}

#[tokio::test]
async fn nomad_passes_the_target_contract() {
    let job = Arc::new(Mutex::new(Job { groups: BTreeMap::from([("web".into(), (2, 0, 0))]) }));
    let server = TestServer::start(fake(job.clone())).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tok, wrong) = (dir.path().join("tok"), dir.path().join("wrong"));
    std::fs::write(&tok, TOKEN).unwrap();
    std::fs::write(&wrong, "someone-else").unwrap();
    let cfg = |address: String, file: &std::path::Path| {
        format!(
            "type = \"nomad\"\naddress = \"{address}\"\njob = \"web\"\ngroup = \"web\"\ntoken_file = \"{}\"",
            file.display()
        )
    };
    let count = job.clone();
    check(
        "nomad",
        Kit {
            healthy: cfg(server.url(""), &tok),
            count: Box::new(move || count.lock().unwrap().groups["web"].0),
            reads_status: true,
            failing: cfg(server.url(""), &wrong),
            failing_says: "HTTP 403 Forbidden: Permission denied",
            hanging: format!(
                "{}\ntimeout = \"300ms\"",
                cfg(format!("http://{}", listener.local_addr().unwrap()), &tok)
            ),
            secret: Some((TOKEN.into(), Box::new(|| true))),
        },
    )
    .await;
    // every request carried the token header, and the scale requests said who and why
    let seen = server.seen();
    assert!(seen.iter().all(|r| r.header("x-nomad-token").is_some()));
    let posts: Vec<_> = seen.iter().filter(|r| r.method == "POST").collect();
    assert!(!posts.is_empty());
    let body: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(body["Target"]["Group"], "web");
    assert_eq!(body["Meta"]["moontide_key"], "contract-1");
}

#[tokio::test]
async fn ready_counts_only_healthy_running_allocations_of_the_group() {
    // web: 5 desired, 1 still pending, 1 marked unhealthy by its deployment; api: another group
    let job =
        Arc::new(Mutex::new(Job { groups: BTreeMap::from([("web".into(), (5, 1, 1)), ("api".into(), (3, 0, 0))]) }));
    let server = TestServer::start(fake(job)).await;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    std::fs::write(&tok, TOKEN).unwrap();
    let target = |group: &str, extra: &str| {
        let c: TargetConfig = toml::from_str(&format!(
            "type = \"nomad\"\naddress = \"{}\"\njob = \"web\"\ngroup = \"{group}\"\ntoken_file = \"{}\"\n{extra}",
            server.url(""),
            tok.display()
        ))
        .unwrap();
        Target::build("t", &c).unwrap()
    };
    let s = target("web", "namespace = \"prod\"").status().await.unwrap();
    assert_eq!((s.current, s.ready), (5, 3));
    assert!(
        server.seen().iter().all(|r| r.query.as_deref() == Some("namespace=prod")),
        "the namespace goes with every request"
    );
    let err = target("batch", "").status().await.unwrap_err();
    assert!(err.contains("no task group `batch`"), "{err}");
    let err = target("batch", "").scale(1, 2, "k").await.unwrap_err();
    assert!(
        err.message.contains("task group \"batch\" specified for scaling does not exist in job"),
        "{}",
        err.message
    );
    let other: TargetConfig = toml::from_str(&format!(
        "type = \"nomad\"\naddress = \"{}\"\njob = \"nope\"\ngroup = \"web\"\ntoken_file = \"{}\"",
        server.url(""),
        tok.display()
    ))
    .unwrap();
    let err = Target::build("t", &other).unwrap().status().await.unwrap_err();
    assert!(err.contains("HTTP 404") && err.contains("job not found"), "{err}");
}
