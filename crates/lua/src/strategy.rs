//! The `lua` strategy: a script defining `decide(ctx)`.
//!
//! `ctx` (read-only): `now` (Unix seconds), `interval` (seconds), `current`,
//! `ready`, `min`, `max`, `state` (a table the script may write, kept across
//! ticks and restarts) and `metrics.NAME` with `value` (this tick's reading,
//! nil if it failed) and window helpers `avg`, `min`, `max`, `count`,
//! `percentile(p)`, `rate`, `slope`, `slope_error` and `values`, each over a window given in
//! seconds or as "5m" (default: the check's window), and `forecasts.NAME`:
//! the forecast the policy's predictive check NAME made this tick (`value`,
//! `band`, `model`, `lead` and `at` in seconds, `mae`, `naive_mae`,
//! `metric`, `measured`, `replicas`), absent before it can forecast, and
//! `params`: the check's `params` from the config.
//!
//! `decide` returns a count (rounded up) or nil for no opinion, and an
//! optional reason. Any failure (error, budget, memory, a wrong return type)
//! becomes a failed recommendation naming the Lua message and line.

use crate::sandbox::Sandbox;
use crate::{Limits, LuaError};
use mlua::{Function, Lua, MultiValue, Table, Value};
use moontide_core::duration;
use moontide_core::{Clock, ForecastRecord, Observation, Point, Recommendation, Series, Timestamp, window};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const CTX: &str = include_str!("ctx.lua");

/// Where a script comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A file, re-read when it changes.
    File(PathBuf),
    /// Inline source, named for messages.
    Inline {
        /// The name used in messages (for example `policies.web.checks.cpu`).
        name: String,
        /// The Lua source.
        source: String,
    },
}

impl Origin {
    /// The name used in messages and as the chunk name (file path or inline name).
    pub fn name(&self) -> String {
        match self {
            Origin::File(p) => p.display().to_string(),
            Origin::Inline { name, .. } => name.clone(),
        }
    }

    pub(crate) fn read(&self) -> Result<(String, Option<Fingerprint>), LuaError> {
        match self {
            Origin::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| LuaError::Io { path: p.clone(), source })?;
                Ok((text, fingerprint(p)))
            }
            Origin::Inline { source, .. } => Ok((source.clone(), None)),
        }
    }
}

type Fingerprint = (SystemTime, u64);

fn fingerprint(p: &Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A loaded `decide(ctx)` script with its state.
pub struct LuaStrategy {
    origin: Origin,
    sandbox: Sandbox,
    decide: Function,
    state: Table,
    data: Table,
    metric_ctor: Function,
    run: Function,
    set_decide: Function,
    set_params: Function,
    /// Metric names in the order their values are passed to Lua.
    metrics: Vec<String>,
    /// What the helpers read: the strategy's own copy of each metric's series.
    shared: Arc<Mutex<Shared>>,
    window: Duration,
    fingerprint: Option<Fingerprint>,
    reload_error: Option<String>,
    clock: Arc<dyn Clock>,
    /// Whether `ctx.forecasts` holds anything.
    has_forecasts: bool,
}

/// The data behind `ctx.metrics.NAME:avg()` and friends.
struct Shared {
    series: Vec<Series>,
    now: Timestamp,
    window: Duration,
}

/// Why a reload did or did not happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Reload {
    /// The file has not changed.
    Unchanged,
    /// The new version compiled and now runs.
    Reloaded,
    /// The new version failed; the previous one keeps running.
    Failed(String),
}

