//! `moontide lua check --script FILE --answer URL BODY --rounds N`: runs a
//! script-mode loop for a few rounds on a virtual clock, answering its
//! requests from the command line, and prints what it asked for. Nothing is
//! sent anywhere and no target is touched.
//!
//! With `--config FILE --policy NAME`, the loop also meets the policy as
//! `moontide run` would set it up: its URL mappings and allowed hosts, and
//! action URLs answered by the policy's own guards and bounds, acting on a
//! count kept in memory (`--current`) instead of the target.

use crate::engine::PolicyRuntime;
use crate::script::{Action, Route, ScriptConfig, UrlMapping};
use crate::store::Store;
use crate::targets::{Target, memory::Memory};
use moontide_core::{Clock, ManualClock, Timestamp};
use moontide_lua::script::{BoxFuture, HttpError, HttpRequest, HttpResponse, Script, ScriptHost};
use moontide_lua::testing::DEFAULT_NOW;
use moontide_lua::{Limits, Origin};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

use crate::script::{MAX_REQUESTS_PER_ROUND, runaway};

/// `--config FILE --policy NAME`, and the count the fleet starts at.
pub struct Setup<'a> {
    /// The config file.
    pub config: &'a Path,
    /// The script-mode policy in it.
    pub policy: &'a str,
    /// The count the fleet starts at.
    pub current: u32,
}

/// The policy a check runs against: where its requests go, and its runtime,
/// whose target is a count in memory.
struct Live {
    policy: String,
    config: ScriptConfig,
    urls: BTreeMap<String, UrlMapping>,
    runtime: Arc<tokio::sync::Mutex<PolicyRuntime>>,
    last_action: crate::script::ActionGap,
}

/// Reads the config and sets up its policy `setup.policy` on `clock`: the
/// script's file, and the policy. Nothing is built that could reach out: no
/// source, no target, an in-memory store.
fn live(setup: &Setup<'_>, clock: Arc<ManualClock>) -> Result<(std::path::PathBuf, Live), String> {
    let config = crate::config::Config::load(setup.config).map_err(|e| e.to_string())?;
    let names = || config.policies.iter().map(|p| p.spec.name.as_str()).collect::<Vec<_>>().join(", ");
    let Some(policy) = config.policies.iter().find(|p| p.spec.name == setup.policy) else {
        return Err(format!("{}: no policy `{}`; it has: {}", setup.config.display(), setup.policy, names()));
    };
    let Some(script) = policy.script.clone() else {
        return Err(format!(
            "policy `{}` has no [policies.{0}.script]: it is not a script-mode loop (check its Lua checks with `moontide lua check FILE`)",
            setup.policy
        ));
    };
    let Some(file) = script.file.clone() else {
        return Err(format!(
            "policy `{}`'s script is inline (`source`): give it a file to check, or check the file you would put there",
            setup.policy
        ));
    };
    let mut policy = policy.clone();
    // its actions only: no metric is read
    policy.metrics.clear();
    let store = Store::in_memory().map_err(|e| e.to_string())?;
    let target = Arc::new(Target::Memory(Memory::new(setup.current)));
    let decisions = tokio::sync::broadcast::channel(16).0;
    let runtime = PolicyRuntime::new(policy, target, &BTreeMap::new(), store, clock, decisions)?;
    let live = Live {
        policy: setup.policy.to_string(),
        urls: crate::script::mapped_urls(&script),
        config: script,
        runtime: Arc::new(tokio::sync::Mutex::new(runtime)),
        last_action: Default::default(),
    };
    Ok((file.into(), live))
}

