//! The `command` target: real commands (sh, sleep) on this machine.

use crate::contract::{Kit, check};
use moontide::targets::command::CommandTarget;
use moontide::targets::{Target, TargetConfig};

fn q(p: &std::path::Path) -> String {
    p.display().to_string()
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