impl LuaStrategy {
    /// Loads a script: reads it, runs its top level in a fresh sandbox, and
    /// checks that it defines `decide`. `window` is the default window of the helpers.
    pub fn load(origin: Origin, limits: Limits, window: Duration, clock: Arc<dyn Clock>) -> Result<Self, LuaError> {
        let sandbox = Sandbox::new(limits, clock.clone())?;
        let (text, fp) = origin.read()?;
        let decide = compile(&sandbox, &origin.name(), &text)?;
        let lua = sandbox.lua();
        let shared = Arc::new(Mutex::new(Shared { series: Vec::new(), now: Timestamp::default(), window }));
        let build = || -> mlua::Result<(Table, Table, Function, Function, Function, Function)> {
            let reader = shared.clone();
            let query = lua.create_function(move |lua, (index, op, w, p): (usize, u8, Value, Option<f64>)| {
                let shared = reader.lock().unwrap_or_else(|e| e.into_inner());
                query(lua, &shared, index, op, w, p)
            })?;
            let (data, metric, run, set_decide, set_params): (Table, Function, Function, Function, Function) =
                lua.load(CTX).set_name("=moontide-ctx").call(query)?;
            let state = lua.create_table()?;
            data.raw_set("state", state.clone())?;
            data.raw_set("forecasts", lua.create_table()?)?;
            set_params.call::<()>(lua.create_table()?)?;
            set_decide.call::<()>(decide.clone())?;
            Ok((data, state, metric, run, set_decide, set_params))
        };
        let (data, state, metric_ctor, run, set_decide, set_params) = build().map_err(LuaError::setup)?;
        Ok(LuaStrategy {
            origin,
            sandbox,
            decide,
            state,
            data,
            metric_ctor,
            run,
            set_decide,
            set_params,
            metrics: Vec::new(),
            shared,
            window,
            fingerprint: fp,
            reload_error: None,
            clock,
            has_forecasts: false,
        })
    }

    /// The script's name in messages.
    pub fn name(&self) -> String {
        self.origin.name()
    }

    /// Replaces `ctx.state` (after a restart: the state stored with the last decision).
    pub fn restore_state(&mut self, state: &serde_json::Value) -> Result<(), LuaError> {
        let lua = self.sandbox.lua();
        let v = crate::json::state_to_lua(lua, state).map_err(LuaError::setup)?;
        let Value::Table(t) = v else {
            return Err(LuaError::Api(format!("stored state is not a table: {state}")));
        };
        self.data.raw_set("state", t.clone()).map_err(LuaError::setup)?;
        self.state = t;
        Ok(())
    }

    /// Reloads the file if it changed. A new version must compile and define
    /// `decide`; if not, the running version stays and the error is returned
    /// (and repeated in every recommendation until the file is fixed).
    pub fn reload_if_changed(&mut self) -> Reload {
        let Origin::File(path) = &self.origin else {
            return Reload::Unchanged;
        };
        let now = fingerprint(path);
        if now.is_none() || now == self.fingerprint {
            return Reload::Unchanged;
        }
        self.fingerprint = now;
        // The new version is tried in a scratch state first: a version that
        // fails must not have changed the running one on its way.
        let result = self.origin.read().and_then(|(text, _)| {
            let scratch = Sandbox::new(self.sandbox.limits(), self.clock.clone())?;
            compile(&scratch, &self.origin.name(), &text)?;
            compile(&self.sandbox, &self.origin.name(), &text)
        });
        match result {
            Ok(decide) => match self.set_decide.call::<()>(decide.clone()) {
                Ok(()) => {
                    self.decide = decide;
                    self.reload_error = None;
                    Reload::Reloaded
                }
                Err(e) => {
                    let msg = format!("reload of {} failed: {e}", self.origin.name());
                    self.reload_error = Some(msg.clone());
                    Reload::Failed(msg)
                }
            },
            Err(e) => {
                let msg = format!("reload of {} failed, the previous version keeps running: {e}", self.origin.name());
                self.reload_error = Some(msg.clone());
                Reload::Failed(msg)
            }
        }
    }

    /// Sets `ctx.params`, read-only to the script: the check's `params`.
    pub fn set_params(&mut self, params: &BTreeMap<String, serde_json::Value>) -> Result<(), LuaError> {
        let lua = self.sandbox.lua();
        let build = || -> mlua::Result<()> {
            let t = lua.create_table()?;
            for (name, v) in params {
                t.raw_set(name.as_str(), crate::json::to_lua(lua, v)?)?;
            }
            self.set_params.call::<()>(t)
        };
        build().map_err(LuaError::setup)
    }