/// Runs `file` (or, with `setup`, the policy's script) until its `rounds`-th
/// `socket.sleep` (or until it returns or fails).
pub async fn run(file: Option<&Path>, setup: Option<Setup<'_>>, answers: &[String], rounds: u32) -> ExitCode {
    let mut by_url = BTreeMap::new();
    for pair in answers.chunks(2) {
        let [url, body] = pair else { unreachable!("clap gives --answer two values") };
        let Some(key) = crate::script::normalize(url) else {
            eprintln!(
                "error: --answer `{url}`: not a URL (write it as the script does, like http://localhost:8080/metrics)"
            );
            return ExitCode::from(super::EXIT_BAD_INPUT);
        };
        if by_url.insert(key, body.clone()).is_some() {
            eprintln!("error: --answer `{url}` is given twice");
            return ExitCode::from(super::EXIT_BAD_INPUT);
        }
    }
    let start = Timestamp::from_secs(DEFAULT_NOW);
    let clock = Arc::new(ManualClock::new(start));
    let (file, live) = match (file, &setup) {
        (given, Some(setup)) => match live(setup, clock.clone()) {
            // a file given beside the policy is a new version of its script
            Ok((own, live)) => (given.map(Path::to_path_buf).unwrap_or(own), Some(live)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(super::EXIT_BAD_INPUT);
            }
        },
        (Some(f), None) => (f.to_path_buf(), None),
        (None, None) => {
            eprintln!("error: give the script's FILE, or --config and --policy");
            return ExitCode::from(super::EXIT_BAD_INPUT);
        }
    };
    if let Some(l) = &live {
        for url in by_url.keys() {
            let why = match crate::script::route(&l.config, &l.urls, &l.policy, url) {
                Route::Action(_) => "maps it to an action, answered by its guards (leave the --answer out)",
                Route::Refused(_) => {
                    "neither maps it nor allows its host: the script's request to it fails, as it would live"
                }
                Route::Source(_) | Route::Fetch(_) => continue,
            };
            eprintln!("error: --answer `{url}`: policy `{}` {why}", l.policy);
            return ExitCode::from(super::EXIT_BAD_INPUT);
        }
    }
    let file = file.as_path();
    let limits = live.as_ref().map_or_else(Limits::default, |l| l.config.limits());
    let host = Arc::new(DryRun {
        clock: clock.clone(),
        start,
        answers: by_url,
        rounds,
        slept: AtomicU32::new(0),
        asked: AtomicU32::new(0),
        in_round: AtomicU32::new(0),
        done: Arc::new(Notify::new()),
        runaway: Default::default(),
        used: Mutex::new(Vec::new()),
        live,
    });
    let script = match Script::load(&Origin::File(file.to_path_buf()), limits, clock, host.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_BAD_INPUT);
        }
    };
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    println!(
        "{}: {rounds} round{} on a virtual clock; requests are answered here, nothing is sent",
        file.display(),
        plural(rounds)
    );
    if let Some(setup) = &setup {
        println!(
            "  as policy `{}` of {}: its URL mappings and allowed hosts; actions go through its guards to a count in memory, from {}",
            setup.policy,
            setup.config.display(),
            setup.current
        );
    }
    let done = host.done.clone();
    let ended = tokio::select! {
        r = script.run() => Some(r),
        _ = done.notified() => None,
    };
    let (ran, asked) = (host.slept.load(Ordering::SeqCst).min(rounds), host.asked.load(Ordering::SeqCst));
    let summary = format!(
        "{ran} round{}, {asked} request{}, {} of script time",
        plural(ran),
        plural(asked),
        humantime::format_duration(host.elapsed()),
    );
    let unused: Vec<String> = {
        let used = host.used.lock().unwrap_or_else(|e| e.into_inner());
        host.answers.keys().filter(|u| !used.contains(u)).cloned().collect()
    };
    for u in &unused {
        println!("note: the script never asked for {u} (--answer unused)");
    }
    match ended {
        None if host.runaway.load(Ordering::SeqCst) => {
            eprintln!("error: {}: {} (it caught the error and went on)\n({summary})", file.display(), runaway());
            ExitCode::from(super::EXIT_BAD_INPUT)
        }
        None => {
            println!("{}: ok ({summary})", file.display());
            ExitCode::SUCCESS
        }
        Some(Ok(())) => {
            println!("{}: ok; the script returned ({summary}); Moontide would start it again", file.display());
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            // the message names the file and line
            eprintln!("error: {e}\n({summary} before it)");
            ExitCode::from(super::EXIT_BAD_INPUT)
        }
    }
}

/// The check's host: a virtual clock, canned answers, a transcript on stdout.
struct DryRun {
    clock: Arc<ManualClock>,
    start: Timestamp,
    /// Normalized URL → body.
    answers: BTreeMap<String, String>,
    rounds: u32,
    slept: AtomicU32,
    asked: AtomicU32,
    in_round: AtomicU32,
    /// Notified at the last round's sleep, or when the script goes on
    /// requesting past the bound.
    done: Arc<Notify>,
    /// Set when the script went on past the bound.
    runaway: std::sync::atomic::AtomicBool,
    /// Answers the script asked for.
    used: Mutex<Vec<String>>,
    /// With `--config`: the policy the script's requests go to.
    live: Option<Live>,
}

