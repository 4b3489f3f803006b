//! The sandbox: a Lua 5.4 state with only safe libraries, a per-call
//! instruction budget and a memory limit.
//!
//! - Libraries: base (without `dofile` and `loadfile`; `load` takes text only),
//!   `string` (without `dump`), `table`, `math`, `utf8`, `coroutine`, and an
//!   `os` with only `clock`, `time` and `date` (time follows Moontide's clock).
//!   No `io`, no `debug`, no `package`; `require` returns only the modules
//!   Moontide provides (`json`, and `socket`, `socket.http` in script mode).
//! - The instruction budget is checked every 1,000 instructions; once spent,
//!   every check fails, and `pcall`, `xpcall` and `coroutine.resume` pass the
//!   error on, so a script cannot swallow it and loop forever.
//! - The memory limit covers the whole state; a script that hits it gets
//!   "not enough memory", and the state stays usable.

use crate::LuaError;
use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use moontide_core::Clock;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Default instructions per call.
pub const DEFAULT_INSTRUCTIONS: u64 = 1_000_000;
/// Default memory limit per Lua state, in MiB.
pub const DEFAULT_MEMORY_MB: u32 = 32;
/// The budget is checked this often (instructions).
const STEP: u32 = 1_000;
/// Words every budget error carries (the prelude looks for them).
pub const BUDGET_EXCEEDED: &str = "instruction budget exceeded";

const PRELUDE: &str = include_str!("prelude.lua");
/// `require("peaks")`: per-minute peaks kept in a policy's state.
const PEAKS: &str = include_str!("peaks.lua");
/// Most bytes one `print` writes to the log.
const MAX_PRINT: usize = 4096;

/// How much one script may use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Instructions per call.
    pub instructions: u64,
    /// Bytes for the whole Lua state.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { instructions: DEFAULT_INSTRUCTIONS, memory_bytes: DEFAULT_MEMORY_MB as usize * 1024 * 1024 }
    }
}

impl Limits {
    /// Limits from optional settings, defaults for the rest.
    pub fn new(instructions: Option<u64>, memory_mb: Option<u32>) -> Self {
        let d = Limits::default();
        Limits {
            instructions: instructions.unwrap_or(d.instructions),
            memory_bytes: memory_mb.map(|m| m as usize * 1024 * 1024).unwrap_or(d.memory_bytes),
        }
    }
}

/// A sandboxed Lua state.
pub struct Sandbox {
    lua: Lua,
    budget: Arc<AtomicI64>,
    limits: Limits,
    preload: Table,
}

/// " at file:line" of the innermost frame that belongs to a script (not to
/// Moontide's own prelude), or nothing when Lua cannot tell.
pub(crate) fn script_position(lua: &Lua) -> String {
    for level in 0..32 {
        let found = lua.inspect_stack(level, |d| {
            let src = d.source();
            let short = src.short_src.as_deref().map(str::to_string);
            (short, d.current_line())
        });
        match found {
            None => break,
            Some((Some(src), Some(line)))
                if !src.starts_with("moontide-") && !src.starts_with("__mlua") && src != "[C]" =>
            {
                return format!(" at {src}:{line}");
            }
            _ => {}
        }
    }
    String::new()
}

