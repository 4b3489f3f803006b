//! `moontide simulate` end to end: a policy from a config against the
//! baselines on a small trace; bad traces and settings exit 2 naming the problem.

mod common;

use std::process::Command;

fn moontide(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moontide")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const POLICY: &str = r#"
[sources.app]
type = "http_json"
url = "http://127.0.0.1:1/metrics"

[targets.cloud]
type = "webhook"
url = "http://127.0.0.1:1/scale"
initial = 1

[policies.web]
target = "cloud"
interval = "15s"
min = 1
max = 50
metrics = { busy = { source = "app", query = "/cpuUsage" }, lag = { source = "app", query = "/p99" } }
checks = { cpu = { strategy = "target_tracking", targets = [{ metric = "busy", target = 50 }] } }
"#;

#[test]
fn a_policy_and_the_baselines_are_scored_on_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.txt");
    // 10 minutes at 20 req/s, 10 at 120, 10 at 20
    let values: Vec<String> =
        (0..1800).map(|i| if (600..1200).contains(&i) { "120" } else { "20" }.to_string()).collect();
    std::fs::write(&trace, values.join("\n")).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, POLICY).unwrap();
    let t = trace.to_str().unwrap();
    let c = config.to_str().unwrap();

    let (code, _, err) = moontide(&["simulate", "--trace", t, "--config", c]);
    assert_eq!(code, 2, "an unbound metric is refused");
    assert!(
        err.contains("metric `lag` (query `/p99`) has no simulated counterpart") && err.contains("--bind lag="),
        "{err}"
    );

    let (code, out, err) =
        moontide(&["simulate", "--trace", t, "--config", c, "--bind", "lag=latency_ms", "--capacity", "10"]);
    assert_eq!(code, 0, "{err}");
    for row in ["web (moontide)", "HPA (cpu 60%)", "KPA", "static peak", "oracle"] {
        assert!(out.contains(row), "{row} missing:\n{out}");
    }
    assert!(out.contains("1800 steps of 1 s (0.5 h), mean 53.3 req/s, peak 120.0 req/s"), "{out}");

    let (code, out, _) = moontide(&["simulate", "--trace", t, "--json", "--capacity", "10"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["trace"]["steps"], 1800);
    assert_eq!(v["model"]["capacity_rps"], 10.0);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "without a config, only the baselines run");
    let oracle = &runs[3]["scores"];
    assert_eq!(oracle["slo_violations_pct"], 0.0);
    assert_eq!(oracle["peak_replicas"], 12);
    let static_peak = &runs[2]["scores"];
    // 12 replicas for half an hour
    assert!((static_peak["cost_replica_hours"].as_f64().unwrap() - 6.0).abs() < 1e-9, "{static_peak}");
}

/// `--step` applies to a plain-values trace without `--format values`, and
/// to a CSV it is refused, not ignored.
#[test]
fn the_step_applies_to_a_guessed_trace_and_is_refused_for_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("v.txt");
    std::fs::write(&values, "1\n2\n3\n").unwrap();
    let (code, out, err) = moontide(&["simulate", "--trace", values.to_str().unwrap(), "--step", "5s"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 steps of 5 s"), "{out}");
    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "minute,requests\n0,60\n60,120\n").unwrap();
    let (code, _, err) = moontide(&["simulate", "--trace", csv.to_str().unwrap(), "--step", "5s"]);
    assert_eq!(code, 2);
    assert!(err.contains("c.csv: a step is for plain values"), "{err}");
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.txt");
    std::fs::write(&trace, "1\n2\nx\n").unwrap();
    let t = trace.to_str().unwrap();
    let (code, _, err) = moontide(&["simulate", "--trace", t]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.txt:3: `x` is not a number"), "{err}");
    std::fs::write(&trace, "1\n").unwrap();
    for (args, want) in [
        (vec!["--capacity", "0"], "capacity"),
        (vec!["--slo", "10ms"], "SLO must be longer than the service time"),
        (vec!["--speed=-1"], "--speed must be a positive number"),
        (vec!["--speed", "-1"], "--speed must be a positive number"),
        (vec!["--step", "0s"], "the step must be longer than 0s"),
        (vec!["--count-column", "n"], "time and count columns are for CSV traces"),
    ] {
        let mut all = vec!["simulate", "--trace", t];
        all.extend(args);
        let (code, _, err) = moontide(&all);
        assert_eq!(code, 2, "{want}");
        assert!(err.contains(want), "{err}");
    }
}

/// The report is one self-contained page: it opens in headless Chromium
/// (Debian's `chromium`, which `.ci/run` installs) with nothing fetched and
/// no error, and holds the score table and two plots per policy.
#[test]
fn the_report_opens_in_headless_chromium_with_one_plot_pair_per_policy() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium (.ci/run does)");
        eprintln!("skipped: /usr/bin/chromium is not installed (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.txt");
    let values: Vec<String> = (0..900).map(|i| if (300..600).contains(&i) { "90" } else { "15" }.to_string()).collect();
    std::fs::write(&trace, values.join("\n")).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, POLICY).unwrap();
    let report = dir.path().join("report.html");
    let (code, _, err) = moontide(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--bind",
        "lag=latency_ms",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("report written to"), "{err}");
    let profile = dir.path().join("profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    for bad in ["Uncaught", "Failed to load resource", "net::ERR_"] {
        assert!(!log.contains(bad), "the page logged `{bad}`: {log}");
    }
    // 5 policies (web, HPA, KPA, static peak, oracle), two plots each
    assert_eq!(dom.matches("<svg class=\"plot\"").count(), 10, "{}", &dom[..dom.len().min(2000)]);
    assert!(dom.contains("<table>") && dom.contains("web (moontide)") && dom.contains("oracle"));
}

