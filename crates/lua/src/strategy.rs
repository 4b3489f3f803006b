//! The `lua` strategy: a script defining `decide(ctx)`.
//!
//! `ctx` (read-only): `now` (Unix seconds), `interval` (seconds), `current`,
//! `ready`, `min`, `max`, `state` (a table the script may write, kept across
//! ticks and restarts) and `metrics.NAME` with `value` (this tick's reading,
//! nil if it failed) and window helpers `avg`, `min`, `max`, `count`,
//! `percentile(p)`, `rate`, `slope` and `values`, each over a window given in
//! seconds or as "5m" (default: the check's window).
//!
//! `decide` returns a count (rounded up) or nil for no opinion, and an
//! optional reason. Any failure (error, budget, memory, a wrong return type)
//! becomes a failed recommendation naming the Lua message and line.

use crate::sandbox::Sandbox;
use crate::{Limits, LuaError, describe};
use mlua::{Function, Lua, LuaSerdeExt, MultiValue, Table, Value};
use moontide_core::duration;
use moontide_core::{Clock, Observation, Recommendation, Series, window};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    ctx: Table,
    data: Table,
    metric_ctor: Function,
    metrics: Vec<(String, Table)>,
    bridge: Table,
    window: Duration,
    fingerprint: Option<Fingerprint>,
    reload_error: Option<String>,
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
        let sandbox = Sandbox::new(limits, clock)?;
        let (text, fp) = origin.read()?;
        let decide = compile(&sandbox, &origin.name(), &text)?;
        let lua = sandbox.lua();
        let build = || -> mlua::Result<(Table, Table, Table, Function, Table)> {
            let bridge = lua.create_table()?;
            let (ctx, data, metric): (Table, Table, Function) =
                lua.load(CTX).set_name("=moontide-ctx").call(bridge.clone())?;
            let state = lua.create_table()?;
            data.raw_set("state", state.clone())?;
            Ok((ctx, data, state, metric, bridge))
        };
        let (ctx, data, state, metric_ctor, bridge) = build().map_err(LuaError::setup)?;
        Ok(LuaStrategy {
            origin,
            sandbox,
            decide,
            state,
            ctx,
            data,
            metric_ctor,
            metrics: Vec::new(),
            bridge,
            window,
            fingerprint: fp,
            reload_error: None,
        })
    }

    /// The script's name in messages.
    pub fn name(&self) -> String {
        self.origin.name()
    }

    /// Replaces `ctx.state` (after a restart: the state stored with the last decision).
    pub fn restore_state(&mut self, state: &serde_json::Value) -> Result<(), LuaError> {
        let lua = self.sandbox.lua();
        let v = crate::json::to_lua(lua, state).map_err(LuaError::setup)?;
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
        let result = self.origin.read().and_then(|(text, _)| compile(&self.sandbox, &self.origin.name(), &text));
        match result {
            Ok(decide) => {
                self.decide = decide;
                self.reload_error = None;
                Reload::Reloaded
            }
            Err(e) => {
                let msg = format!("reload of {} failed, the previous version keeps running: {e}", self.origin.name());
                self.reload_error = Some(msg.clone());
                Reload::Failed(msg)
            }
        }
    }

    /// The last reload error, until a good version loads.
    pub fn reload_error(&self) -> Option<&str> {
        self.reload_error.as_deref()
    }

    /// `ctx.state` as JSON, or `None` when it is empty or cannot be saved.
    pub fn state_json(&self) -> Option<serde_json::Value> {
        if self.state.is_empty() {
            return None;
        }
        self.sandbox.lua().from_value(Value::Table(self.state.clone())).ok()
    }

    /// Runs `decide(ctx)` for this tick; returns the recommendation and `ctx.state` after the call.
    pub fn decide(&mut self, obs: &Observation<'_>) -> (Recommendation, Option<serde_json::Value>) {
        let mut rec = match self.call(obs) {
            Ok(r) => r,
            Err(e) => Recommendation::failed(format!("lua: {e}")),
        };
        if let Some(e) = &self.reload_error {
            rec.reason = format!("{} ({e})", rec.reason);
        }
        let state = if self.state.is_empty() {
            None
        } else {
            match self.sandbox.lua().from_value::<serde_json::Value>(Value::Table(self.state.clone())) {
                Ok(v) => Some(v),
                Err(e) => {
                    let msg = format!("lua: ctx.state cannot be saved: {}", describe(&e, &self.sandbox.limits()));
                    return (Recommendation::failed(msg), None);
                }
            }
        };
        (rec, state)
    }

    fn call(&mut self, obs: &Observation<'_>) -> Result<Recommendation, LuaError> {
        let limits = self.sandbox.limits();
        let err = |e: mlua::Error| LuaError::script(&e, &limits);
        self.sync_metrics(obs).map_err(err)?;
        let lua = self.sandbox.lua();
        let d = &self.data;
        let set = || -> mlua::Result<()> {
            d.raw_set("now", obs.now.as_millis() as f64 / 1000.0)?;
            d.raw_set("interval", obs.interval.as_secs_f64())?;
            d.raw_set("current", obs.current)?;
            d.raw_set("ready", obs.ready)?;
            d.raw_set("min", obs.min)?;
            d.raw_set("max", obs.max)?;
            for (name, t) in &self.metrics {
                let v = obs.series(name).and_then(Series::latest).filter(|p| p.at == obs.now).and_then(|p| p.value);
                t.raw_set("value", v)?;
            }
            Ok(())
        };
        set().map_err(err)?;
        let default_window = self.window;
        let bridge = &self.bridge;
        let decide = &self.decide;
        let ctx = &self.ctx;
        let sandbox = &self.sandbox;
        let out: MultiValue = lua
            .scope(|scope| {
                let query = scope.create_function(|lua, (name, op, w, p): (String, String, Value, Option<f64>)| {
                    query(lua, obs, default_window, &name, &op, w, p)
                })?;
                bridge.raw_set("query", query)?;
                sandbox.arm();
                let out = decide.call::<MultiValue>(ctx.clone());
                bridge.raw_set("query", Value::Nil)?;
                out
            })
            .map_err(err)?;
        read_return(out)
    }

    /// Makes sure ctx.metrics holds exactly the observation's metrics.
    fn sync_metrics(&mut self, obs: &Observation<'_>) -> mlua::Result<()> {
        if self.metrics.len() == obs.series.len() && self.metrics.iter().zip(obs.series.keys()).all(|(a, b)| &a.0 == b)
        {
            return Ok(());
        }
        for name in obs.series.keys() {
            if !self.metrics.iter().any(|(n, _)| n == name) {
                let t: Table = self.metric_ctor.call(name.as_str())?;
                self.metrics.push((name.clone(), t));
            }
        }
        self.metrics.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
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
fn read_return(out: MultiValue) -> Result<Recommendation, LuaError> {
    let mut it = out.into_iter();
    let first = it.next().unwrap_or(Value::Nil);
    let reason = match it.next() {
        None | Some(Value::Nil) => None,
        Some(Value::String(s)) => Some(s.to_string_lossy()),
        Some(Value::Integer(i)) => Some(i.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
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
        Value::Number(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        Value::String(s) => duration::parse(&s.to_string_lossy()).map_err(mlua::Error::runtime),
        other => Err(mlua::Error::runtime(format!(
            "window must be seconds or a duration like \"5m\", not {}",
            other.to_string().unwrap_or_else(|_| other.type_name().into())
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn query(
    lua: &Lua,
    obs: &Observation<'_>,
    default_window: Duration,
    name: &str,
    op: &str,
    w: Value,
    p: Option<f64>,
) -> mlua::Result<Value> {
    let series = obs.series(name).ok_or_else(|| mlua::Error::runtime(format!("no metric named '{name}'")))?;
    let pts = window::points(series, obs.now, window_arg(w, default_window)?);
    let vals: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let num = |v: Option<f64>| Ok(v.map(Value::Number).unwrap_or(Value::Nil));
    match op {
        "avg" => num(window::avg(&vals)),
        "min" => num(window::min(&vals)),
        "max" => num(window::max(&vals)),
        "count" => Ok(Value::Integer(vals.len() as i64)),
        "rate" => num(window::rate(&pts)),
        "slope" => num(window::slope(&pts)),
        "percentile" => {
            let p = p.ok_or_else(|| mlua::Error::runtime("percentile(p, window) needs p between 0 and 100"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(mlua::Error::runtime(format!("percentile: p must be between 0 and 100, got {p}")));
            }
            num(window::percentile(&vals, p))
        }
        "values" => Ok(Value::Table(lua.create_sequence_from(vals)?)),
        other => Err(mlua::Error::runtime(format!("unknown metric helper '{other}'"))),
    }
}
