//! Script-mode policies: a whole-loop Lua script (the guide's style) drives
//! the policy. Requests to URLs mapped to an action become decisions through
//! the guards; requests to URLs mapped to a source are read through it;
//! other hosts must be on the allow list.
//!
//! ```toml
//! [policies.seed.script]
//! file = "seed-autoscale.lua"
//! allow_hosts = ["127.0.0.1:9090"]
//! urls = { "http://localhost:8080/metrics" = { source = "app" },
//!          "http://api.yourcloudprovider.com/scale-up" = { action = "scale_up" },
//!          "http://api.yourcloudprovider.com/scale-down" = { action = "scale_down" } }
//! ```

use crate::engine::{PolicyRuntime, Sleeper};
use crate::sources::{Source, SourceConfig};
use moontide_core::{CheckOutcome, Clock, Decision, Outcome, Recommendation};
use moontide_lua::script::{BoxFuture, HttpError, HttpRequest, HttpResponse, Script, ScriptHost};
use moontide_lua::{Limits, Origin};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// `[policies.NAME.script]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptConfig {
    /// The script file (relative to the config file).
    #[serde(default)]
    pub file: Option<String>,
    /// Or the script inline.
    #[serde(default)]
    pub source: Option<String>,
    /// Hosts (`name` or `name:port`) the script may reach directly.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// URLs the script calls, mapped to an action on the policy's target or to a source.
    #[serde(default)]
    pub urls: BTreeMap<String, UrlMapping>,
    /// Most instructions between two waits (sleep or request); default 1,000,000.
    #[serde(default)]
    pub instruction_budget: Option<u64>,
    /// Most memory of the script's Lua state, in MiB (default 32).
    #[serde(default)]
    pub memory_mb: Option<u32>,
}

/// What a mapped URL does.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlMapping {
    /// Ask for one replica more or less, through the guards.
    #[serde(default)]
    pub action: Option<Action>,
    /// Answer with this source's reading (an `http_json` source's document; a
    /// `host` source's `{"cpu", "memory", "net_rx", "net_tx"}`; a `push`
    /// source's values pushed within its `max_age`).
    #[serde(default)]
    pub source: Option<String>,
}

/// A script's request for a change.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// One replica more.
    ScaleUp,
    /// One replica less.
    ScaleDown,
}

/// A URL in the one form used for matching (scheme and host lower-cased, default port dropped).
pub fn normalize(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().map(|u| u.to_string())
}

fn host_of(u: &reqwest::Url) -> Option<(String, Option<u16>)> {
    Some((u.host_str()?.to_ascii_lowercase(), u.port()))
}

impl ScriptConfig {
    /// Problems with the settings, given the declared sources.
    pub fn validate(&self, sources: &BTreeMap<String, SourceConfig>) -> Vec<String> {
        let mut errs = Vec::new();
        match (&self.file, &self.source) {
            (Some(_), Some(_)) => errs.push("give either `file` or `source`, not both".into()),
            (None, None) => errs.push("give `file` (a Lua script) or `source` (inline Lua)".into()),
            _ => {}
        }
        for (url, m) in &self.urls {
            if normalize(url).is_none() {
                errs.push(format!("urls: `{url}` is not a valid URL"));
            }
            match (&m.action, &m.source) {
                (Some(_), None) => {}
                (None, Some(s)) => match sources.get(s) {
                    None => errs.push(format!("urls.\"{url}\": no source named `{s}`")),
                    Some(c) if c.has_document() => {}
                    Some(c) => errs.push(format!(
                        "urls.\"{url}\": source `{s}` is a `{}` source; script URLs map to http_json, host and push sources",
                        c.kind()
                    )),
                },
                _ => errs.push(format!("urls.\"{url}\": give exactly one of `action` or `source`")),
            }
        }
        for h in &self.allow_hosts {
            if h.trim().is_empty() || h.contains('/') {
                errs.push(format!("allow_hosts: `{h}` is not a host; write `name` or `name:port`"));
            }
        }
        if self.instruction_budget == Some(0) || self.memory_mb == Some(0) {
            errs.push("instruction_budget and memory_mb must be at least 1".into());
        }
        errs
    }

