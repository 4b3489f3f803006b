//! `moontide lua test FILE`: runs the `test_*` functions of a Lua test file.
//!
//! A test file loads policies with `moontide.policy("file.lua")` (relative to
//! the test file; a second argument is the check's `params`, `ctx.params`), calls `p:decide{...}` with a fixed observation and checks
//! the result with `expect.*`. An observation table has `now` (Unix seconds,
//! default 1700000000), `interval` (default 10), `current` (default 1),
//! `ready` (default current), `min` (default 0), `max` (default 1000) and
//! `metrics`: each a number (this tick's reading) or a list of readings,
//! oldest first, one per interval and the last at `now` (`false` is a failed
//! reading), and `forecasts`: by predictive check name, a table with
//! `value` and optionally `band`, `lead` (seconds), `model` and `replicas`
//! (what `ctx.forecasts.NAME` holds). `p:decide` returns the count (or nil),
//! the reason and the error (or nil); `p:state()` returns a copy of `ctx.state`.

use crate::sandbox::Sandbox;
use crate::strategy::{LuaStrategy, Origin};
use crate::{Limits, LuaError, describe};
use mlua::{Function, Table, UserData, UserDataMethods, Value};
use moontide_core::{Clock, ForecastRecord, ManualClock, Observation, Point, Series, Timestamp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const EXPECT: &str = include_str!("testing.lua");
/// The default `now` of a test observation.
pub const DEFAULT_NOW: i64 = 1_700_000_000;
/// Instructions per test function (the policies it loads keep their own budget).
const TEST_BUDGET: u64 = 100_000_000;

/// One test's result.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    /// The test function's name.
    pub name: String,
    /// `None` if it passed, else why it failed.
    pub failure: Option<String>,
}

struct Policy {
    strategy: LuaStrategy,
}

impl UserData for Policy {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("decide", |lua, this, t: Option<Table>| {
            let t = match t {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let (now, interval, current, ready, min, max, series) = observation(&t)?;
            let obs = Observation { now, interval, current, ready, min, max, series: &series };
            // every call brings a whole new history
            this.strategy.forget_series();
            let forecasts = forecasts(&t, now)?;
            this.strategy.set_forecasts(&forecasts).map_err(|e| mlua::Error::runtime(e.to_string()))?;
            let (rec, _) = this.strategy.decide(&obs);
            Ok((rec.desired, rec.reason, rec.error))
        });
        methods.add_method("state", |lua, this, ()| match this.strategy.state_json() {
            Some(v) => crate::json::to_lua(lua, &v),
            None => Ok(Value::Table(lua.create_table()?)),
        });
    }
}

/// The observation's `forecasts` table as the engine would give them.
fn forecasts(t: &Table, now: Timestamp) -> mlua::Result<Vec<(String, ForecastRecord)>> {
    let mut out = Vec::new();
    let Some(all) = t.get::<Option<Table>>("forecasts")? else {
        return Ok(out);
    };
    for pair in all.pairs::<String, Table>() {
        let (name, f) = pair?;
        let value: f64 = f
            .get::<Option<f64>>("value")?
            .ok_or_else(|| mlua::Error::runtime(format!("forecasts.{name}: give at least `value`")))?;
        let lead: f64 = f.get::<Option<f64>>("lead")?.unwrap_or(120.0);
        let band: f64 = f.get::<Option<f64>>("band")?.unwrap_or(0.0);
        out.push((
            name,
            ForecastRecord {
                metric: f.get::<Option<String>>("metric")?.unwrap_or_default(),
                at: now.plus(Duration::from_secs_f64(lead.max(0.0))),
                lead_secs: lead.max(0.0) as u64,
                lead_measured: f.get::<Option<bool>>("measured")?.unwrap_or(false),
                value,
                band,
                model: f.get::<Option<String>>("model")?.unwrap_or_else(|| "naive".into()),
                mae: f.get::<Option<f64>>("mae")?.unwrap_or(band),
                naive_mae: f.get::<Option<f64>>("naive_mae")?.unwrap_or(band),
                replicas: f.get::<Option<u32>>("replicas")?,
            },
        ));
    }
    Ok(out)
}

type Obs = (Timestamp, Duration, u32, u32, u32, u32, BTreeMap<String, Series>);

