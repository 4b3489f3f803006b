//! The demo's metrics endpoint: what a load balancer in front of the pool
//! would report, the average of each ready worker's own `/metrics`.

use crate::targets::process::Instance;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
struct Pool {
    instances: watch::Receiver<Vec<Instance>>,
    client: reqwest::Client,
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, instances: watch::Receiver<Vec<Instance>>) {
    let client = crate::http::client(Duration::from_secs(1)).unwrap_or_default();
    let app = Router::new().route("/metrics", get(average)).with_state(Pool { instances, client });
    let _ = axum::serve(listener, app).await;
}

async fn average(State(pool): State<Pool>) -> Result<axum::Json<serde_json::Value>, (StatusCode, String)> {
    let ports: Vec<u16> = pool.instances.borrow().iter().filter(|i| i.ready).map(|i| i.port).collect();
    let mut set = tokio::task::JoinSet::new();
    for port in ports {
        let client = pool.client.clone();
        set.spawn(async move {
            let v: serde_json::Value =
                client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.ok()?.json().await.ok()?;
            Some((v.get("cpuUsage")?.as_f64()?, v.get("memoryUsage")?.as_f64()?))
        });
    }
    let mut got = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(v)) = r {
            got.push(v);
        }
    }
    if got.is_empty() {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "no ready worker answered".into()));
    }
    let n = got.len() as f64;
    let cpu = got.iter().map(|v| v.0).sum::<f64>() / n;
    let mem = got.iter().map(|v| v.1).sum::<f64>() / n;
    Ok(axum::Json(serde_json::json!({ "cpuUsage": cpu, "memoryUsage": mem, "workers": got.len() })))
}