impl Sandbox {
    /// A new state with the safe libraries, the prelude, the hook and the memory limit.
    pub fn new(limits: Limits, clock: Arc<dyn Clock>) -> Result<Sandbox, LuaError> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE | StdLib::OS;
        let lua = Lua::new_with(libs, LuaOptions::new()).map_err(LuaError::setup)?;
        let budget = Arc::new(AtomicI64::new(limits.instructions as i64));
        let setup = || -> mlua::Result<Table> {
            let g = lua.globals();
            let os: Table = g.get("os")?;
            let co: Table = g.get("coroutine")?;
            let now = lua.create_function(move |_, ()| Ok(clock.now().as_millis() as f64 / 1000.0))?;
            let preload = lua.create_table()?;
            preload.set("json", crate::json::module(&lua, limits.memory_bytes)?)?;
            let peaks: Table = lua.load(PEAKS).set_name("=moontide-peaks").set_mode(ChunkMode::Text).call(())?;
            preload.set("peaks", peaks)?;
            let print = lua.create_function(|_, args: mlua::Variadic<Value>| {
                let mut line = String::new();
                for (i, v) in args.iter().enumerate() {
                    if i > 0 {
                        line.push('\t');
                    }
                    line.push_str(&v.to_string().unwrap_or_else(|_| "?".into()));
                    if line.len() > MAX_PRINT {
                        break;
                    }
                }
                if line.len() > MAX_PRINT {
                    let cut = line.floor_char_boundary(MAX_PRINT);
                    line.truncate(cut);
                    line.push_str(" …(cut)");
                }
                tracing::info!(target: "moontide::lua", "{line}");
                Ok(())
            })?;
            g.set("print", print)?;
            let budget = budget.clone();
            let spent = lua.create_function(move |_, ()| Ok(budget.load(Ordering::Relaxed) <= 0))?;
            lua.load(PRELUDE).set_name("=moontide-prelude").set_mode(ChunkMode::Text).call::<()>((
                g.get::<Function>("load")?,
                os.get::<Function>("time")?,
                os.get::<Function>("date")?,
                g.get::<Function>("pcall")?,
                g.get::<Function>("xpcall")?,
                co.get::<Function>("resume")?,
                co.get::<Function>("close")?,
                now,
                preload.clone(),
                spent,
            ))?;
            Ok(preload)
        };
        let preload = setup().map_err(LuaError::setup)?;
        let b = budget.clone();
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(STEP), move |lua, _| {
            if b.fetch_sub(STEP as i64, Ordering::Relaxed) > STEP as i64 {
                return Ok(VmState::Continue);
            }
            Err(mlua::Error::runtime(format!("{BUDGET_EXCEEDED}{}", script_position(lua))))
        })
        .map_err(LuaError::setup)?;
        lua.set_memory_limit(limits.memory_bytes).map_err(LuaError::setup)?;
        Ok(Sandbox { lua, budget, limits, preload })
    }

    /// The Lua state.
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Modules `require` can return; script mode adds `socket` and `socket.http`.
    pub fn preload(&self) -> &Table {
        &self.preload
    }

    /// Refills the instruction budget; call before every entry into Lua.
    pub fn arm(&self) {
        self.budget.store(self.limits.instructions as i64, Ordering::Relaxed);
    }

    /// A handle that refills the budget, for async callbacks returning into Lua.
    pub fn rearm(&self) -> Arc<dyn Fn() + Send + Sync> {
        let budget = self.budget.clone();
        let limit = self.limits.instructions as i64;
        Arc::new(move || budget.store(limit, Ordering::Relaxed))
    }

    /// A fresh global environment for one script: reads fall through to the
    /// sandbox's globals, writes stay in the script's own table.
    pub fn environment(&self) -> Result<Table, LuaError> {
        let make = || -> mlua::Result<Table> {
            let env = self.lua.create_table()?;
            let meta = self.lua.create_table()?;
            meta.set("__index", self.lua.globals())?;
            env.set_metatable(Some(meta))?;
            // `_G` is the script's own table, not the state's globals
            env.raw_set("_G", env.clone())?;
            Ok(env)
        };
        make().map_err(LuaError::setup)
    }

    /// Compiles and runs `source` (named `chunk_name` in errors) in `env`, within the budget.
    pub fn exec(&self, source: &str, chunk_name: &str, env: &Table) -> Result<(), LuaError> {
        self.arm();
        self.lua
            .load(source)
            .set_name(format!("@{chunk_name}"))
            .set_mode(ChunkMode::Text)
            .set_environment(env.clone())
            .exec()
            .map_err(|e| LuaError::script(&e, &self.limits))
    }
}
