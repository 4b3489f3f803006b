//! JSON for scripts (`require("json")`) and for saving `ctx.state`.
//!
//! Lua → JSON is done here, bounded: at most [`MAX_DEPTH`] levels and a
//! byte budget (a table holding the same large string many times cannot
//! blow up outside the sandbox's memory limit). A table whose keys are
//! exactly 1..n becomes an array, any other an object; integer keys of an
//! object are written as decimal strings (and restored as integers for
//! `ctx.state`). Functions, userdata and threads cannot be written.
//! JSON → Lua: `null` becomes `nil`.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde_json::{Map, Value as Json};

/// Deepest nesting written.
pub const MAX_DEPTH: usize = 64;

fn ser_options() -> mlua::serde::SerializeOptions {
    mlua::serde::SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false)
}

/// Lua value → JSON value, within `max_bytes` of output (roughly).
pub fn to_json(v: &Value, max_bytes: usize) -> Result<Json, String> {
    let mut budget = max_bytes as i64;
    convert(v, 0, &mut budget)
}

fn spend(budget: &mut i64, n: usize) -> Result<(), String> {
    *budget -= n as i64;
    if *budget < 0 { Err("the value is too large to write as JSON".into()) } else { Ok(()) }
}

fn convert(v: &Value, depth: usize, budget: &mut i64) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels (or a table that contains itself)"));
    }
    spend(budget, 8)?;
    Ok(match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) if n.is_finite() => Json::from(*n),
        Value::Number(n) => return Err(format!("{n} cannot be written as JSON")),
        Value::String(s) => {
            let s = s.to_string_lossy();
            spend(budget, s.len())?;
            Json::String(s)
        }
        Value::Table(t) => table(t, depth, budget)?,
        other => return Err(format!("a {} cannot be written as JSON", other.type_name())),
    })
}

fn table(t: &Table, depth: usize, budget: &mut i64) -> Result<Json, String> {
    let mut pairs = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        pairs.push((k, v));
    }
    let n = pairs.len() as i64;
    let is_array = n > 0 && pairs.iter().all(|(k, _)| matches!(k, Value::Integer(i) if *i >= 1 && *i <= n));
    if is_array {
        let mut items = vec![Json::Null; n as usize];
        for (k, v) in &pairs {
            if let Value::Integer(i) = k {
                items[(*i - 1) as usize] = convert(v, depth + 1, budget)?;
            }
        }
        return Ok(Json::Array(items));
    }
    let mut map = Map::new();
    for (k, v) in &pairs {
        let key = match k {
            Value::String(s) => s.to_string_lossy(),
            Value::Integer(i) => i.to_string(),
            other => return Err(format!("a table key of type {} cannot be written as JSON", other.type_name())),
        };
        spend(budget, key.len())?;
        map.insert(key, convert(v, depth + 1, budget)?);
    }
    Ok(Json::Object(map))
}

/// JSON value → Lua value, the way `json.decode` gives it.
pub fn to_lua(lua: &Lua, j: &Json) -> mlua::Result<Value> {
    lua.to_value_with(j, ser_options())
}

/// JSON value → Lua value for a saved `ctx.state`: object keys written from
/// integers come back as integers.
pub fn state_to_lua(lua: &Lua, j: &Json) -> mlua::Result<Value> {
    match j {
        Json::Object(map) => {
            let t = lua.create_table()?;
            for (k, v) in map {
                let value = state_to_lua(lua, v)?;
                match k.parse::<i64>() {
                    Ok(i) if i.to_string() == *k => t.raw_set(i, value)?,
                    _ => t.raw_set(k.as_str(), value)?,
                }
            }
            Ok(Value::Table(t))
        }
        Json::Array(items) => {
            let t = lua.create_table()?;
            for (i, v) in items.iter().enumerate() {
                t.raw_set(i + 1, state_to_lua(lua, v)?)?;
            }
            Ok(Value::Table(t))
        }
        other => to_lua(lua, other),
    }
}

/// Builds the module table; `max_bytes` bounds what `encode` writes.
pub fn module(lua: &Lua, max_bytes: usize) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(move |_, v: Value| {
            to_json(&v, max_bytes).map(|j| j.to_string()).map_err(|e| mlua::Error::runtime(format!("json.encode: {e}")))
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, v: Value| {
            // a failed request's nil is the usual mistake: say so in the script's words
            let s = match v {
                Value::String(s) => s,
                Value::Integer(_) | Value::Number(_) => lua
                    .coerce_string(v)?
                    .ok_or_else(|| mlua::Error::runtime("json.decode: the number cannot be read as text"))?,
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "json.decode: expected a string of JSON, got {}",
                        other.type_name()
                    )));
                }
            };
            let j: Json =
                serde_json::from_slice(&s.as_bytes()).map_err(|e| mlua::Error::runtime(format!("json.decode: {e}")))?;
            to_lua(lua, &j)
        })?,
    )?;
    Ok(t)
}
