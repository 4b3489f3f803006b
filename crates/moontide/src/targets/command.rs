//! `command`: run a user command with the desired count, for platforms
//! Moontide has no built-in target for (`kubectl scale`, a cloud CLI, a
//! deployment script).
//!
//! The command is an argv list run directly, no shell involved, unless the
//! config asks for one with `shell = "..."` (then `sh -c`). `{count}`,
//! `{current}`, `{target}` and `{key}` are substituted in every argument.
//! A command that exits non-zero, or runs past its timeout, fails the
//! actuation; its exit status and the end of its stderr are recorded in the
//! decision. Each run has its own process group, killed once the command is
//! done: as soon as it exits (its output is still read, for a moment more if
//! something outside the group holds its pipes), when it times out, and
//! when the run is abandoned. The current count comes from
//! `status_command`'s stdout, or, without one, from Moontide's own count of
//! what it set.

use crate::targets::{ScaleError, Status};
use moontide_core::Actuation;
use moontide_core::duration::{format as fmt_d, serde_text};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Most bytes of a command's stdout (its start) or stderr (its end) kept;
/// the rest is read and discarded.
const OUTPUT_LIMIT: usize = 64 * 1024;
/// Most characters of stderr recorded in a decision.
const DETAIL_LIMIT: usize = 400;
/// How long output is still read after the command exits: something it left
/// in the background may hold its pipes open.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// `type = "command"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments, templated: `["kubectl", "scale", "deploy/web", "--replicas={count}"]`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Instead of `command`: a command line run with `sh -c` (templated the same way).
    #[serde(default)]
    pub shell: Option<String>,
    /// Prints the current count on stdout: `N`, `N READY`, or JSON `{"current": N, "ready": R}`.
    #[serde(default)]
    pub status_command: Vec<String>,
    /// Instead of `status_command`: a command line run with `sh -c`.
    #[serde(default)]
    pub status_shell: Option<String>,
    /// Without a status command: the count running when Moontide first starts.
    #[serde(default)]
    pub initial: Option<u32>,
    /// Longest a command may run (default 60s); past it, its process group is killed.
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// Extra environment variables for the commands.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the commands (default: Moontide's).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl CommandConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match (self.command.is_empty(), &self.shell) {
            (true, None) => errs.push("give `command` (an argv list) or `shell` (a command line for sh -c)".into()),
            (false, Some(_)) => errs.push("give either `command` or `shell`, not both".into()),
            (false, None) if self.command[0].trim().is_empty() => errs.push("command: the program is empty".into()),
            _ => {}
        }
        match (self.status_command.is_empty(), &self.status_shell) {
            (false, Some(_)) => errs.push("give either `status_command` or `status_shell`, not both".into()),
            (true, None) if self.initial.is_none() => errs.push(
                "give `status_command` (prints the current count) or `initial` (the count running now; Moontide then counts what it sets)".into(),
            ),
            _ => {}
        }
        if self.timeout.is_zero() {
            errs.push("timeout must be longer than 0s".into());
        }
        errs
    }

    fn has_status(&self) -> bool {
        !self.status_command.is_empty() || self.status_shell.is_some()
    }
}

/// What one run of a command gave.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A live `command` target.
pub struct CommandTarget {
    name: String,
    cfg: CommandConfig,
    tracked: Mutex<u32>,
}

impl CommandTarget {
    /// Its timeout per run.
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// A target for `cfg`.
    pub fn new(name: &str, cfg: &CommandConfig) -> Self {
        CommandTarget { name: name.to_string(), cfg: cfg.clone(), tracked: Mutex::new(cfg.initial.unwrap_or(0)) }
    }