    /// Where the script comes from; `field` names an inline one.
    pub fn origin(&self, field: &str) -> Origin {
        match (&self.file, &self.source) {
            (Some(f), _) => Origin::File(PathBuf::from(f)),
            (None, s) => Origin::Inline { name: field.to_string(), source: s.clone().unwrap_or_default() },
        }
    }

    /// The script's limits.
    pub fn limits(&self) -> Limits {
        Limits::new(self.instruction_budget, self.memory_mb)
    }

    /// Whether `url` may be fetched directly.
    pub(crate) fn allows(&self, url: &reqwest::Url) -> bool {
        let Some((host, port)) = host_of(url) else { return false };
        self.allow_hosts.iter().any(|a| {
            let a = a.trim().to_ascii_lowercase();
            match a.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => {
                    h == host && port.or(url.port_or_known_default()) == p.parse().ok()
                }
                _ => a == host,
            }
        })
    }
}

/// Where a script's request goes.
pub(crate) enum Route {
    /// A mapped action on the policy's target.
    Action(Action),
    /// A mapped source's reading.
    Source(String),
    /// A host on the allow list: fetched as it is.
    Fetch(reqwest::Url),
    /// Anything else: raised in the script as an error, with this message.
    Refused(String),
}

/// The mapped URLs of `config`, in the one form used for matching.
pub(crate) fn mapped_urls(config: &ScriptConfig) -> BTreeMap<String, UrlMapping> {
    config.urls.iter().filter_map(|(k, v)| Some((normalize(k)?, v.clone()))).collect()
}

/// Where a request of `policy`'s script to `url` goes (`urls` from [`mapped_urls`]).
pub(crate) fn route(config: &ScriptConfig, urls: &BTreeMap<String, UrlMapping>, policy: &str, url: &str) -> Route {
    match normalize(url).and_then(|u| urls.get(&u)) {
        Some(UrlMapping { action: Some(a), .. }) => return Route::Action(*a),
        Some(UrlMapping { source: Some(s), .. }) => return Route::Source(s.clone()),
        _ => {}
    }
    match reqwest::Url::parse(url) {
        Ok(u) if config.allows(&u) => Route::Fetch(u),
        parsed => {
            let host = parsed.ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| url.to_string());
            Route::Refused(format!(
                "host {host} is not allowed: add it to policies.{policy}.script.allow_hosts, or map {url} in policies.{policy}.script.urls"
            ))
        }
    }
}

/// What a script's call to an action URL asks of the policy: one replica more or less.
pub(crate) fn action_check(action: Action, url: String) -> impl FnOnce(u32) -> CheckOutcome {
    move |current| {
        let (n, word) = match action {
            Action::ScaleUp => (current.saturating_add(1), "scale-up"),
            Action::ScaleDown => (current.saturating_sub(1), "scale-down"),
        };
        CheckOutcome {
            check: "script".into(),
            strategy: "lua_script".into(),
            recommendation: Recommendation::want(n, format!("script called {word} ({url})")),
            state: None,
            forecast: None,
        }
    }
}

/// Most requests between two sleeps: a loop that never sleeps is a bug,
/// and must not spin a core (each request gives the script a fresh
/// instruction budget).
pub const MAX_REQUESTS_PER_ROUND: u32 = 1000;

/// Why a request past [`MAX_REQUESTS_PER_ROUND`] is refused.
pub fn runaway() -> String {
    format!("{MAX_REQUESTS_PER_ROUND} requests without a socket.sleep: a loop must sleep between rounds")
}

