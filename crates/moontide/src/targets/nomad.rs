//! `nomad`: a job's task-group count through Nomad's HTTP API.
//!
//! Scaling is `POST /v1/job/JOB/scale` with the group and the count (Nomad
//! records Moontide's message and actuation key with the scaling event).
//! The current count is the group's `Desired` from `GET /v1/job/JOB/scale`;
//! the ready count is the group's allocations that should run, are running,
//! and are not marked unhealthy by a deployment
//! (`GET /v1/job/JOB/allocations`). The ACL token goes in `X-Nomad-Token`.

use crate::secret::{Secret, SecretRef};
use crate::sources::http_json::describe;
use crate::targets::{ScaleError, Status};
use moontide_core::Actuation;
use moontide_core::duration::serde_text;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `type = "nomad"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NomadConfig {
    /// The agent's address, e.g. `http://127.0.0.1:4646`.
    pub address: String,
    /// The job's ID.
    pub job: String,
    /// The task group to scale.
    pub group: String,
    /// The job's namespace (default: the agent's default).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The region (default: the agent's).
    #[serde(default)]
    pub region: Option<String>,
    /// Environment variable holding the ACL token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the ACL token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Per-request timeout (default 10s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

impl NomadConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        errs.extend(crate::http::check_url_credentials(
            "address",
            &self.address,
            "an ACL token with token_env or token_file",
        ));
        for (field, v) in [("job", &self.job), ("group", &self.group)] {
            if v.trim().is_empty() {
                errs.push(format!("{field} is empty"));
            }
        }
        if self.token_env.is_some() && self.token_file.is_some() {
            errs.push("give either token_env or token_file, not both".into());
        }
        if self.timeout.is_zero() {
            errs.push("timeout must be longer than 0s".into());
        }
        errs
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScaleStatus {
    #[serde(default)]
    task_groups: BTreeMap<String, GroupStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupStatus {
    desired: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Allocation {
    task_group: String,
    desired_status: String,
    client_status: String,
    #[serde(default)]
    deployment_status: Option<DeploymentStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeploymentStatus {
    #[serde(default)]
    healthy: Option<bool>,
}

/// A live `nomad` target.
pub struct Nomad {
    cfg: NomadConfig,
    client: reqwest::Client,
    token: Option<Secret>,
}

impl Nomad {
    /// Its per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// Builds the client and reads the token.
    pub fn new(name: &str, cfg: &NomadConfig) -> Result<Self, String> {
        let token = SecretRef::new(cfg.token_env.clone(), cfg.token_file.clone())
            .load()
            .map_err(|e| format!("target `{name}`: {e}"))?;
        let client = crate::http::client(cfg.timeout).map_err(|e| format!("target `{name}`: {e}"))?;
        Ok(Nomad { cfg: cfg.clone(), client, token })
    }

    fn url(&self, tail: &str) -> Result<reqwest::Url, String> {
        let mut url = reqwest::Url::parse(&self.cfg.address).map_err(|e| e.to_string())?;
        url.path_segments_mut().map_err(|_| "address cannot have a path".to_string())?.pop_if_empty().extend([
            "v1",
            "job",
            self.cfg.job.as_str(),
            tail,
        ]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(ns) = &self.cfg.namespace {
                q.append_pair("namespace", ns);
            }
            if let Some(r) = &self.cfg.region {
                q.append_pair("region", r);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let req = self.client.request(method, url);
        match &self.token {
            Some(t) => req.header("X-Nomad-Token", t.expose()),
            None => req,
        }
    }

    /// Sends a request; the body of a 2xx, or an error with Nomad's own words.
    async fn call(
        &self,
        method: reqwest::Method,
        tail: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, String> {
        let url = self.url(tail)?;
        let mut req = self.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| describe(&e, self.cfg.timeout))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| describe(&e, self.cfg.timeout))?;
        if status.is_success() {
            Ok(text)
        } else {
            let said: String = text.trim().chars().take(300).collect();
            Err(format!("HTTP {status}: {said}"))
        }
    }

    /// The group's desired count, and its healthy running allocations.
    pub async fn status(&self) -> Result<Status, String> {
        let job = &self.cfg.job;
        let text = self.call(reqwest::Method::GET, "scale", None).await.map_err(|e| format!("job `{job}`: {e}"))?;
        let scale: ScaleStatus =
            serde_json::from_str(&text).map_err(|e| format!("job `{job}`: malformed scale status: {e}"))?;
        let group = scale
            .task_groups
            .get(&self.cfg.group)
            .ok_or_else(|| format!("job `{job}` has no task group `{}`", self.cfg.group))?;
        let text = self
            .call(reqwest::Method::GET, "allocations", None)
            .await
            .map_err(|e| format!("job `{job}` allocations: {e}"))?;
        let allocs: Vec<Allocation> =
            serde_json::from_str(&text).map_err(|e| format!("job `{job}`: malformed allocation list: {e}"))?;
        let ready = allocs
            .iter()
            .filter(|a| {
                a.task_group == self.cfg.group
                    && a.desired_status == "run"
                    && a.client_status == "running"
                    && a.deployment_status.as_ref().and_then(|d| d.healthy) != Some(false)
            })
            .count() as u32;
        Ok(Status { current: group.desired, ready, note: None })
    }

    /// Sets the group's count.
    pub async fn scale(&self, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
        let mut act = Actuation { key: key.to_string(), attempts: 1, detail: String::new() };
        let body = serde_json::json!({
            "Count": desired,
            "Target": { "Group": self.cfg.group },
            "Message": format!("moontide: set {} to {desired}", self.cfg.group),
            "Meta": { "moontide_key": key },
        });
        match self.call(reqwest::Method::POST, "scale", Some(body)).await {
            Ok(text) => {
                let eval = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("EvalID").and_then(|e| e.as_str()).map(str::to_string))
                    .filter(|e| !e.is_empty());
                act.detail = match eval {
                    Some(e) => format!("evaluation {e}"),
                    None => "accepted".into(),
                };
                Ok(act)
            }
            Err(message) => {
                act.detail = message.clone();
                Err(ScaleError { message: format!("job `{}`: {message}", self.cfg.job), reached: None, actuation: act })
            }
        }
    }
}