fn observation(t: &Table) -> mlua::Result<Obs> {
    let now_s: f64 = t.get::<Option<f64>>("now")?.unwrap_or(DEFAULT_NOW as f64);
    let now = Timestamp::from_millis((now_s * 1000.0) as i64);
    let interval = t.get::<Option<f64>>("interval")?.unwrap_or(10.0);
    let interval = Duration::try_from_secs_f64(interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| mlua::Error::runtime(format!("interval {interval} is not a positive number of seconds")))?;
    let current: u32 = t.get::<Option<u32>>("current")?.unwrap_or(1);
    let ready: u32 = t.get::<Option<u32>>("ready")?.unwrap_or(current);
    let min: u32 = t.get::<Option<u32>>("min")?.unwrap_or(0);
    let max: u32 = t.get::<Option<u32>>("max")?.unwrap_or(1000);
    let mut series = BTreeMap::new();
    if let Some(metrics) = t.get::<Option<Table>>("metrics")? {
        for pair in metrics.pairs::<String, Value>() {
            let (name, v) = pair?;
            let values: Vec<Option<f64>> = match v {
                Value::Integer(i) => vec![Some(i as f64)],
                Value::Number(n) => vec![Some(n)],
                Value::Boolean(false) => vec![None],
                Value::Table(list) => list
                    .sequence_values::<Value>()
                    .map(|v| match v? {
                        Value::Integer(i) => Ok(Some(i as f64)),
                        Value::Number(n) => Ok(Some(n)),
                        Value::Boolean(false) => Ok(None),
                        other => Err(mlua::Error::runtime(format!(
                            "metrics.{name}: readings are numbers (or false for a failed one), not {}",
                            other.type_name()
                        ))),
                    })
                    .collect::<mlua::Result<_>>()?,
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "metrics.{name} must be a number or a list of numbers, not {}",
                        other.type_name()
                    )));
                }
            };
            let mut s = Series::new();
            let n = values.len();
            for (i, value) in values.into_iter().enumerate() {
                let back = interval.mul_f64((n - 1 - i) as f64);
                s.push(Point { at: now.minus(back), value }, Duration::from_secs(365 * 86_400));
            }
            series.insert(name, s);
        }
    }
    Ok((now, interval, current, ready, min, max, series))
}

/// Runs the test file at `path`; returns each test's result in name order.
pub fn run_file(path: &Path) -> Result<Vec<TestResult>, LuaError> {
    let text = std::fs::read_to_string(path).map_err(|source| LuaError::Io { path: path.to_path_buf(), source })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(DEFAULT_NOW)));
    let limits = Limits::new(Some(TEST_BUDGET), None);
    let sandbox = Sandbox::new(limits, clock.clone())?;
    let lua = sandbox.lua();
    let env = sandbox.environment()?;
    let install = || -> mlua::Result<()> {
        let expect: Table = lua.load(EXPECT).set_name("=moontide-expect").call(())?;
        env.set("expect", expect)?;
        let moontide = lua.create_table()?;
        let clock = clock.clone();
        moontide.set(
            "policy",
            lua.create_function(move |_, (file, params): (String, Option<Table>)| {
                let full = dir.join(&file);
                let fail = |e: String| mlua::Error::runtime(format!("moontide.policy(\"{file}\"): {e}"));
                let mut strategy =
                    LuaStrategy::load(Origin::File(full), Limits::default(), Duration::from_secs(3600), clock.clone())
                        .map_err(|e| fail(e.to_string()))?;
                if let Some(t) = params {
                    let params = match crate::json::to_json(&Value::Table(t), 1 << 20)
                        .map_err(|e| fail(format!("params: {e}")))?
                    {
                        serde_json::Value::Object(map) => map.into_iter().collect(),
                        serde_json::Value::Array(items) if items.is_empty() => BTreeMap::new(),
                        _ => return Err(fail("params must be a table of names, as in a config".into())),
                    };
                    strategy.set_params(&params).map_err(|e| fail(e.to_string()))?;
                }
                Ok(Policy { strategy })
            })?,
        )?;
        env.set("moontide", moontide)?;
        Ok(())
    };
    install().map_err(LuaError::setup)?;
    sandbox.exec(&text, &path.display().to_string(), &env)?;
    let mut tests: Vec<(String, Function)> = env
        .pairs::<String, Value>()
        .filter_map(|p| p.ok())
        .filter_map(|(k, v)| match v {
            Value::Function(f) if k.starts_with("test_") => Some((k, f)),
            _ => None,
        })
        .collect();
    tests.sort_by(|a, b| a.0.cmp(&b.0));
    if tests.is_empty() {
        return Err(LuaError::Api(format!("{}: no test functions (define functions named test_...)", path.display())));
    }
    Ok(tests
        .into_iter()
        .map(|(name, f)| {
            sandbox.arm();
            let failure = f.call::<()>(()).err().map(|e| describe(&e, &limits));
            TestResult { name, failure }
        })
        .collect())
}