/// The engine side of a running script.
struct Host {
    policy: String,
    config: ScriptConfig,
    urls: BTreeMap<String, UrlMapping>,
    runtime: Arc<Mutex<PolicyRuntime>>,
    sources: BTreeMap<String, Arc<Source>>,
    client: reqwest::Client,
    sleeper: Arc<dyn Sleeper>,
    /// Its `wake` cuts a sleep short: a push to a fleet at zero, an operator's change.
    control: Arc<crate::engine::control::Control>,
    clock: Arc<dyn Clock>,
    last_action: Arc<ActionGap>,
    gate: Arc<Gate>,
    /// Requests since the last sleep.
    in_round: std::sync::atomic::AtomicU32,
}

/// Lets a stopping script-mode policy wait for the actions its script
/// asked for: each holds a pass while its decision runs; once the gate is
/// closed, no new action starts.
#[derive(Default)]
struct Gate {
    closed: std::sync::atomic::AtomicBool,
    passes: Arc<tokio::sync::RwLock<()>>,
}

impl Gate {
    /// Closes the gate and waits until every action let through has finished.
    async fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(self.passes.write().await);
    }
}

fn stopping() -> HttpResponse {
    let body = serde_json::json!({"outcome": "stopped", "reason": "the policy is stopping here (shutdown, or another instance owns it now); nothing was done"});
    HttpResponse {
        status: 503,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string(),
    }
}

/// The shortest time between two actions of one script.
pub const MIN_ACTION_GAP: Duration = Duration::from_secs(1);

/// A script's actions, at most one per [`MIN_ACTION_GAP`].
#[derive(Default)]
pub(crate) struct ActionGap(std::sync::Mutex<Option<moontide_core::Timestamp>>);

impl ActionGap {
    /// Whether an action at `now` may go ahead (and, if so, counts it).
    pub(crate) fn allow(&self, now: moontide_core::Timestamp) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.since(t) < MIN_ACTION_GAP) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// The answer to an action asked for within [`MIN_ACTION_GAP`] of the last.
pub(crate) fn throttled() -> HttpResponse {
    let body = serde_json::json!({"outcome": "throttled", "reason": "more than one action a second; try again later"});
    HttpResponse {
        status: 429,
        headers: vec![("content-type".into(), "application/json".into()), ("retry-after".into(), "1".into())],
        body: body.to_string(),
    }
}

impl ScriptHost for Host {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        self.in_round.store(0, std::sync::atomic::Ordering::SeqCst);
        let (sleep, control) = (self.sleeper.sleep(d), self.control.clone());
        Box::pin(async move {
            tokio::select! {
                _ = sleep => {}
                _ = control.wake.notified() => {}
            }
        })
    }

    fn http(&self, req: HttpRequest) -> BoxFuture<Result<HttpResponse, HttpError>> {
        if self.in_round.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= MAX_REQUESTS_PER_ROUND {
            // raised in the script; one that catches it and goes on waits a second a request
            let pause = self.sleeper.sleep(Duration::from_secs(1));
            return Box::pin(async move {
                pause.await;
                Err(HttpError::Refused(runaway()))
            });
        }
        let route = route(&self.config, &self.urls, &self.policy, &req.url);
        let runtime = self.runtime.clone();
        let sources = self.sources.clone();
        let client = self.client.clone();
        let clock = self.clock.clone();
        let last_action = self.last_action.clone();
        let gate = self.gate.clone();
        Box::pin(async move {
            match route {
                Route::Action(action) => {
                    // A script that calls faster than one action a second gets
                    // 429, as a rate-limited provider would answer.
                    if !last_action.allow(clock.now()) {
                        return Ok(throttled());
                    }
                    // taken before looking at `closed`: a stop either sees this action and waits for it, or refuses it
                    let pass = gate.passes.clone().read_owned().await;
                    if gate.closed.load(std::sync::atomic::Ordering::SeqCst) {
                        return Ok(stopping());
                    }
                    // The decision runs on its own task: a script stopped or
                    // replaced meanwhile cannot cut an actuation in half.
                    let check = action_check(action, req.url.clone());
                    let decision = tokio::spawn(async move {
                        let _pass = pass;
                        runtime.lock().await.act(check).await
                    });
                    match decision.await {
                        Ok(d) => Ok(decision_response(&d)),
                        Err(e) => Err(HttpError::Failed(format!("the decision failed: {e}"))),
                    }
                }
                Route::Source(name) => {
                    let source = sources.get(&name).ok_or_else(|| HttpError::Failed(format!("no source `{name}`")))?;
                    let body = source.document(clock.now()).await.map_err(HttpError::Failed)?;
                    Ok(HttpResponse {
                        status: 200,
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: body.to_string(),
                    })
                }
                Route::Fetch(url) => fetch(&client, url, req).await,
                Route::Refused(why) => Err(HttpError::Refused(why)),
            }
        })
    }
}

