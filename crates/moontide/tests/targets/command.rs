//! The `command` target: real commands (sh, sleep) on this machine.

use crate::common::{alive, group_members, wait_until};
use crate::contract::{Kit, check};
use moontide::targets::command::{CommandConfig, CommandTarget};
use moontide::targets::{Target, TargetConfig};
use std::time::Duration;

fn q(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A target whose scale command is `line` run by `sh -c`, counting from 1.
fn shell(line: &str, timeout: &str) -> CommandTarget {
    let mut cfg: CommandConfig = toml::from_str(&format!("initial = 1\ntimeout = \"{timeout}\"")).unwrap();
    cfg.shell = Some(line.into());
    CommandTarget::new("t", &cfg)
}

#[tokio::test]
async fn command_passes_the_target_contract() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("count");
    std::fs::write(&file, "3\n").unwrap();
    let f = q(&file);
    let healthy = format!(
        r#"type = "command"
command = ["sh", "-c", "echo $1 > '{f}'", "scale", "{{count}}"]
status_command = ["cat", "{f}"]"#
    );
    let failing = r#"type = "command"
command = ["sh", "-c", "echo 'quota exceeded' >&2; exit 3"]
initial = 1"#
        .to_string();
    let hanging = r#"type = "command"
command = ["sleep", "30"]
initial = 1
timeout = "300ms""#
        .to_string();
    let read = file.clone();
    check(
        "command",
        Kit {
            healthy,
            count: Box::new(move || std::fs::read_to_string(&read).unwrap().trim().parse().unwrap()),
            reads_status: true,
            failing,
            failing_says: "exited with status 3; stderr: quota exceeded",
            hanging,
            secret: None,
        },
    )
    .await;
}

#[tokio::test]
async fn no_shell_is_involved_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("args");
    let o = q(&out);
    // printf writes its arguments as given: a `;` or `$(...)` in them stays text
    let config: TargetConfig = toml::from_str(&format!(
        r#"type = "command"
command = ["sh", "-c", "printf '%s\n' \"$@\" > '{o}'", "argv", "--replicas={{count}}", "x; touch {o}.pwned", "$(id)"]
initial = 2"#
    ))
    .unwrap();
    let t = Target::build("t", &config).unwrap();
    t.scale(2, 5, "k").await.unwrap();
    let args = std::fs::read_to_string(&out).unwrap();
    assert_eq!(args, format!("--replicas=5\nx; touch {o}.pwned\n$(id)\n"));
    assert!(!std::path::Path::new(&format!("{o}.pwned")).exists());
    // without a status command the count is Moontide's own, and says so
    let s = t.status().await.unwrap();
    assert_eq!(s.current, 5);
    assert!(s.note.unwrap().contains("tracked by Moontide"));
}

#[tokio::test]
async fn a_shell_line_runs_when_asked_and_a_timeout_kills_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = q(&pidfile);
    let cfg: moontide::targets::command::CommandConfig = toml::from_str(&format!(
        r#"shell = "sleep 30 & echo $! > '{p}'; wait"
initial = 1
timeout = "500ms""#
    ))
    .unwrap();
    let t = CommandTarget::new("t", &cfg);
    let err = t.scale(1, 2, "k").await.unwrap_err();
    assert!(err.message.contains("timed out after 500ms"), "{}", err.message);
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(
        crate::common::wait_until(std::time::Duration::from_secs(5), || !crate::common::alive(pid)).await,
        "the shell's child {pid} outlived the timeout"
    );
    // a failed actuation leaves the tracked count alone
    assert_eq!(t.status().await.unwrap().current, 1);
}

#[tokio::test]
async fn a_status_command_that_fails_or_prints_garbage_is_an_error() {
    for (status, want) in [
        (r#"status_command = ["sh", "-c", "echo denied >&2; exit 1"]"#, "exited with status 1: denied"),
        (r#"status_shell = "echo lots""#, "expected a count on stdout, got `lots`"),
        (r#"status_command = ["/nonexistent/kubectl"]"#, "cannot start `/nonexistent/kubectl`"),
    ] {
        let cfg: TargetConfig = toml::from_str(&format!("type = \"command\"\ncommand = [\"true\"]\n{status}")).unwrap();
        let err = Target::build("t", &cfg).unwrap().status().await.unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

#[tokio::test]
async fn output_past_the_limit_is_read_to_the_end_and_the_end_of_stderr_kept() {
    // more than a pipe holds: a reader that stopped at its limit would leave these blocked until the timeout
    let act = shell("head -c 300000 /dev/zero; echo LAST >&2; exit 0", "5s").scale(1, 2, "k").await.unwrap();
    assert_eq!(act.detail, "exit 0; stderr: LAST");
    let err = shell("yes | head -c 300000 >&2; echo LAST >&2; exit 3", "5s").scale(1, 2, "k").await.unwrap_err();
    assert!(err.message.starts_with("command exited with status 3; stderr: …"), "{}", err.message);
    assert!(err.message.ends_with("y | LAST"), "{}", err.message);
    // a status command's count starts its stdout, however much follows
    let mut cfg: CommandConfig = toml::from_str("command = [\"true\"]\ntimeout = \"5s\"").unwrap();
    cfg.status_shell = Some("echo 7; yes ' ' | head -c 300000".into());
    let st = CommandTarget::new("t", &cfg).status().await.unwrap();
    assert_eq!((st.current, st.ready), (7, 7));
}

#[tokio::test]
async fn a_background_child_holding_the_pipes_neither_fails_the_command_nor_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let t = shell(&format!("sleep 300 & echo $! > '{}'; echo started", q(&pidfile)), "5s");
    let act = t.scale(1, 2, "k").await.unwrap();
    assert_eq!(act.detail, "exit 0");
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)).await, "the command's child {pid} outlived it");
    assert_eq!(t.status().await.unwrap().current, 2);
}

#[tokio::test]
async fn a_run_dropped_by_its_caller_kills_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let leader = dir.path().join("pgid");
    let mut cfg: CommandConfig = toml::from_str("command = [\"true\"]").unwrap();
    cfg.status_shell = Some(format!("echo $$ > '{}'; sleep 300; echo 1", q(&leader)));
    let t = CommandTarget::new("t", &cfg);
    let pgid = || std::fs::read_to_string(&leader).ok().and_then(|s| s.trim().parse::<u32>().ok());
    {
        // run the status command until its `sleep` is in the group, then drop it, as the engine
        // drops a status read that outlasts its own timeout
        let status = t.status();
        tokio::pin!(status);
        for _ in 0..200 {
            if pgid().is_some_and(|g| group_members(g).iter().any(|p| *p != g)) {
                break;
            }
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(50), &mut status).await {
                panic!("the status command ended: {r:?}");
            }
        }
    }
    let group = pgid().expect("the status command ran");
    let emptied = wait_until(Duration::from_secs(5), || group_members(group).is_empty()).await;
    let left = group_members(group);
    if !left.is_empty() {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group as i32), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(emptied, "left running in the dropped command's group {group}: {left:?}");
}
