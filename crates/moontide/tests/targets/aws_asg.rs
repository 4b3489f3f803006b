//! The `aws_asg` target against a fake of the two EC2 Auto Scaling API
//! calls Moontide makes: no AWS endpoint can run here, so this fake speaks
//! their real wire format (the AWS query protocol: form-encoded POSTs,
//! XML replies and ErrorResponse bodies) and checks the SigV4 credential
//! scope the real SDK sends. Built with `--features aws`.

use crate::common::{Seen, TestServer};
use crate::contract::{Kit, check};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use moontide::targets::{Target, TargetConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const KEY_ID: &str = "AKIDMOONTIDETEST";
const SECRET: &str = "s3cretAccessKeyNeverSent";

struct Group {
    desired: u32,
    /// Instances still Pending, and InService but Unhealthy.
    pending: u32,
    unhealthy: u32,
}

fn xml(status: u16, body: String) -> axum::response::Response {
    (StatusCode::from_u16(status).unwrap(), [("content-type", "text/xml")], body).into_response()
}

fn error(status: u16, code: &str, message: &str) -> axum::response::Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>b1c2d3e4</RequestId></ErrorResponse>"
        ),
    )
}

fn form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace('+', " ")))
        .collect()
}

fn fake(
    groups: Arc<Mutex<BTreeMap<String, Group>>>,
) -> impl Fn(&Seen, usize) -> axum::response::Response + Send + Sync + 'static {
    move |req, _| {
        let auth = req.header("authorization").unwrap_or_default();
        if !auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/"))
            || !auth.contains("/us-east-1/autoscaling/aws4_request")
        {
            return error(403, "InvalidClientTokenId", "The security token included in the request is invalid.");
        }
        let f = form(&req.body);
        assert_eq!(f.get("Version").map(String::as_str), Some("2011-01-01"));
        let mut groups = groups.lock().unwrap();
        match f.get("Action").map(String::as_str) {
            Some("DescribeAutoScalingGroups") => {
                let name = f.get("AutoScalingGroupNames.member.1").cloned().unwrap_or_default();
                let members = match groups.get(&name) {
                    None => String::new(),
                    Some(g) => {
                        let instances: String = (0..g.desired)
                            .map(|i| {
                                let state = if i < g.pending { "Pending" } else { "InService" };
                                let health = if i >= g.desired - g.unhealthy { "Unhealthy" } else { "Healthy" };
                                format!("<member><InstanceId>i-{i:016x}</InstanceId><AvailabilityZone>us-east-1a</AvailabilityZone><LifecycleState>{state}</LifecycleState><HealthStatus>{health}</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>")
                            })
                            .collect();
                        format!(
                            "<member><AutoScalingGroupName>{name}</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>20</MaxSize><DesiredCapacity>{}</DesiredCapacity><DefaultCooldown>300</DefaultCooldown><AvailabilityZones><member>us-east-1a</member></AvailabilityZones><HealthCheckType>EC2</HealthCheckType><CreatedTime>2026-01-01T00:00:00.000Z</CreatedTime><Instances>{instances}</Instances></member>",
                            g.desired
                        )
                    }
                };
                xml(
                    200,
                    format!(
                        "<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><DescribeAutoScalingGroupsResult><AutoScalingGroups>{members}</AutoScalingGroups></DescribeAutoScalingGroupsResult><ResponseMetadata><RequestId>0f5e1f4c</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>"
                    ),
                )
            }
            Some("SetDesiredCapacity") => {
                assert_eq!(
                    f.get("HonorCooldown").map(String::as_str),
                    Some("false"),
                    "Moontide's guards pace changes, not the group's cooldown"
                );
                let name = f.get("AutoScalingGroupName").cloned().unwrap_or_default();
                let n: u32 = f.get("DesiredCapacity").and_then(|v| v.parse().ok()).unwrap();
                let Some(g) = groups.get_mut(&name) else {
                    return error(
                        400,
                        "ValidationError",
                        &format!("AutoScalingGroup name not found - no such group: {name}"),
                    );
                };
                if n > 20 {
                    return error(
                        400,
                        "ValidationError",
                        &format!("New SetDesiredCapacity value {n} is above max value 20 for the AutoScalingGroup."),
                    );
                }
                g.desired = n;
                xml(200, "<SetDesiredCapacityResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><ResponseMetadata><RequestId>7c6e177f</RequestId></ResponseMetadata></SetDesiredCapacityResponse>".into())
            }
            other => error(400, "InvalidAction", &format!("{other:?}")),
        }
    }
}

fn credentials(dir: &std::path::Path, name: &str, key: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("[moontide-test]\naws_access_key_id = {key}\naws_secret_access_key = {SECRET}\n"))
        .unwrap();
    p
}

fn config(endpoint: &str, creds: &std::path::Path, group: &str) -> String {
    format!(
        "type = \"aws_asg\"\ngroup = \"{group}\"\nregion = \"us-east-1\"\nprofile = \"moontide-test\"\ncredentials_file = \"{}\"\nendpoint_url = \"{endpoint}\"",
        creds.display()
    )
}