    fn tracked(&self) -> u32 {
        *self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_tracked(&self, n: u32) {
        *self.tracked.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }

    /// After a restart: the count Moontide last set.
    pub fn restore(&self, last_set: u32) {
        if !self.cfg.has_status() {
            self.set_tracked(last_set);
        }
    }

    /// Runs the status command, or reports Moontide's own count.
    pub async fn status(&self) -> Result<Status, String> {
        if !self.cfg.has_status() {
            let n = self.tracked();
            return Ok(Status {
                current: n,
                ready: n,
                note: Some("no status_command: count tracked by Moontide, not read from the platform".into()),
            });
        }
        let argv = argv(&self.cfg.status_command, self.cfg.status_shell.as_deref(), &|s| s.to_string());
        let ran = self.run(&argv).await.map_err(|e| format!("status command: {e}"))?;
        if ran.code != Some(0) {
            return Err(format!("status command {}: {}", exit_text(ran.code), tail(&ran.stderr)));
        }
        parse_status(&ran.stdout).map_err(|e| format!("status command: {e}"))
    }

    /// Runs the scale command with `desired` substituted.
    pub async fn scale(&self, current: u32, desired: u32, key: &str) -> Result<Actuation, ScaleError> {
        let fill = |t: &str| {
            t.replace("{count}", &desired.to_string())
                .replace("{current}", &current.to_string())
                .replace("{target}", &self.name)
                .replace("{key}", key)
        };
        let argv = argv(&self.cfg.command, self.cfg.shell.as_deref(), &fill);
        let mut act = Actuation { key: key.to_string(), attempts: 1, detail: String::new() };
        match self.run(&argv).await {
            Ok(ran) if ran.code == Some(0) => {
                self.set_tracked(desired);
                act.detail = if ran.stderr.trim().is_empty() {
                    "exit 0".into()
                } else {
                    format!("exit 0; stderr: {}", tail(&ran.stderr))
                };
                Ok(act)
            }
            Ok(ran) => {
                act.detail = format!("{}; stderr: {}", exit_text(ran.code), tail(&ran.stderr));
                Err(ScaleError { message: format!("command {}", act.detail), reached: None, actuation: act })
            }
            Err(message) => {
                act.detail = message.clone();
                Err(ScaleError { message: format!("command: {message}"), reached: None, actuation: act })
            }
        }
    }

    /// Runs `argv` in its own process group, bounded by the timeout; see the module docs.
    async fn run(&self, argv: &[String]) -> Result<Ran, String> {
        let (program, args) = argv.split_first().ok_or("nothing to run")?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .envs(&self.cfg.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.cfg.dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start `{program}`: {e}"))?;
        // from here on, every way out of this function kills the whole group:
        // done, timed out, or this future dropped by its caller
        let mut group = Group(child.id().map(|pid| Pid::from_raw(pid as i32)));
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let status = {
            let reading = async { tokio::join!(drain(out, Keep::Head, &mut o), drain(err, Keep::Tail, &mut e)) };
            let mut reading = std::pin::pin!(reading);
            // read while waiting, so a program that prints a lot never blocks on a full pipe
            let ran = tokio::time::timeout(self.cfg.timeout, async {
                tokio::select! {
                    status = child.wait() => (status, false),
                    _ = reading.as_mut() => (child.wait().await, true),
                }
            })
            .await;
            let Ok((status, drained)) = ran else {
                return Err(format!("`{program}` timed out after {} and was killed", fmt_d(self.cfg.timeout)));
            };
            // the command is done: what it left in its group goes now, while the
            // group's id is still its own; what they wrote stays readable
            group.kill();
            if !drained {
                let _ = tokio::time::timeout(DRAIN_GRACE, reading.as_mut()).await;
            }
            status.map_err(|why| format!("waiting for `{program}`: {why}"))?
        };
        let e = &e[e.len().saturating_sub(OUTPUT_LIMIT)..];
        Ok(Ran {
            code: status.code(),
            stdout: String::from_utf8_lossy(&o).into_owned(),
            stderr: String::from_utf8_lossy(e).into_owned(),
        })
    }
}

/// A command's process group, killed (SIGKILL) when this is dropped.
struct Group(Option<Pid>);

impl Group {
    /// Kills the group (once).
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill()
    }
}

/// Which part of a stream `drain` keeps.
#[derive(Copy, Clone)]
enum Keep {
    Head,
    Tail,
}

/// Reads `pipe` to its end into `into`, keeping its first or its last
/// `OUTPUT_LIMIT` bytes (up to twice that for the end, trimmed by the
/// caller) and discarding the rest.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, keep: Keep, into: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match keep {
            Keep::Head => {
                let room = OUTPUT_LIMIT.saturating_sub(into.len());
                into.extend_from_slice(&buf[..n.min(room)]);
            }
            Keep::Tail => {
                into.extend_from_slice(&buf[..n]);
                // trimmed now and then, not on every read
                if into.len() >= 2 * OUTPUT_LIMIT {
                    let cut = into.len() - OUTPUT_LIMIT;
                    into.copy_within(cut.., 0);
                    into.truncate(OUTPUT_LIMIT);
                }
            }
        }
    }
}