    /// Sets `ctx.forecasts` for the next calls: each predictive check's
    /// forecast this tick, by check name (an empty slice empties it).
    pub fn set_forecasts(&mut self, forecasts: &[(String, ForecastRecord)]) -> Result<(), LuaError> {
        if forecasts.is_empty() && !self.has_forecasts {
            // already empty: most policies have no predictive check, and this runs every tick
            return Ok(());
        }
        let lua = self.sandbox.lua();
        let build = || -> mlua::Result<Table> {
            let all = lua.create_table()?;
            for (name, f) in forecasts {
                let t = lua.create_table()?;
                t.raw_set("metric", f.metric.as_str())?;
                t.raw_set("value", f.value)?;
                t.raw_set("band", f.band)?;
                t.raw_set("model", f.model.as_str())?;
                t.raw_set("mae", f.mae)?;
                t.raw_set("naive_mae", f.naive_mae)?;
                t.raw_set("lead", f.lead_secs as i64)?;
                t.raw_set("measured", f.lead_measured)?;
                t.raw_set("at", f.at.as_millis() as f64 / 1000.0)?;
                t.raw_set("replicas", f.replicas)?;
                all.raw_set(name.as_str(), t)?;
            }
            Ok(all)
        };
        let all = build().map_err(LuaError::setup)?;
        self.data.raw_set("forecasts", all).map_err(LuaError::setup)?;
        self.has_forecasts = !forecasts.is_empty();
        Ok(())
    }

    /// The last reload error, until a good version loads.
    pub fn reload_error(&self) -> Option<&str> {
        self.reload_error.as_deref()
    }

    /// `ctx.state` as JSON, or `None` when it cannot be saved.
    pub fn state_json(&self) -> Option<serde_json::Value> {
        crate::json::to_json(&Value::Table(self.state.clone()), self.sandbox.limits().memory_bytes).ok()
    }

    /// Runs `decide(ctx)` for this tick; returns the recommendation and
    /// `ctx.state` after the call (always, `{}` included, so that clearing
    /// the state is saved too; `None` only when it cannot be saved).
    pub fn decide(&mut self, obs: &Observation<'_>) -> (Recommendation, Option<serde_json::Value>) {
        let (mut rec, has_state) = self.recommend(obs);
        if !has_state {
            return (rec, Some(serde_json::Value::Object(Default::default())));
        }
        match crate::json::to_json(&Value::Table(self.state.clone()), self.sandbox.limits().memory_bytes) {
            Ok(v) => (rec, Some(v)),
            Err(e) => {
                // the recommendation stands; the state is not saved this tick
                rec.reason = format!("{} (ctx.state cannot be saved: {e})", rec.reason);
                (rec, None)
            }
        }
    }

    /// Runs `decide(ctx)` for this tick without reading `ctx.state` back,
    /// for callers that keep no state of their own (the simulator, where
    /// converting it at every tick took more time than the policy): a state
    /// that could not be saved goes unreported.
    pub fn decide_unsaved(&mut self, obs: &Observation<'_>) -> Recommendation {
        self.recommend(obs).0
    }

    /// The recommendation of `decide(ctx)` (a failure becomes a failed one),
    /// and whether the script has a state.
    fn recommend(&mut self, obs: &Observation<'_>) -> (Recommendation, bool) {
        let (mut rec, has_state) = match self.call(obs) {
            Ok(r) => r,
            Err(e) => (Recommendation::failed(format!("lua: {e}")), true),
        };
        if let Some(e) = &self.reload_error {
            rec.reason = format!("{} ({e})", rec.reason);
        }
        (rec, has_state)
    }