#[test]
fn a_sweep_scores_every_trace_with_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut traces = Vec::new();
    for (name, level) in [("flat.txt", "20"), ("high.txt", "60")] {
        let p = dir.path().join(name);
        std::fs::write(&p, vec![level; 600].join("\n")).unwrap();
        traces.push(p);
    }
    let (t1, t2) = (traces[0].to_str().unwrap(), traces[1].to_str().unwrap());
    let (code, out, err) =
        moontide(&["simulate", "--sweep", "--trace", t1, "--trace", t2, "--set", "capacity=10,20", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let grid = v.as_array().unwrap();
    assert_eq!(grid.len(), 4, "2 traces × 2 capacities");
    assert_eq!(grid[1]["settings"], "capacity=20");
    assert!(grid[2]["trace"].as_str().unwrap().ends_with("high.txt"));
    // the static baseline needs ceil(60 / 10) = 6 replicas, then 3 with twice the capacity
    let peak = |i: usize| grid[i]["runs"][2]["scores"]["peak_replicas"].as_u64().unwrap();
    assert_eq!((peak(2), peak(3)), (6, 3));

    let (code, _, err) = moontide(&["simulate", "--trace", t1, "--trace", t2]);
    assert_eq!(code, 2);
    assert!(err.contains("several --trace values are a sweep: add --sweep"), "{err}");
    let (code, _, err) = moontide(&["simulate", "--trace", t1, "--set", "capacity=10,20"]);
    assert_eq!(code, 2);
    assert!(err.contains("--set gives values to sweep: add --sweep"), "{err}");
    let (code, _, err) = moontide(&["simulate"]);
    assert_eq!(code, 2);
    assert!(err.contains("--trace") && err.contains("--suite"), "either is what it needs: {err}");
    let (code, _, err) = moontide(&["simulate", "--sweep", "--trace", t1, "--set", "colour=red"]);
    assert_eq!(code, 2);
    assert!(err.contains("`colour` is not a setting to sweep"), "{err}");
    let (code, _, err) = moontide(&["simulate", "--sweep", "--trace", t1, "--set", "capacity=ten"]);
    assert_eq!(code, 2);
    assert!(err.contains("`ten` is not a number"), "{err}");
}

#[test]
fn a_suite_runs_each_trace_with_its_own_settings_and_every_policy_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::write(dir.path().join("traces/flat.txt"), vec!["60"; 600].join("\n")).unwrap();
    std::fs::write(dir.path().join("traces/rise.csv"), "t,n\n0,600\n60,1200\n120,2400\n").unwrap();
    let suite = dir.path().join("suite.toml");
    std::fs::write(
        &suite,
        r#"
[defaults]
capacity = 10
slo = "300ms"

[[trace]]
name = "flat"
file = "traces/flat.txt"

[[trace]]
file = "traces/rise.csv"
format = "rate-csv"
capacity = 20
startup = "30s"
"#,
    )
    .unwrap();
    let other = POLICY.replace("[policies.web]", "[policies.other]").replace("policies.web.", "policies.other.");
    let (c1, c2) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&c1, POLICY).unwrap();
    std::fs::write(&c2, other).unwrap();
    let (s, a, b) = (suite.to_str().unwrap(), c1.to_str().unwrap(), c2.to_str().unwrap());
    let base = ["simulate", "--suite", s, "--config", a, "--config", b, "--bind", "lag=latency_ms"];

    let (code, out, err) = moontide(&[&base[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["trace"], "flat");
    assert_eq!(rows[1]["trace"], "rise.csv", "an entry without a name is labelled by its file");
    // the defaults apply, and an entry's own settings win over them
    assert_eq!(rows[0]["summary"]["model"]["capacity_rps"], 10.0);
    assert_eq!(rows[0]["summary"]["model"]["slo_s"], 0.3);
    assert_eq!(rows[1]["summary"]["model"]["capacity_rps"], 20.0);
    assert_eq!(rows[1]["summary"]["model"]["startup_s"], 30.0);
    assert_eq!(rows[1]["summary"]["trace"]["steps"], 3, "three rows of a per-minute CSV");
    assert_eq!(rows[1]["summary"]["trace"]["step_seconds"], 60.0);
    let names: Vec<&str> = rows[0]["runs"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web (moontide)", "other (moontide)", "HPA (cpu 60%)", "KPA", "static peak", "oracle"]);

    let (code, out, err) = moontide(&[&base[..], &["--markdown"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("#### flat\n") && out.contains("#### rise.csv\n"), "{out}");
    assert!(out.contains("| policy | cost r·h | ×oracle | SLO viol% |"), "{out}");
    assert_eq!(out.matches("| other (moontide) |").count(), 2, "{out}");

    // bad suites: the file and the problem are named, exit 2
    for (text, want) in [
        ("[[trace]]\nfile = \"traces/flat.txt\"\ncapacty = 3\n", "unknown field `capacty`"),
        ("[[trace]]\nname = \"x\"\n", "trace 1 has no `file`"),
        (
            "[defaults]\nfile = \"traces/flat.txt\"\n[[trace]]\nfile = \"traces/flat.txt\"\n",
            "[defaults] cannot set `file`",
        ),
        ("[defaults]\ncapacity = 3\n", "no [[trace]] entries"),
        ("[[trace]]\nfile = \"traces/none.txt\"\n", "none.txt"),
        ("[[trace]]\nfile = \"traces/flat.txt\"\nstartup = \"soon\"\n", "soon"),
    ] {
        std::fs::write(&suite, text).unwrap();
        let (code, _, err) = moontide(&["simulate", "--suite", s]);
        assert_eq!(code, 2, "{text}");
        assert!(err.contains(want), "{text}: {err}");
        assert!(err.contains("suite.toml") || want == "none.txt", "{err}");
    }
    let (code, _, err) = moontide(&["simulate", "--suite", s, "--trace", a]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn an_llm_trace_is_replayed_against_the_llm_model_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("llm.csv");
    // a quiet start, then one request every 2 s for 20 minutes: 2,000 prompt tokens, 100 generated
    let mut csv = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    for i in 0..600 {
        csv += &format!("{},2000,100\n", 1_700_000_000 + 60 + 2 * i);
    }
    std::fs::write(&trace, csv).unwrap();
    let llm = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/llm.toml");
    let args = ["simulate-llm", "--trace", trace.to_str().unwrap(), "--config", llm, "--initial", "0", "--dt", "100ms"];
    let (code, out, err) = moontide(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("600 requests over 0.33 h"), "{out}");
    let row = |name: &str| {
        out.lines().find(|l| l.starts_with(&format!("| {name}"))).unwrap_or_else(|| panic!("{name}: {out}")).to_string()
    };
    let cells = |line: &str| line.split('|').map(|c| c.trim().to_string()).collect::<Vec<_>>();
    let header = cells(out.lines().find(|l| l.starts_with("| policy")).unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {out}"));
    for c in ["cost r·h", "×oracle", "SLO viol%", "θU%", "θO%", "τU%", "τO%", "actions/h"] {
        col(c);
    }
    let moontide_row = cells(&row("llm (moontide)"));
    // from zero: the first request waited for a model server to load (3 min)
    let cold: f64 = moontide_row[col("cold wait max s")].parse().unwrap();
    assert!(cold >= 180.0, "cold wait {cold}: {out}");
    assert!(moontide_row[col("cold requests")].parse::<u32>().unwrap() >= 1);
    assert!(out.contains("policies, HPA and KPA start with 0 replica(s)"), "{out}");
    row("HPA (16 running/replica)");
    row("KPA (16 concurrent/replica)");
    row("static, smallest under 1 % (");
    let peak = cells(&row("static peak ("));
    // the oracle: the cost every ×oracle figure divides by, within its 1 % tolerance
    let oracle = cells(&row("oracle (hindsight plan)"));
    assert_eq!(oracle[col("×oracle")], "1.00", "{out}");
    assert!(oracle[col("SLO viol%")].parse::<f64>().unwrap() <= 1.0, "{out}");
    assert_eq!(oracle[col("cold requests")], "0", "the oracle starts its replicas in time: {out}");
    // a fleet of the peak demand all along is never short of it
    assert_eq!(peak[col("θU%")], "0.0", "{out}");
    assert_eq!(peak[col("τU%")], "0.0", "{out}");

    // the same as JSON
    let (code, out, err) = moontide(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["requests"], 600);
    let runs = v["runs"].as_array().unwrap();
    let names: Vec<&str> = runs.iter().filter_map(|r| r["policy"].as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(names[0], "llm (moontide)");
    assert!(runs[0]["cold_wait_max"].as_f64().unwrap() >= 180.0, "{out}");
    assert!(runs.iter().all(|r| r["theta_u"].is_number() && r["cost_vs_oracle"].is_number()), "{out}");

    let (code, _, err) = moontide(&["simulate-llm", "--trace", llm]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error:"), "{err}");

    // the model's flags are checked by name
    let t = trace.to_str().unwrap();
    for (flag, want) in [
        (["--kv-tokens", "0"], "'--kv-tokens <KV_TOKENS>'"),
        (["--prefill-tps", "-5"], "'--prefill-tps <PREFILL_TPS>': must be a positive number"),
        (["--ttft-slo", "0s"], "'--ttft-slo <TTFT_SLO>': must be longer than 0s"),
        (["--itl-slo", "10ms"], "--itl-slo 10ms is shorter than --itl 25ms"),
    ] {
        let (code, _, err) = moontide(&[&["simulate-llm", "--trace", t][..], &flag[..]].concat());
        assert_eq!(code, 2, "{flag:?}");
        assert!(err.contains(want), "{flag:?}: {err}");
    }

    // a config of several policies: pick one with --policy, as `simulate` does
    let two = dir.path().join("two.toml");
    let text = std::fs::read_to_string(llm).unwrap().replace("policies/", &format!("{}/policies/", examples()));
    // a second policy on a second target (a target takes one policy)
    let target = &text[text.find("[targets.gpus]").unwrap()..text.find("[policies.llm]").unwrap()];
    let other = text.replace("[policies.llm", "[policies.other").replace("target = \"gpus\"", "target = \"gpus2\"");
    let other = &other[other.find("[policies.other").unwrap()..];
    std::fs::write(&two, format!("{text}\n{}\n{other}", target.replace("[targets.gpus]", "[targets.gpus2]"))).unwrap();
    let base = ["simulate-llm", "--trace", trace.to_str().unwrap(), "--config", two.to_str().unwrap(), "--dt", "1s"];
    let (code, _, err) = moontide(&base);
    assert_eq!(code, 2);
    assert!(err.contains("two.toml: several policies (llm, other): pick one with --policy"), "{err}");
    let (code, out, err) = moontide(&[&base[..], &["--policy", "other"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| other (moontide)") && !out.contains("| llm (moontide)"), "{out}");
    let (code, _, err) = moontide(&[&base[..], &["--policy", "nosuch"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("two.toml: no policy `nosuch` (policies: llm, other)"), "{err}");
}

fn examples() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples").to_string()
}

#[test]
fn a_closed_stdout_ends_the_command_quietly_like_sigpipe() {
    // `moontide simulate ... | head -1`: the reader goes away before the tables are written
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.txt");
    std::fs::write(&trace, vec!["20"; 600].join("\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moontide"))
        .args(["simulate", "--trace", trace.to_str().unwrap(), "--capacity", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
