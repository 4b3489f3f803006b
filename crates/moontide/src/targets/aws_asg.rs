//! `aws_asg`: an EC2 Auto Scaling group's desired capacity, through the AWS
//! SDK for Rust: `SetDesiredCapacity` (with `HonorCooldown` off: Moontide's
//! own guards pace changes) and `DescribeAutoScalingGroups` for the current
//! count (the desired capacity) and the ready count (instances InService
//! and Healthy).
//!
//! Credentials come from the SDK's standard chain (environment, profile
//! files, web identity, ECS, instance metadata); `profile` and
//! `credentials_file` choose a profile and a file for it. The SDK signs
//! every request (SigV4) and retries throttling and server errors with
//! backoff. Built only with the `aws` cargo feature.

use moontide_core::duration::serde_text;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `type = "aws_asg"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAsgConfig {
    /// The Auto Scaling group's name.
    pub group: String,
    /// The AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// A named profile for credentials (default: the chain's, `AWS_PROFILE` or `default`).
    /// Given (or with `credentials_file`), the profile alone supplies the
    /// credentials: `AWS_ACCESS_KEY_ID` in the environment does not override it.
    #[serde(default)]
    pub profile: Option<String>,
    /// A credentials file to read the profile from (default: ~/.aws/credentials).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Another endpoint speaking the Auto Scaling API (a VPC endpoint, a local emulator).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Per-attempt and per-operation timeout (default 10s).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
}

impl AwsAsgConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !cfg!(feature = "aws") {
            errs.push("this moontide was built without the `aws` feature (cargo build --features aws)".into());
        }
        if self.group.trim().is_empty() {
            errs.push("group is empty".into());
        }
        if self.region.trim().is_empty() || self.region.contains(char::is_whitespace) {
            errs.push(format!("region `{}` is not a region name like \"eu-west-1\"", self.region));
        }
        if let Some(u) = &self.endpoint_url {
            match reqwest::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                _ => errs.push(format!("endpoint_url: `{u}` is not an http(s) URL")),
            }
        }
        if self.timeout.is_zero() {
            errs.push("timeout must be longer than 0s".into());
        }
        errs
    }
}

#[cfg(feature = "aws")]
pub use live::AwsAsg;

#[cfg(feature = "aws")]
mod live {
    use super::AwsAsgConfig;
    use crate::targets::{ScaleError, Status};
    use aws_config::BehaviorVersion;
    use aws_config::timeout::TimeoutConfig;
    use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
    use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
    use moontide_core::Actuation;
    use moontide_core::duration::format as fmt_d;
    use tokio::sync::OnceCell;

    /// A live `aws_asg` target.
    pub struct AwsAsg {
        cfg: AwsAsgConfig,
        client: OnceCell<aws_sdk_autoscaling::Client>,
    }

    impl AwsAsg {
        /// Its per-request timeout.
        pub fn timeout(&self) -> std::time::Duration {
            self.cfg.timeout
        }

        /// A target for `cfg` (credentials are resolved on first use).
        pub fn new(_name: &str, cfg: &AwsAsgConfig) -> Result<Self, String> {
            Ok(AwsAsg { cfg: cfg.clone(), client: OnceCell::new() })
        }

        async fn client(&self) -> aws_sdk_autoscaling::Client {
            self.client
                .get_or_init(|| async {
                    let timeouts = TimeoutConfig::builder()
                        .connect_timeout(self.cfg.timeout)
                        .operation_attempt_timeout(self.cfg.timeout)
                        .operation_timeout(self.cfg.timeout * 3)
                        .build();
                    let mut loader = aws_config::defaults(BehaviorVersion::latest())
                        .region(aws_config::Region::new(self.cfg.region.clone()))
                        .timeout_config(timeouts);
                    if self.cfg.profile.is_some() || self.cfg.credentials_file.is_some() {
                        // A profile named here is the credentials: not AWS_ACCESS_KEY_ID and the
                        // rest of the default chain, which would come first. ~/.aws/config stays
                        // in (role_arn, source_profile, credential_process, SSO).
                        let files = EnvConfigFiles::builder().include_default_config_file(true);
                        let files = match &self.cfg.credentials_file {
                            Some(f) => files.with_file(EnvConfigFileKind::Credentials, f),
                            None => files.include_default_credentials_file(true),
                        }
                        .build();
                        let mut provider =
                            aws_config::profile::ProfileFileCredentialsProvider::builder().profile_files(files.clone());
                        if let Some(p) = &self.cfg.profile {
                            provider = provider.profile_name(p);
                            loader = loader.profile_name(p);
                        }
                        loader = loader.profile_files(files).credentials_provider(provider.build());
                    }
                    if let Some(u) = &self.cfg.endpoint_url {
                        loader = loader.endpoint_url(u);
                    }
                    aws_sdk_autoscaling::Client::new(&loader.load().await)
                })
                .await
                .clone()
        }

        /// An SDK error in a few words: AWS's code and message, or what failed on the way.
        fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
            &self,
            e: &SdkError<E, R>,
        ) -> String {
            match e {
                SdkError::TimeoutError(_) => format!("timed out after {}", fmt_d(self.cfg.timeout)),
                SdkError::DispatchFailure(d) if d.is_timeout() => {
                    format!("timed out after {}", fmt_d(self.cfg.timeout))
                }
                SdkError::DispatchFailure(d) => format!("cannot reach the Auto Scaling API: {d:?}"),
                _ => match (e.code(), e.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => {
                        let mut text = e.to_string();
                        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
                        while let Some(s) = cur {
                            text = s.to_string();
                            cur = s.source();
                        }
                        text
                    }
                },
            }
        }

        /// The group's desired capacity, and its instances that are InService and Healthy.
        pub async fn status(&self) -> Result<Status, String> {
            let group = &self.cfg.group;
            let out = self
                .client()
                .await
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(group)
                .send()
                .await
                .map_err(|e| format!("group `{group}`: {}", self.describe(&e)))?;
            let g = out
                .auto_scaling_groups()
                .iter()
                .find(|g| g.auto_scaling_group_name() == Some(group.as_str()))
                .ok_or_else(|| format!("no Auto Scaling group `{group}` in {}", self.cfg.region))?;
            let current = g.desired_capacity().unwrap_or(0).max(0) as u32;
            let ready = g
                .instances()
                .iter()
                .filter(|i| {
                    i.lifecycle_state().map(|s| s.as_str()) == Some("InService") && i.health_status() == Some("Healthy")
                })
                .count() as u32;
            Ok(Status { current, ready, note: None })
        }

        /// Sets the desired capacity.
        pub async fn scale(&self, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
            let mut act = Actuation { key: key.to_string(), attempts: 1, detail: String::new() };
            let sent = self
                .client()
                .await
                .set_desired_capacity()
                .auto_scaling_group_name(&self.cfg.group)
                .desired_capacity(desired.min(i32::MAX as u32) as i32)
                .honor_cooldown(false)
                .send()
                .await;
            match sent {
                Ok(_) => {
                    act.detail = format!("desired capacity {desired}");
                    Ok(act)
                }
                Err(e) => {
                    let message = self.describe(&e);
                    act.detail = message.clone();
                    Err(ScaleError {
                        message: format!("group `{}`: {message}", self.cfg.group),
                        reached: None,
                        actuation: act,
                    })
                }
            }
        }
    }
}
