//! The `json` module scripts get from `require("json")`: `encode` and `decode`,
//! as in the usual Lua JSON libraries. JSON `null` decodes to `nil`.

use mlua::{Lua, LuaSerdeExt, LuaString, Table, Value};

fn ser_options() -> mlua::serde::SerializeOptions {
    mlua::serde::SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false)
}

/// Lua value → JSON text (keys sorted; an empty table is `{}` unless it came from a JSON array).
pub fn encode(lua: &Lua, v: Value) -> mlua::Result<String> {
    let j: serde_json::Value = lua
        .from_value_with(v, mlua::serde::DeserializeOptions::new().sort_keys(true))
        .map_err(|e| mlua::Error::runtime(format!("json.encode: {e}")))?;
    Ok(j.to_string())
}

/// JSON text → Lua value.
pub fn decode(lua: &Lua, text: &[u8]) -> mlua::Result<Value> {
    let j: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| mlua::Error::runtime(format!("json.decode: {e}")))?;
    lua.to_value_with(&j, ser_options())
}

/// A serde value → Lua value, the way `json.decode` would give it.
pub fn to_lua(lua: &Lua, j: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value_with(j, ser_options())
}

/// Builds the module table.
pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("encode", lua.create_function(|lua, v: Value| encode(lua, v))?)?;
    t.set("decode", lua.create_function(|lua, s: LuaString| decode(lua, &s.as_bytes()))?)?;
    Ok(t)
}