    fn call(&mut self, obs: &Observation<'_>) -> Result<(Recommendation, bool), LuaError> {
        let limits = self.sandbox.limits();
        let err = |e: mlua::Error| LuaError::script(&e, &limits);
        self.sync(obs).map_err(err)?;
        let mut args = Vec::with_capacity(7 + self.metrics.len());
        args.push(Value::Number(obs.now.as_millis() as f64 / 1000.0));
        args.push(Value::Number(obs.interval.as_secs_f64()));
        for n in [obs.current, obs.ready, obs.min, obs.max] {
            args.push(Value::Integer(n as i64));
        }
        args.push(Value::Integer(self.metrics.len() as i64));
        let value = |series: Option<&Series>| {
            let v = series.and_then(Series::latest).filter(|p| p.at == obs.now).and_then(|p| p.value);
            v.map(Value::Number).unwrap_or(Value::Nil)
        };
        if self.same_metrics(obs) {
            args.extend(obs.series.values().map(|s| value(Some(s))));
        } else {
            args.extend(self.metrics.iter().map(|name| value(obs.series(name))));
        }
        self.sandbox.arm();
        let (count, reason, has_state): (Value, Value, bool) =
            self.run.call(MultiValue::from_vec(args)).map_err(err)?;
        Ok((read_return(count, reason)?, has_state))
    }

    /// Makes the next call copy every series whole instead of appending the
    /// new points (for callers whose observations are not one growing history,
    /// like the test runner).
    pub fn forget_series(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        for s in &mut shared.series {
            *s = Series::new();
        }
    }

    /// Whether the metrics known to Lua are exactly the observation's, in its key order.
    fn same_metrics(&self, obs: &Observation<'_>) -> bool {
        self.metrics.len() == obs.series.len() && self.metrics.iter().zip(obs.series.keys()).all(|(a, b)| a == b)
    }

    /// Declares new metrics to Lua and brings the strategy's copy of each
    /// series (what the helpers read) up to the observation.
    fn sync(&mut self, obs: &Observation<'_>) -> mlua::Result<()> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let keep = self.window + obs.interval * 10;
        if self.same_metrics(obs) {
            for (ours, theirs) in shared.series.iter_mut().zip(obs.series.values()) {
                sync_series(ours, theirs, keep);
            }
        } else {
            for name in obs.series.keys() {
                if !self.metrics.contains(name) {
                    self.metrics.push(name.clone());
                    shared.series.push(Series::new());
                    self.metric_ctor.call::<()>((name.as_str(), self.metrics.len()))?;
                }
            }
            for (ours, name) in shared.series.iter_mut().zip(&self.metrics) {
                match obs.series(name) {
                    Some(theirs) => sync_series(ours, theirs, keep),
                    None => *ours = Series::new(),
                }
            }
        }
        shared.now = obs.now;
        Ok(())
    }
}

/// Makes `ours` hold what `theirs` holds, for a `theirs` that only grows at
/// its end (and loses points at its start): appends the new points when the
/// two agree up to our newest point, else copies theirs whole.
fn sync_series(ours: &mut Series, theirs: &Series, keep: Duration) {
    match (ours.latest(), theirs.latest()) {
        (a, b) if a == b => {}
        (Some(a), Some(b)) if a.at < b.at => {
            let newer = theirs.points().rev().take_while(|p| p.at > a.at).count();
            if theirs.points().rev().nth(newer) == Some(&a) {
                let fresh: Vec<Point> = theirs.points().skip(theirs.len() - newer).copied().collect();
                for p in fresh {
                    ours.push(p, keep);
                }
            } else {
                *ours = theirs.clone();
            }
        }
        _ => *ours = theirs.clone(),
    }
}

fn compile(sandbox: &Sandbox, name: &str, text: &str) -> Result<Function, LuaError> {
    let env = sandbox.environment()?;
    sandbox.exec(text, name, &env)?;
    match env.raw_get::<Value>("decide") {
        Ok(Value::Function(f)) => Ok(f),
        Ok(Value::Nil) => Err(LuaError::Api(format!(
            "{name}: no `decide` function; define `function decide(ctx) ... end` returning a count (or nil) and a reason"
        ))),
        Ok(other) => Err(LuaError::Api(format!("{name}: `decide` is a {}, not a function", other.type_name()))),
        Err(e) => Err(LuaError::setup(e)),
    }
}

