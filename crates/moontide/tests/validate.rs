//! `moontide validate` (and `run`) on broken configs: exit 2 and a message
//! naming the file, line and field.

mod common;

use std::process::Command;

const GOOD: &str = r#"
[sources.app]
type = "http_json"
url = "http://127.0.0.1:8080/metrics"

[targets.cloud]
type = "webhook"
url = "http://127.0.0.1:9000/scale"
initial = 1

[policies.web]
target = "cloud"
interval = "10s"
min = 1
max = 10

[policies.web.metrics]
cpu = { source = "app", query = "/cpuUsage" }

[policies.web.checks.cpu]
strategy = "target_tracking"
targets = [{ metric = "cpu", target = 60 }]
"#;

fn moontide(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moontide")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("`{needle}` not in config")) + 1
}

#[test]
fn a_good_config_validates() {
    let (_dir, path) = common::config_file(GOOD);
    let (code, out, err) = moontide(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 source(s), 1 target(s), 1 policy)"), "{out}");
}

#[test]
fn a_cost_budget_priced_by_each_policy_validates() {
    // README: max_cost_per_hour "needs a price: here, or each policy's own"
    let config = GOOD.replace("[sources.app]", "[budget]\nmax_cost_per_hour = 40\n\n[sources.app]")
        + "\n[policies.web.behaviour]\nbudget = { price_per_replica_hour = 0.8 }\n";
    let (_dir, path) = common::config_file(&config);
    let (code, _, err) = moontide(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// One broken config: what is broken, the edit applied to GOOD (from → to),
/// the line that must be blamed (a substring of it), and the field and words
/// the message must name.
struct Broken {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    line: &'static str,
    field: &'static str,
    words: &'static str,
}

const fn b(
    what: &'static str,
    from: &'static str,
    to: &'static str,
    line: &'static str,
    field: &'static str,
    words: &'static str,
) -> Broken {
    Broken { what, from, to, line, field, words }
}

const BROKEN: &[Broken] = &[
    b("unknown key", "min = 1\n", "min = 1\nminn = 2\n", "minn", "policies.web.minn", "unknown field `minn`"),
    b(
        "unknown top-level key",
        "[sources.app]",
        "colour = \"blue\"\n[sources.app]",
        "colour",
        "colour",
        "unknown field `colour`",
    ),
    b("wrong type", "min = 1\n", "min = \"one\"\n", "min = ", "policies.web.min", "invalid type"),
    b("negative min", "min = 1\n", "min = -1\n", "min = ", "policies.web.min", "-1"),
    b(
        "dangling target",
        "target = \"cloud\"",
        "target = \"clout\"",
        "clout",
        "policies.web.target",
        "no target named `clout`",
    ),
    b(
        "dangling source",
        "source = \"app\"",
        "source = \"ap\"",
        "\"ap\"",
        "policies.web.metrics.cpu.source",
        "no source named `ap`",
    ),
    b("min > max", "min = 1\n", "min = 11\n", "min = ", "policies.web.min", "min (11) is greater than max (10)"),
    b(
        "zero interval",
        "interval = \"10s\"",
        "interval = \"0s\"",
        "interval",
        "policies.web.interval",
        "longer than 0s",
    ),
    b(
        "a duration without its unit",
        "interval = \"10s\"",
        "interval = 10",
        "interval",
        "policies.web.interval",
        "a duration is text with a unit, like \"10s\"",
    ),
    b(
        "negative interval",
        "interval = \"10s\"",
        "interval = \"-5s\"",
        "interval",
        "policies.web.interval",
        "negative duration",
    ),
    b(
        "bad unit",
        "interval = \"10s\"",
        "interval = \"10x\"",
        "interval",
        "policies.web.interval",
        "unknown unit \"x\"",
    ),
    b(
        "unknown strategy",
        "strategy = \"target_tracking\"",
        "strategy = \"guess\"",
        "strategy",
        "policies.web.checks.cpu",
        "unknown variant `guess`",
    ),
    b(
        "undeclared metric",
        "metric = \"cpu\"",
        "metric = \"gpu\"",
        "[policies.web.checks.cpu]",
        "policies.web.checks.cpu",
        "metric `gpu` is not declared",
    ),
    b(
        "bad query",
        "query = \"/cpuUsage\"",
        "query = \"cpuUsage\"",
        "cpuUsage",
        "policies.web.metrics.cpu.query",
        "not a JSON pointer",
    ),
    b(
        "unknown source type",
        "type = \"http_json\"",
        "type = \"http_jsonx\"",
        "http_jsonx",
        "sources.app.type",
        "unknown variant `http_jsonx`",
    ),
    b(
        "webhook without status or initial",
        "initial = 1\n",
        "\n",
        "[targets.cloud]",
        "targets.cloud",
        "give `status_url`",
    ),
    b("bad TOML", "max = 10", "max = = 10", "max = =", "policies.web.max", "extra `=`"),
    b(
        "predictive without target or forecast_only",
        "strategy = \"target_tracking\"\ntargets = [{ metric = \"cpu\", target = 60 }]\n",
        "strategy = \"predictive\"\nmetric = \"cpu\"\n",
        "[policies.web.checks.cpu]",
        "policies.web.checks.cpu",
        "or set `forecast_only = true`",
    ),
    b(
        "predictive with a bad per_step",
        "strategy = \"target_tracking\"\ntargets = [{ metric = \"cpu\", target = 60 }]\n",
        "strategy = \"predictive\"\nmetric = \"cpu\"\nforecast_only = true\nper_step = \"median\"\n",
        "per_step",
        "policies.web.checks.cpu",
        "unknown variant `median`",
    ),
    b(
        "server off loopback",
        "[sources.app]",
        "[server]\nlisten = \"0.0.0.0:9464\"\n\n[sources.app]",
        "listen = ",
        "server.listen",
        "not a loopback address",
    ),
    b(
        "a token's bad role, in an inline table",
        "[sources.app]",
        "[server]\ntokens = [\n  { name = \"a\", role = \"boss\", sha256 = \"00\" },\n]\n\n[sources.app]",
        "{ name = ",
        "server.tokens.role",
        "unknown variant `boss`",
    ),
    b(
        "a token's unknown key, in an inline table",
        "[sources.app]",
        "[server]\ntokens = [\n  { name = \"a\", rol = \"viewer\", sha256 = \"00\" },\n]\n\n[sources.app]",
        "{ name = ",
        "server.tokens.rol",
        "unknown field `rol`",
    ),
    b(
        "the second token's bad hash",
        "[sources.app]",
        "[server]\n\n[[server.tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"8fd59a9c2f505340ff1886538b8f9a31962b03b55f91dd3998406a67da0bf4d9\"\n\n[[server.tokens]]\nname = \"b\"\nrole = \"viewer\"\nsha256 = \"00\"\n\n[sources.app]",
        "name = \"b\"",
        "server.tokens.b",
        "sha256 must be 64 hex digits",
    ),
    b(
        "a token's bad hash",
        "[sources.app]",
        "[server]\ntokens = [\n  { name = \"a\", role = \"viewer\", sha256 = \"00\" },\n]\n\n[sources.app]",
        "{ name = ",
        "server.tokens.a",
        "sha256 must be 64 hex digits",
    ),
    b(
        "bad PromQL",
        "type = \"http_json\"\nurl = \"http://127.0.0.1:8080/metrics\"",
        "type = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"",
        "query = ",
        "policies.web.metrics.cpu.query",
        "is not valid PromQL",
    ),
    b(
        "scrape query that is not a selector",
        "type = \"http_json\"\nurl = \"http://127.0.0.1:8080/metrics\"",
        "type = \"scrape\"\nurls = [\"http://127.0.0.1:8080/metrics\"]",
        "query = ",
        "policies.web.metrics.cpu.query",
        "is not a series selector",
    ),
    b(
        "push source without a token",
        "type = \"http_json\"\nurl = \"http://127.0.0.1:8080/metrics\"",
        "type = \"push\"",
        "[sources.app]",
        "sources.app",
        "needs a token",
    ),
    b(
        "command target with command and shell",
        "type = \"webhook\"\nurl = \"http://127.0.0.1:9000/scale\"",
        "type = \"command\"\ncommand = [\"true\"]\nshell = \"true\"",
        "[targets.cloud]",
        "targets.cloud",
        "either `command` or `shell`",
    ),
    b(
        "cost budget without a price",
        "[sources.app]",
        "[budget]\nmax_cost_per_hour = 10\n\n[sources.app]",
        "[policies.web]",
        "policies.web.behaviour.budget.price_per_replica_hour",
        "give this policy a price",
    ),
    b(
        "breaker that never waits",
        "[sources.app]",
        "[breaker]\nbackoff = \"0s\"\n\n[sources.app]",
        "[breaker]",
        "breaker.backoff",
        "must be positive",
    ),
    b(
        "sanity factor of one",
        "targets = [{ metric = \"cpu\", target = 60 }]",
        "targets = [{ metric = \"cpu\", target = 60 }]\n\n[policies.web.behaviour]\nsanity = { factor = 1 }",
        "[policies.web.behaviour]",
        "policies.web.behaviour.sanity.factor",
        "must be a number above 1",
    ),
    b(
        "schedule in an unknown time zone",
        "[policies.web.checks.cpu]",
        "[policies.web.checks.hours]\nstrategy = \"schedule\"\ntimezone = \"Europe/Atlantis\"\nwindows = [{ cron = \"0 8 * * MON-FRI\", duration = \"10h\", min = 4 }]\n\n[policies.web.checks.cpu]",
        "[policies.web.checks.hours]",
        "policies.web.checks.hours",
        "unknown time zone `Europe/Atlantis`",
    ),
    b(
        "decisions kept too briefly",
        "[sources.app]",
        "keep_decisions = \"10m\"\n\n[sources.app]",
        "keep_decisions",
        "keep_decisions",
        "keep decisions at least 1h, not 10m",
    ),
    b(
        "decisions kept for a bad duration",
        "[sources.app]",
        "keep_decisions = \"two weeks\"\n\n[sources.app]",
        "keep_decisions",
        "keep_decisions",
        "two weeks",
    ),
    b(
        "cluster over https without a CA",
        "[sources.app]",
        "[cluster]\netcd = [\"https://127.0.0.1:2379\"]\n\n[sources.app]",
        "[cluster]",
        "cluster.ca_file",
        "need the CA that signed etcd's certificate",
    ),
    b(
        "cluster.cert_file without key_file",
        "[sources.app]",
        "[cluster]\netcd = [\"https://127.0.0.1:2379\"]\nca_file = \"ca.pem\"\ncert_file = \"c.pem\"\n\n[sources.app]",
        "[cluster]",
        "cluster.cert_file",
        "give cert_file and key_file together",
    ),
    b(
        "cluster without endpoints",
        "[sources.app]",
        "[cluster]\netcd = []\n\n[sources.app]",
        "[cluster]",
        "cluster.etcd",
        "at least one endpoint",
    ),
];

#[test]
fn broken_configs_name_line_and_field_and_exit_2() {
    for case in BROKEN {
        assert!(GOOD.contains(case.from), "{}: `{}` not in GOOD", case.what, case.from);
        let text = GOOD.replacen(case.from, case.to, 1);
        let (_dir, path) = common::config_file(&text);
        let p = path.to_str().unwrap();
        let (code, _, err) = moontide(&["validate", p]);
        let what = case.what;
        assert_eq!(code, 2, "{what}: exit code; stderr: {err}");
        let line = line_of(&text, case.line);
        assert!(err.contains(&format!("{p}:{line}:")), "{what}: expected line {line} in: {err}");
        assert!(err.contains(case.field), "{what}: expected field `{}` in: {err}", case.field);
        assert!(err.contains(case.words), "{what}: expected `{}` in: {err}", case.words);
    }
}

#[test]
fn run_refuses_a_broken_config_the_same_way() {
    let text = GOOD.replacen("min = 1\n", "min = 11\n", 1);
    let (dir, path) = common::config_file(&text);
    let state = dir.path().join("state");
    let (code, _, err) = moontide(&["run", "--config", path.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("min (11) is greater than max (10)"), "{err}");
    assert!(!state.exists(), "nothing is created for a config that does not validate");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = GOOD.replacen("min = 1\n", "min = 11\n", 1).replacen("target = \"cloud\"", "target = \"nope\"", 1);
    let (_dir, path) = common::config_file(&text);
    let (code, _, err) = moontide(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("min (11)") && err.contains("no target named `nope`"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let (code, _, err) = moontide(&["validate", "/nonexistent/moontide.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/moontide.toml: cannot read config"), "{err}");
}

#[test]
fn the_shipped_examples_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") && !path.ends_with("demo.toml") {
            let (code, _, err) = moontide(&["validate", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {err}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1, "examples/ holds configs");
}

#[test]
fn help_lists_every_subcommand() {
    let (code, out, _) = moontide(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["run", "validate", "history", "demo", "worker"] {
        assert!(out.contains(sub), "{sub} missing from --help: {out}");
    }
    for sub in ["run", "validate", "history", "demo", "worker"] {
        let (code, out, _) = moontide(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub} --help");
        assert!(out.contains("Usage: moontide"), "{out}");
    }
}
