//! `moontide lua check --script FILE --answer URL BODY --rounds N`: a
//! script-mode loop runs for N rounds on a virtual clock, its requests
//! answered from the command line, and the transcript says what it asked
//! for. Nothing is sent: the URLs below do not resolve.

use std::path::Path;
use std::process::Command;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/seed_loop.lua");
const METRICS: &str = "http://metrics.internal/metrics";

fn check(file: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["lua", "check", "--script"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn the_loop_runs_its_rounds_on_the_answers_given() {
    let seed = Path::new(SEED);
    // hot: every round asks for a scale-up, which has no answer here
    let (code, out, err) =
        check(seed, &["--answer", METRICS, r#"{"cpuUsage": 91, "memoryUsage": 40}"#, "--rounds", "2"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let ups = out.matches("GET https://cloud.example/v1/groups/web/scale-up → nil").count();
    assert_eq!(ups, 2, "{out}");
    assert!(!out.contains("scale-down"), "{out}");
    assert!(
        out.contains("+10s      GET http://metrics.internal/metrics → 200"),
        "the second round is 10 s later: {out}"
    );
    assert!(out.contains("ok (2 rounds, 4 requests, 20s of script time)"), "{out}");

    // quiet: scale-down; the default is three rounds
    let (code, out, _) = check(seed, &["--answer", METRICS, r#"{"cpuUsage": 10, "memoryUsage": 20}"#]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("scale-down → nil").count(), 3, "{out}");
    assert!(out.contains("ok (3 rounds, 6 requests, 30s of script time)"), "{out}");

    // unanswered metrics: this loop skips the round and says so, as it would in production
    let (code, out, _) = check(seed, &["--rounds", "1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("GET http://metrics.internal/metrics → nil"), "{out}");
    assert!(!out.contains("scale-up") && !out.contains("scale-down"), "{out}");

    // an answer the script never used is pointed out
    let (_, out, _) = check(seed, &["--answer", "http://metrics.internal/metric", "{}", "--rounds", "1"]);
    assert!(out.contains("never asked for http://metrics.internal/metric"), "{out}");
    // without --answer or --rounds it is compiled only
    let (code, out, _) = check(seed, &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("compiles; not run"), "{out}");
}

#[test]
fn a_failing_or_endless_loop_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // the guide's style: json.decode of a failed request's nil
    let guide = dir.path().join("guide.lua");
    std::fs::write(
        &guide,
        "local http = require('socket.http')\nlocal json = require('json')\nlocal socket = require('socket')\nwhile true do\n  local m = json.decode(http.request('http://localhost:8080/metrics'))\n  socket.sleep(10)\nend\n",
    )
    .unwrap();
    let (code, out, err) = check(&guide, &["--rounds", "2"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("guide.lua:5"), "{err}");
    assert!(err.contains("0 rounds, 1 request"), "{err}");
    // answered, the same loop runs
    let (code, out, err) = check(&guide, &["--answer", "http://LOCALHOST:8080/metrics", "{}", "--rounds", "2"]);
    assert_eq!(code, Some(0), "the URL matches as a URL, not as text: {out}{err}");

    // a loop that never sleeps is stopped at a bound, at its line
    let busy = dir.path().join("busy.lua");
    std::fs::write(
        &busy,
        "local http = require('socket.http')\nwhile true do\n  http.request('http://x.internal/')\nend\n",
    )
    .unwrap();
    let (code, _, err) = check(&busy, &["--rounds", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("busy.lua:3") && err.contains("1000 requests without a socket.sleep"), "{err}");

    // also when it catches that error and goes on
    let caught = dir.path().join("caught.lua");
    std::fs::write(
        &caught,
        "local http = require('socket.http')\nwhile true do\n  pcall(http.request, 'http://x.internal/')\nend\n",
    )
    .unwrap();
    let (code, _, err) = check(&caught, &["--rounds", "1"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("1000 requests without a socket.sleep") && err.contains("caught the error and went on"),
        "{err}"
    );

    // a script that returns is not an error: Moontide starts it again
    let once = dir.path().join("once.lua");
    std::fs::write(&once, "require('socket').sleep(5)\n").unwrap();
    let (code, out, _) = check(&once, &["--rounds", "3"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("the script returned (1 round, 0 requests, 5s of script time)"), "{out}");

    // bad arguments
    let (code, _, err) = check(&once, &["--answer", "not a url", "{}"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--answer `not a url`: not a URL"), "{err}");
    let (code, _, err) = check(&once, &["--answer", METRICS, "{}", "--answer", METRICS, "[]"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is given twice"), "{err}");
    let (code, _, _) = check(&once, &["--rounds", "0"]);
    assert_eq!(code, Some(2), "clap refuses 0 rounds");
}

const SCRIPT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/script.toml");

fn check_as_policy(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["lua", "check", "--script", "--config", SCRIPT_CONFIG, "--policy", "seed"])
        .args(args)
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `--config --policy`: the loop meets the policy as `run` sets it up. Its
/// actions are answered by the policy's guards (examples/script.toml: a 30 s
/// scale-up cooldown, a 5-minute scale-down stabilization, max 8) on a count
/// in memory; a source URL still needs an --answer; nothing is sent.
#[test]
fn as_a_configs_policy_the_loops_actions_meet_its_guards() {
    let hot = r#"{"cpuUsage": 91, "memoryUsage": 40}"#;
    let (code, out, err) = check_as_policy(&["--current", "2", "--rounds", "4", "--answer", METRICS, hot]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("→ 200, 35 bytes (--answer, for source `app`)"), "{out}");
    let ups: Vec<&str> = out.lines().filter(|l| l.contains("scale-up →")).collect();
    assert_eq!(ups.len(), 4, "{out}");
    assert!(ups[0].contains("→ 200: scaled 2 → 3"), "{}", ups[0]);
    // 10 and 20 s later the cooldown holds; 30 s later it has passed
    assert!(ups[1].contains("hold at 3") && ups[1].contains("cooldown"), "{}", ups[1]);
    assert!(ups[2].contains("hold at 3"), "{}", ups[2]);
    assert!(ups[3].contains("scaled 3 → 4"), "{}", ups[3]);
    assert!(err.is_empty(), "no log lines: {err}");

    // the bound: at max, a scale-up holds
    let (_, out, _) = check_as_policy(&["--current", "8", "--rounds", "1", "--answer", METRICS, hot]);
    assert!(out.lines().any(|l| l.contains("scale-up → 200: hold at 8")), "{out}");

    // a source URL without an answer: nil and what to give, as the source is not read
    let (code, out, _) = check_as_policy(&["--rounds", "1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("source `app` is not read by `moontide lua check`: give --answer"), "{out}");
}

#[test]
fn as_a_configs_policy_an_unmapped_host_fails_as_it_would_live() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("elsewhere.lua");
    std::fs::write(
        &script,
        "local http = require('socket.http')\nlocal socket = require('socket')\nwhile true do\n  http.request('http://other.internal/x')\n  socket.sleep(10)\nend\n",
    )
    .unwrap();
    // a file given beside the policy is checked as that policy's new script
    let (code, out, err) = check_as_policy(&[script.to_str().unwrap(), "--rounds", "1"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("elsewhere.lua:4"), "the script's line: {err}");
    assert!(err.contains("host other.internal is not allowed: add it to policies.seed.script.allow_hosts"), "{err}");

    // an --answer for an action URL would hide the guards: refused
    let (code, _, err) = check_as_policy(&["--answer", "https://cloud.example/v1/groups/web/scale-up", "{}"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("maps it to an action"), "{err}");
    // and one for a URL the script may not reach would never be used
    let (code, _, err) = check_as_policy(&["--answer", "http://other.internal/x", "{}"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("neither maps it nor allows its host"), "{err}");
    // a policy that is not there
    let o = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["lua", "check", "--script", "--config", SCRIPT_CONFIG, "--policy", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no policy `nope`; it has: seed"), "{err}");
}