#[tokio::test]
async fn aws_asg_passes_the_target_contract() {
    let groups =
        Arc::new(Mutex::new(BTreeMap::from([("gpu".to_string(), Group { desired: 2, pending: 0, unhealthy: 0 })])));
    let server = TestServer::start(fake(groups.clone())).await;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = credentials(dir.path(), "good", KEY_ID);
    let bad = credentials(dir.path(), "bad", "AKIDSOMEONEELSE");
    let count = groups.clone();
    check(
        "aws_asg",
        Kit {
            healthy: config(&server.url(""), &good, "gpu"),
            count: Box::new(move || count.lock().unwrap()["gpu"].desired),
            reads_status: true,
            failing: config(&server.url(""), &bad, "gpu"),
            failing_says: "InvalidClientTokenId: The security token included in the request is invalid.",
            hanging: format!(
                "{}\ntimeout = \"300ms\"",
                config(&format!("http://{}", silent.local_addr().unwrap()), &good, "gpu")
            ),
            secret: Some((SECRET.into(), Box::new(|| true))),
        },
    )
    .await;
    // signed requests, and the secret key itself never on the wire
    let seen = server.seen();
    assert!(seen.iter().all(|r| r.header("x-amz-date").is_some()));
    assert!(seen.iter().all(|r| !format!("{:?}{}", r.headers, r.body).contains(SECRET)));
}

#[tokio::test]
async fn ready_is_in_service_and_healthy_and_aws_errors_are_named() {
    let groups =
        Arc::new(Mutex::new(BTreeMap::from([("web".to_string(), Group { desired: 6, pending: 2, unhealthy: 1 })])));
    let server = TestServer::start(fake(groups)).await;
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path(), "c", KEY_ID);
    let build = |group: &str| {
        let c: TargetConfig = toml::from_str(&config(&server.url(""), &creds, group)).unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        Target::build("t", &c).unwrap()
    };
    let web = build("web");
    let s = web.status().await.unwrap();
    assert_eq!((s.current, s.ready), (6, 3), "2 pending and 1 unhealthy are not ready");
    let err = web.scale(6, 25, "k").await.unwrap_err();
    assert!(
        err.message.contains("ValidationError: New SetDesiredCapacity value 25 is above max value 20"),
        "{}",
        err.message
    );
    let none = build("nope");
    assert!(none.status().await.unwrap_err().contains("no Auto Scaling group `nope` in us-east-1"));
    let err = none.scale(0, 1, "k").await.unwrap_err();
    assert!(err.message.contains("no such group: nope"), "{}", err.message);
}

/// A profile named in the config is the credentials, even with other keys
/// in the environment (the SDK's default chain reads those first): the
/// real binary, `run --once`, with `AWS_ACCESS_KEY_ID` set to someone else's.
#[tokio::test]
async fn a_configured_profile_wins_over_keys_in_the_environment() {
    let groups =
        Arc::new(Mutex::new(BTreeMap::from([("web".to_string(), Group { desired: 2, pending: 0, unhealthy: 0 })])));
    let server = TestServer::start(fake(groups.clone())).await;
    let metrics = TestServer::start(|_, _| crate::common::json(200, serde_json::json!({"cpu": 50}))).await;
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path(), "c", KEY_ID);
    let empty = dir.path().join("config");
    std::fs::write(&empty, "").unwrap();
    let text = format!(
        "[sources.app]\ntype = \"http_json\"\nurl = \"{}\"\n\n[targets.gpu]\n{}\n\n\
         [policies.web]\ntarget = \"gpu\"\ninterval = \"10s\"\nmin = 3\nmax = 3\n\n[policies.web.metrics]\ncpu = {{ source = \"app\", query = \"/cpu\" }}\n\n\
         [policies.web.checks.cpu]\nstrategy = \"target_tracking\"\ntargets = [{{ metric = \"cpu\", target = 60 }}]\n",
        metrics.url("/m"),
        config(&server.url(""), &creds, "web")
    );
    let (cfg_dir, path) = crate::common::config_file(&text);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["run", "--once", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(cfg_dir.path().join("state"))
        .env("AWS_ACCESS_KEY_ID", "AKIDFROMTHEENVIRONMENT")
        .env("AWS_SECRET_ACCESS_KEY", "someoneElsesSecret")
        .env_remove("AWS_PROFILE")
        // the machine's own ~/.aws/config must not matter
        .env("AWS_CONFIG_FILE", &empty)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out).await.expect("run --once ended").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(groups.lock().unwrap()["web"].desired, 3, "scaled with the profile's key: {stderr}");
    let auths: Vec<String> = server.seen().iter().filter_map(|r| r.header("authorization")).collect();
    assert!(!auths.is_empty() && auths.iter().all(|a| a.contains(KEY_ID)), "{auths:?}");
}
