//! Targets: what is scaled. One config variant and one module each.
//!
//! Every target's `scale(n)` means "set to n" and is safe to repeat.

pub mod aws_asg;
pub mod command;
pub mod kubernetes;
pub mod memory;
pub mod nomad;
pub mod process;
pub mod webhook;

use moontide_core::Actuation;
use serde::Deserialize;

/// `[targets.NAME]`: one variant per target kind, chosen by `type = "..."`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // read once per config load; boxing buys nothing
pub enum TargetConfig {
    /// A local pool of copies of a command.
    Process(process::ProcessConfig),
    /// A cloud or in-house HTTP API.
    Webhook(webhook::WebhookConfig),
    /// A user command run with the desired count.
    Command(command::CommandConfig),
    /// A Nomad job's task group.
    Nomad(nomad::NomadConfig),
    /// A Kubernetes resource's scale subresource.
    Kubernetes(kubernetes::KubernetesConfig),
    /// An EC2 Auto Scaling group.
    AwsAsg(aws_asg::AwsAsgConfig),
}

impl TargetConfig {
    /// The kind's name as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Process(_) => "process",
            TargetConfig::Webhook(_) => "webhook",
            TargetConfig::Command(_) => "command",
            TargetConfig::Nomad(_) => "nomad",
            TargetConfig::Kubernetes(_) => "kubernetes",
            TargetConfig::AwsAsg(_) => "aws_asg",
        }
    }

    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        match self {
            TargetConfig::Process(c) => c.validate(),
            TargetConfig::Webhook(c) => c.validate(),
            TargetConfig::Command(c) => c.validate(),
            TargetConfig::Nomad(c) => c.validate(),
            TargetConfig::Kubernetes(c) => c.validate(),
            TargetConfig::AwsAsg(c) => c.validate(),
        }
    }
}

/// What a target reports at the start of a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Replicas asked for (running or starting).
    pub current: u32,
    /// Replicas ready to serve.
    pub ready: u32,
    /// Set when the count is Moontide's own bookkeeping rather than the platform's word.
    pub note: Option<String>,
}

/// A failed actuation: what went wrong, and the wire-level record so far.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleError {
    /// What went wrong.
    pub message: String,
    /// The count actually reached when part of the change happened (a step sequence that failed part way).
    pub reached: Option<u32>,
    /// Requests made and the key used.
    pub actuation: Actuation,
}

/// A live target.
pub enum Target {
    /// See [`process::ProcessPool`].
    Process(process::ProcessPool),
    /// See [`webhook::Webhook`].
    Webhook(Box<webhook::Webhook>),
    /// See [`command::CommandTarget`].
    Command(command::CommandTarget),
    /// See [`nomad::Nomad`].
    Nomad(nomad::Nomad),
    /// See [`kubernetes::Kubernetes`].
    #[cfg(feature = "kubernetes")]
    Kubernetes(Box<kubernetes::Kubernetes>),
    /// See [`aws_asg::AwsAsg`].
    #[cfg(feature = "aws")]
    AwsAsg(aws_asg::AwsAsg),
    /// See [`memory::Memory`] (for dry runs; no config builds one).
    Memory(memory::Memory),
}

impl Target {
    /// Builds a target; fails when a secret it needs cannot be read or a pool cannot start.
    pub fn build(name: &str, config: &TargetConfig) -> Result<Target, String> {
        Ok(match config {
            TargetConfig::Process(c) => Target::Process(process::ProcessPool::start(name, c.clone())),
            TargetConfig::Webhook(c) => Target::Webhook(Box::new(webhook::Webhook::new(name, c)?)),
            TargetConfig::Command(c) => Target::Command(command::CommandTarget::new(name, c)),
            TargetConfig::Nomad(c) => Target::Nomad(nomad::Nomad::new(name, c)?),
            #[cfg(feature = "kubernetes")]
            TargetConfig::Kubernetes(c) => Target::Kubernetes(Box::new(kubernetes::Kubernetes::new(name, c)?)),
            #[cfg(not(feature = "kubernetes"))]
            TargetConfig::Kubernetes(_) => {
                return Err(format!("target `{name}`: this moontide was built without the `kubernetes` feature"));
            }
            #[cfg(feature = "aws")]
            TargetConfig::AwsAsg(c) => Target::AwsAsg(aws_asg::AwsAsg::new(name, c)?),
            #[cfg(not(feature = "aws"))]
            TargetConfig::AwsAsg(_) => {
                return Err(format!("target `{name}`: this moontide was built without the `aws` feature"));
            }
        })
    }