/// The argv to run: the templated list, or `sh -c LINE`.
fn argv(command: &[String], shell: Option<&str>, fill: &dyn Fn(&str) -> String) -> Vec<String> {
    match shell {
        Some(line) => vec!["sh".into(), "-c".into(), fill(line)],
        None => command.iter().map(|a| fill(a)).collect(),
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".into(),
    }
}

/// The last few hundred characters of some output, on one line.
fn tail(s: &str) -> String {
    let s = s.trim().replace('\n', " | ");
    let n = s.chars().count();
    if n <= DETAIL_LIMIT { s } else { format!("…{}", s.chars().skip(n - DETAIL_LIMIT).collect::<String>()) }
}

/// Reads `N`, `N READY` or `{"current": N, "ready": R}` (also `replicas` for `current`).
pub fn parse_status(stdout: &str) -> Result<Status, String> {
    let text = stdout.trim();
    let count = |v: f64, what: &str| -> Result<u32, String> {
        if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f64 {
            return Err(format!("{what} is {v}, not a replica count"));
        }
        Ok(v as u32)
    };
    if text.starts_with('{') {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON on stdout: {e}"))?;
        let field = |k: &str| doc.get(k).and_then(|v| v.as_f64());
        let current = field("current")
            .or_else(|| field("replicas"))
            .ok_or("the JSON on stdout has no number `current` (or `replicas`)")?;
        let current = count(current, "current")?;
        let ready = match field("ready") {
            Some(r) => count(r, "ready")?,
            None => current,
        };
        return Ok(Status { current, ready, note: None });
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let num = |w: &str, what: &str| -> Result<u32, String> {
        let v: f64 = w.parse().map_err(|_| format!("expected a count on stdout, got `{}`", tail(text)))?;
        count(v, what)
    };
    match words.as_slice() {
        [c] => {
            let c = num(c, "the count")?;
            Ok(Status { current: c, ready: c, note: None })
        }
        [c, r] => Ok(Status { current: num(c, "current")?, ready: num(r, "ready")?, note: None }),
        [] => Err("the status command printed nothing; it must print the current count".into()),
        _ => Err(format!("expected `N`, `N READY` or JSON on stdout, got `{}`", tail(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_output_forms() {
        let s = |c, r| Status { current: c, ready: r, note: None };
        assert_eq!(parse_status("3\n"), Ok(s(3, 3)));
        assert_eq!(parse_status(" 4 2 "), Ok(s(4, 2)));
        assert_eq!(parse_status(r#"{"current": 5, "ready": 4}"#), Ok(s(5, 4)));
        assert_eq!(parse_status(r#"{"replicas": 6}"#), Ok(s(6, 6)));
        assert!(parse_status("").unwrap_err().contains("printed nothing"));
        assert!(parse_status("three").unwrap_err().contains("got `three`"));
        assert!(parse_status("-1").unwrap_err().contains("not a replica count"));
        assert!(parse_status("2.5").unwrap_err().contains("not a replica count"));
        assert!(parse_status("1 2 3").unwrap_err().contains("expected `N`, `N READY`"));
        assert!(parse_status(r#"{"count": 1}"#).unwrap_err().contains("no number `current`"));
        assert!(parse_status("{nope").unwrap_err().contains("malformed JSON"));
    }

    #[test]
    fn config_needs_one_command_and_a_way_to_count() {
        let base = CommandConfig {
            command: vec!["true".into()],
            shell: None,
            status_command: vec![],
            status_shell: None,
            initial: Some(1),
            timeout: default_timeout(),
            env: BTreeMap::new(),
            dir: None,
        };
        assert!(base.validate().is_empty());
        let both = CommandConfig { shell: Some("true".into()), ..base.clone() };
        assert!(both.validate()[0].contains("not both"));
        let none = CommandConfig { command: vec![], ..base.clone() };
        assert!(none.validate()[0].contains("give `command`"));
        let uncounted = CommandConfig { initial: None, ..base.clone() };
        assert!(uncounted.validate()[0].contains("status_command"));
        let zero = CommandConfig { timeout: Duration::ZERO, ..base };
        assert!(zero.validate()[0].contains("timeout"));
    }
}