/// Reads `decide`'s return values: (count or nil, optional reason).
fn read_return(first: Value, reason: Value) -> Result<Recommendation, LuaError> {
    let reason = match reason {
        Value::Nil => None,
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => {
            return Err(LuaError::Api(format!(
                "decide returned a {} as its reason; return a string (or nothing)",
                other.type_name()
            )));
        }
    };
    let count = |n: f64| -> Result<u32, LuaError> {
        if !n.is_finite() || n < 0.0 {
            return Err(LuaError::Api(format!("decide returned {n}; return a replica count (0 or more) or nil")));
        }
        Ok(n.ceil().min(u32::MAX as f64) as u32)
    };
    match first {
        Value::Nil => Ok(Recommendation::none(reason.unwrap_or_else(|| "no opinion".into()))),
        Value::Integer(i) => {
            let n = count(i as f64)?;
            Ok(Recommendation::want(n, reason.unwrap_or_else(|| format!("decide returned {n}"))))
        }
        Value::Number(x) => {
            let n = count(x)?;
            Ok(Recommendation::want(n, reason.unwrap_or_else(|| format!("decide returned {n}"))))
        }
        other => Err(LuaError::Api(format!(
            "decide returned a {}; return a replica count (number) or nil, then an optional reason",
            other.type_name()
        ))),
    }
}

/// Reads a window argument: seconds, a duration string, or nil for the default.
fn window_arg(w: Value, default: Duration) -> mlua::Result<Duration> {
    match w {
        Value::Nil => Ok(default),
        Value::Integer(i) if i >= 0 => Ok(Duration::from_secs(i as u64)),
        Value::Number(n) if n >= 0.0 => Duration::try_from_secs_f64(n)
            .map_err(|_| mlua::Error::runtime(format!("window {n} is not a usable number of seconds"))),
        Value::String(s) => duration::parse(&s.to_string_lossy()).map_err(mlua::Error::runtime),
        other => Err(mlua::Error::runtime(format!(
            "window must be seconds or a duration like \"5m\", not {}",
            other.to_string().unwrap_or_else(|_| other.type_name().into())
        ))),
    }
}

/// The helpers, in the order `ctx.lua` numbers them.
fn query(lua: &Lua, shared: &Shared, index: usize, op: u8, w: Value, p: Option<f64>) -> mlua::Result<Value> {
    let series = index
        .checked_sub(1)
        .and_then(|i| shared.series.get(i))
        .ok_or_else(|| mlua::Error::runtime(format!("no metric at index {index}")))?;
    let pts = window::points(series, shared.now, window_arg(w, shared.window)?);
    let vals = || pts.iter().map(|p| p.1).collect::<Vec<f64>>();
    let num = |v: Option<f64>| Ok(v.map(Value::Number).unwrap_or(Value::Nil));
    let fold = |f: fn(f64, f64) -> f64| pts.iter().map(|p| p.1).reduce(f);
    match op {
        0 => num((!pts.is_empty()).then(|| pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64)),
        1 => num(fold(f64::min)),
        2 => num(fold(f64::max)),
        3 => Ok(Value::Integer(pts.len() as i64)),
        4 => num(window::rate(&pts)),
        5 => num(window::slope(&pts)),
        6 => Ok(Value::Table(lua.create_sequence_from(vals())?)),
        7 => {
            let p = p.ok_or_else(|| mlua::Error::runtime("percentile(p, window) needs p between 0 and 100"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(mlua::Error::runtime(format!("percentile: p must be between 0 and 100, got {p}")));
            }
            num(window::percentile(&vals(), p))
        }
        8 => num(window::fit_slope(&pts).and_then(|f| f.1)),
        other => Err(mlua::Error::runtime(format!("unknown metric helper {other}"))),
    }
}