    /// Names the policy that drives the target (a webhook fills it in for `{policy}`).
    pub fn for_policy(self, policy: &str) -> Target {
        match self {
            Target::Webhook(w) => Target::Webhook(Box::new(w.for_policy(policy))),
            other => other,
        }
    }

    /// The longest a status read can take by the target's own settings:
    /// each request's timeout times the requests it makes (nothing for a
    /// local pool). The engine waits for at least this.
    pub fn status_time(&self) -> std::time::Duration {
        match self {
            Target::Process(_) | Target::Memory(_) => std::time::Duration::ZERO,
            Target::Webhook(t) => t.request_time(),
            Target::Command(t) => t.timeout(),
            // the scale status, then the allocations
            Target::Nomad(t) => t.timeout() * 2,
            // the scale, then the object or its pods
            #[cfg(feature = "kubernetes")]
            Target::Kubernetes(t) => t.timeout() * 2,
            // the SDK's operation timeout, retries included
            #[cfg(feature = "aws")]
            Target::AwsAsg(t) => t.timeout() * 3,
        }
    }

    /// The current and ready counts.
    pub async fn status(&self) -> Result<Status, String> {
        match self {
            Target::Process(t) => t.status().await,
            Target::Webhook(t) => t.status().await,
            Target::Command(t) => t.status().await,
            Target::Nomad(t) => t.status().await,
            #[cfg(feature = "kubernetes")]
            Target::Kubernetes(t) => t.status().await,
            #[cfg(feature = "aws")]
            Target::AwsAsg(t) => t.status().await,
            Target::Memory(t) => Ok(t.status()),
        }
    }

    /// Sets the count to `desired`. `key` identifies this actuation; requests repeated for it carry it.
    pub async fn scale(&self, current: u32, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
        match self {
            Target::Process(t) => t.scale(desired, key).await,
            Target::Webhook(t) => t.scale(current, desired, key).await,
            Target::Command(t) => t.scale(current, desired, key).await,
            Target::Nomad(t) => t.scale(desired, key).await,
            #[cfg(feature = "kubernetes")]
            Target::Kubernetes(t) => t.scale(current, desired, key).await,
            #[cfg(feature = "aws")]
            Target::AwsAsg(t) => t.scale(desired, key).await,
            Target::Memory(t) => Ok(t.scale(desired, key)),
        }
    }

    /// Tells the target the owner's fencing token (high availability): a
    /// webhook sends it with every request; Kubernetes writes are already
    /// fenced by the resourceVersion they were read at.
    pub fn set_fence(&self, token: i64) {
        if let Target::Webhook(t) = self {
            t.set_fence(token)
        }
    }

    /// After a restart: the count Moontide last set. A webhook without a
    /// status URL counts from it; a process pool starts that many copies
    /// (its copies did not outlive the previous run).
    pub async fn restore(&self, last_set: u32) {
        match self {
            Target::Webhook(t) => t.restore(last_set),
            Target::Command(t) => t.restore(last_set),
            // the platform keeps its own count
            Target::Nomad(_) | Target::Memory(_) => {}
            #[cfg(feature = "kubernetes")]
            Target::Kubernetes(_) => {}
            #[cfg(feature = "aws")]
            Target::AwsAsg(_) => {}
            Target::Process(t) => {
                tracing::info!(target: "moontide::process", count = last_set, "restoring the pool to its last count");
                if let Err(e) = t.scale(last_set, "restore").await {
                    tracing::warn!(target: "moontide::process", "cannot restore the pool: {}", e.message);
                }
            }
        }
    }

    /// Stops what the target owns (a process pool's children); a no-op for remote targets.
    pub async fn shutdown(&self) {
        if let Target::Process(t) = self {
            t.shutdown().await
        }
    }
}