impl DryRun {
    fn elapsed(&self) -> Duration {
        self.clock.now().since(self.start)
    }

    fn say(&self, what: &str) {
        println!("  +{:<8} {what}", humantime::format_duration(self.elapsed()).to_string());
    }

    /// An action URL, as `moontide run` answers it: at most one a second,
    /// then a decision through the policy's guards, on the count in memory.
    fn act(
        &self,
        live: &Live,
        action: Action,
        request: String,
        url: String,
    ) -> BoxFuture<Result<HttpResponse, HttpError>> {
        if !live.last_action.allow(self.clock.now()) {
            self.say(&format!("{request} → 429, more than one action a second"));
            return Box::pin(std::future::ready(Ok(crate::script::throttled())));
        }
        let runtime = live.runtime.clone();
        let at = format!("  +{:<8}", humantime::format_duration(self.elapsed()).to_string());
        Box::pin(async move {
            let d = runtime.lock().await.act(crate::script::action_check(action, url)).await;
            let answer = crate::script::decision_response(&d);
            println!("{at} {request} → {}: {}", answer.status, d.reason);
            Ok(answer)
        })
    }
}

impl ScriptHost for DryRun {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        self.say(&format!("sleep {}", humantime::format_duration(d)));
        self.in_round.store(0, Ordering::SeqCst);
        // a round's time includes its sleep, the last one's too
        self.clock.advance(d);
        if self.slept.fetch_add(1, Ordering::SeqCst) + 1 >= self.rounds {
            // the run ends here: the script stays parked in this sleep
            self.done.notify_one();
            return Box::pin(std::future::pending());
        }
        Box::pin(std::future::ready(()))
    }

    fn http(&self, req: HttpRequest) -> BoxFuture<Result<HttpResponse, HttpError>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let n = self.in_round.fetch_add(1, Ordering::SeqCst) + 1;
        if n > MAX_REQUESTS_PER_ROUND + 1 {
            // the script caught the error (pcall) and went on: end the run here
            self.runaway.store(true, Ordering::SeqCst);
            self.done.notify_one();
            return Box::pin(std::future::pending());
        }
        if n > MAX_REQUESTS_PER_ROUND {
            return Box::pin(std::future::ready(Err(HttpError::Refused(runaway()))));
        }
        let sent = match &req.body {
            Some(b) => format!(" with a {}-byte body", b.len()),
            None => String::new(),
        };
        let key = crate::script::normalize(&req.url);
        let answer = key.as_ref().and_then(|k| self.answers.get(k));
        let route = self.live.as_ref().map(|l| crate::script::route(&l.config, &l.urls, &l.policy, &req.url));
        let request = format!("{} {}{sent}", req.method, req.url);
        if let (Some(live), Some(Route::Action(action))) = (&self.live, &route) {
            return self.act(live, *action, request, req.url);
        }
        let out = match (answer, route) {
            (_, Some(Route::Refused(why))) => {
                self.say(&format!("{request} → error: {why}"));
                Err(HttpError::Refused(why))
            }
            (Some(body), route) => {
                let what = match route {
                    Some(Route::Source(name)) => format!("--answer, for source `{name}`"),
                    _ => "--answer".to_string(),
                };
                self.say(&format!("{request} → 200, {} bytes ({what})", body.len()));
                if let Some(k) = key {
                    self.used.lock().unwrap_or_else(|e| e.into_inner()).push(k);
                }
                Ok(HttpResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: body.clone(),
                })
            }
            (None, route) => {
                let why = match route {
                    Some(Route::Source(name)) => {
                        format!("source `{name}` is not read by `moontide lua check`: give --answer for this URL")
                    }
                    Some(Route::Fetch(_)) => {
                        "an allowed host, not fetched by `moontide lua check`: give --answer for this URL".to_string()
                    }
                    _ => "no --answer for this URL in `moontide lua check`".to_string(),
                };
                self.say(&format!("{request} → nil, \"{why}\""));
                Err(HttpError::Failed(why))
            }
        };
        Box::pin(std::future::ready(out))
    }
}
