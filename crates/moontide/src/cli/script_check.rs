//! `moontide lua check --script FILE --answer URL BODY --rounds N`: runs a
//! script-mode loop for a few rounds on a virtual clock, answering its
//! requests from the command line, and prints what it asked for. Nothing is
//! sent anywhere and no target is touched.

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

/// Most requests in one round: a loop that never sleeps is a bug, and the
/// run must end.
pub const MAX_REQUESTS_PER_ROUND: u32 = 1000;

/// Runs `file` until its `rounds`-th `socket.sleep` (or until it returns or fails).
pub async fn run(file: &Path, answers: &[String], rounds: u32) -> ExitCode {
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
    });
    let script = match Script::load(&Origin::File(file.to_path_buf()), Limits::default(), clock, host.clone()) {
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

fn runaway() -> String {
    format!("{MAX_REQUESTS_PER_ROUND} requests without a socket.sleep: a loop must sleep between rounds")
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
}

impl DryRun {
    fn elapsed(&self) -> Duration {
        self.clock.now().since(self.start)
    }

    fn say(&self, what: &str) {
        println!("  +{:<8} {what}", humantime::format_duration(self.elapsed()).to_string());
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
        let out = match answer {
            Some(body) => {
                self.say(&format!("{} {}{sent} → 200, {} bytes (--answer)", req.method, req.url, body.len()));
                if let Some(k) = key {
                    self.used.lock().unwrap_or_else(|e| e.into_inner()).push(k);
                }
                Ok(HttpResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: body.clone(),
                })
            }
            None => {
                let why = "no --answer for this URL in `moontide lua check`".to_string();
                self.say(&format!("{} {}{sent} → nil, \"{why}\"", req.method, req.url));
                Err(HttpError::Failed(why))
            }
        };
        Box::pin(std::future::ready(out))
    }
}