/// A mapped action's answer: 200 with the decision for hold, scaled and
/// dry-run; 502 when the target failed; 503 when the tick was skipped.
pub(crate) fn decision_response(d: &Decision) -> HttpResponse {
    let status = match d.outcome {
        Outcome::Failed { .. } => 502,
        Outcome::Skipped { .. } => 503,
        _ => 200,
    };
    let body = serde_json::json!({
        "outcome": d.outcome.kind(),
        "current": d.current,
        "desired": d.desired,
        "reason": d.reason,
    });
    HttpResponse { status, headers: vec![("content-type".into(), "application/json".into())], body: body.to_string() }
}

async fn fetch(client: &reqwest::Client, url: reqwest::Url, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| HttpError::Refused(format!("`{}` is not an HTTP method", req.method)))?;
    let mut r = client.request(method, url);
    for (k, v) in req.headers {
        r = r.header(k, v);
    }
    if let Some(b) = req.body {
        r = r.body(b);
    }
    let resp =
        r.send().await.map_err(|e| HttpError::Failed(crate::sources::http_json::describe(&e, SCRIPT_HTTP_TIMEOUT)))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    let body = resp.text().await.map_err(|e| HttpError::Failed(e.to_string()))?;
    Ok(HttpResponse { status, headers, body })
}

/// Timeout of a script's direct requests.
pub const SCRIPT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait before a failed script is started again.
const MAX_RESTART_WAIT: Duration = Duration::from_secs(60);

/// What a script-mode policy runs with.
#[derive(Clone)]
pub struct ScriptRun {
    /// Where the script is configured (`policies.NAME.script`), for errors.
    pub field: String,
    /// The `[policies.NAME.script]` table.
    pub config: ScriptConfig,
    /// The policy's runtime, which every action the script asks for goes through.
    pub runtime: Arc<Mutex<PolicyRuntime>>,
    /// The config's sources, for URLs mapped to one.
    pub sources: BTreeMap<String, Arc<Source>>,
    /// The engine's clock.
    pub clock: Arc<dyn Clock>,
    /// What `socket.sleep` waits with.
    pub sleeper: Arc<dyn Sleeper>,
}

