//! Glue between the config's `lua` checks and the `moontide-lua` crate.

use moontide_core::strategy::LuaCheck;
use moontide_core::{Clock, ManualClock, Timestamp};
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a check's script comes from; `field` names an inline one in messages.
pub fn origin(field: &str, check: &LuaCheck) -> Origin {
    match (&check.file, &check.source) {
        (Some(f), _) => Origin::File(PathBuf::from(f)),
        (None, s) => Origin::Inline { name: field.to_string(), source: s.clone().unwrap_or_default() },
    }
}

/// The check's limits.
pub fn limits(check: &LuaCheck) -> Limits {
    Limits::new(check.instruction_budget, check.memory_mb)
}

/// Loads the script for real.
pub fn build(field: &str, check: &LuaCheck, clock: Arc<dyn Clock>) -> Result<LuaStrategy, String> {
    LuaStrategy::load(origin(field, check), limits(check), check.window, clock).map_err(|e| e.to_string())
}

/// Compiles the script and checks it defines `decide` (for `validate`).
pub fn check_loads(field: &str, check: &LuaCheck) -> Result<(), String> {
    build(field, check, Arc::new(ManualClock::new(Timestamp::from_secs(0)))).map(|_| ())
}