/// Runs a script policy until `stop`: starts the script; when it fails,
/// records a decision and starts it again after a growing wait; when its file
/// changes, checks the new version and swaps it in only if it compiles.
pub async fn drive(run: ScriptRun, stop: watch::Receiver<bool>) {
    let ScriptRun { field, config, runtime, sources, clock, sleeper } = run;
    let gate = Arc::new(Gate::default());
    let (policy, control) = {
        let rt = runtime.lock().await;
        (rt.name().to_string(), rt.control())
    };
    let urls = mapped_urls(&config);
    let client = crate::http::client_without_redirects(SCRIPT_HTTP_TIMEOUT).unwrap_or_default();
    let host: Arc<dyn ScriptHost> = Arc::new(Host {
        policy: policy.clone(),
        config: config.clone(),
        urls,
        runtime: runtime.clone(),
        sources,
        client,
        sleeper: sleeper.clone(),
        control,
        clock: clock.clone(),
        last_action: Arc::default(),
        gate: gate.clone(),
        in_round: Default::default(),
    });
    let origin = config.origin(&field);
    let stopped = || {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    let record_failure = |why: String| {
        let runtime = runtime.clone();
        let policy = policy.clone();
        async move {
            tracing::warn!(policy = %policy, "script: {why}");
            runtime
                .lock()
                .await
                .act(|_| CheckOutcome {
                    check: "script".into(),
                    strategy: "lua_script".into(),
                    recommendation: Recommendation::failed(format!("lua: {why}")),
                    state: None,
                    forecast: None,
                })
                .await;
        }
    };
    let mut wait = Duration::from_secs(1);
    let mut next = Script::load(&origin, config.limits(), clock.clone(), host.clone());
    loop {
        let script = match next {
            Ok(s) => s,
            Err(e) => {
                record_failure(e.to_string()).await;
                tokio::select! {
                    _ = sleeper.sleep(wait) => {}
                    _ = stopped() => return gate.close().await,
                }
                wait = (wait * 2).min(MAX_RESTART_WAIT);
                next = Script::load(&origin, config.limits(), clock.clone(), host.clone());
                continue;
            }
        };
        let mut seen = fingerprint(&origin);
        // The script runs on a thread of its own: a library call stuck in C
        // (which the instruction budget cannot stop) holds only that thread.
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::runtime::Handle::current();
        let mut run = tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                tokio::select! {
                    r = script.run() => Some(r.map_err(|e| e.to_string())),
                    _ = cancelled => None,
                }
            })
        });
        let mut cancel = Some(cancel);
        let mut stop_script = move || {
            if let Some(c) = cancel.take() {
                let _ = c.send(());
            }
        };
        let replacement = loop {
            tokio::select! {
                r = &mut run => {
                    match r {
                        Ok(Some(Ok(()))) => tracing::info!(policy = %policy, "script returned; starting it again"),
                        Ok(Some(Err(e))) => record_failure(e).await,
                        Ok(None) => {}
                        Err(e) => record_failure(format!("the script's thread failed: {e}")).await,
                    }
                    tokio::select! {
                        _ = sleeper.sleep(wait) => {}
                        _ = stopped() => return gate.close().await,
                    }
                    wait = (wait * 2).min(MAX_RESTART_WAIT);
                    break Script::load(&origin, config.limits(), clock.clone(), host.clone());
                }
                _ = tokio::time::sleep(WATCH_EVERY) => {
                    let now = fingerprint(&origin);
                    if now.is_none() || now == seen {
                        continue;
                    }
                    seen = now;
                    match Script::load(&origin, config.limits(), clock.clone(), host.clone()) {
                        Ok(new) => {
                            tracing::info!(policy = %policy, "script changed; running the new version");
                            stop_script();
                            wait = Duration::from_secs(1);
                            break Ok(new);
                        }
                        Err(e) => {
                            record_failure(format!("reload failed, the previous version keeps running: {e}")).await;
                        }
                    }
                }
                _ = stopped() => {
                    stop_script();
                    gate.close().await;
                    // the script's thread ends at its next wait (a sleep or a request)
                    if tokio::time::timeout(SCRIPT_STOP_WAIT, &mut run).await.is_err() {
                        tracing::warn!(policy = %policy, "the script did not stop within {SCRIPT_STOP_WAIT:?}; leaving its thread");
                    }
                    return;
                }
            }
        };
        next = replacement;
    }
}

/// How long a stopped script's thread is waited for.
const SCRIPT_STOP_WAIT: Duration = Duration::from_secs(5);

/// How often a script file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

fn fingerprint(origin: &Origin) -> Option<(std::time::SystemTime, u64)> {
    match origin {
        Origin::File(p) => std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))),
        Origin::Inline { .. } => None,
    }
}
