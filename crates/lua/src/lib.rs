//! Lua policies for Moontide: the sandbox, the `ctx` API, the `lua` strategy
//! (`decide(ctx)`), script mode (whole-loop scripts in the style of the
//! autoscaling guide) and the test runner behind `moontide lua test`.
//!
//! This is the only crate that knows mlua (Lua 5.4, vendored).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod json;
pub mod sandbox;
pub mod script;
pub mod strategy;
pub mod testing;

pub use sandbox::{Limits, Sandbox};
pub use strategy::{LuaStrategy, Origin};

use std::path::PathBuf;

/// What went wrong with a Lua script.
#[derive(Debug, thiserror::Error)]
pub enum LuaError {
    /// The sandbox could not be built (a bug or an exhausted machine, not the script's fault).
    #[error("cannot set up the Lua sandbox: {0}")]
    Setup(String),
    /// The script file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The script failed: syntax, runtime error, budget or memory (with file and line where Lua knows them).
    #[error("{0}")]
    Script(String),
    /// The script does not follow the API (no `decide`, a wrong return type).
    #[error("{0}")]
    Api(String),
}

impl LuaError {
    pub(crate) fn setup(e: mlua::Error) -> Self {
        LuaError::Setup(e.to_string())
    }

    pub(crate) fn script(e: &mlua::Error, limits: &Limits) -> Self {
        LuaError::Script(describe(e, limits))
    }
}

/// A Lua error in one line: the message with file:line, without the traceback.
pub fn describe(e: &mlua::Error, limits: &Limits) -> String {
    match e {
        mlua::Error::CallbackError { cause, traceback } => {
            // A Rust function's error (json.decode's, a bad argument's) names
            // no line: take the script's line from the traceback.
            let inner = describe(cause, limits);
            match script_frame(traceback) {
                Some(at) if !has_position(&inner) => format!("{at}: {inner}"),
                _ => inner,
            }
        }
        mlua::Error::WithContext { context, cause } => format!("{context}: {}", describe(cause, limits)),
        mlua::Error::SyntaxError { message, .. } => format!("syntax error: {}", first_line(message)),
        mlua::Error::MemoryError(m) => {
            format!("memory limit of {} MiB exceeded ({})", limits.memory_bytes / (1024 * 1024), first_line(m))
        }
        mlua::Error::RuntimeError(m) if m.contains(sandbox::BUDGET_EXCEEDED) => {
            let m = first_line(m);
            let at = m.split(sandbox::BUDGET_EXCEEDED).nth(1).unwrap_or("");
            format!("{} of {} instructions{at}", sandbox::BUDGET_EXCEEDED, limits.instructions)
        }
        mlua::Error::RuntimeError(m) => first_line(m).to_string(),
        other => first_line(&other.to_string()).to_string(),
    }
}

/// The first frame of a traceback in a script's own code, as `file:line`
/// (frames in C and in Moontide's built-in chunks are skipped).
fn script_frame(traceback: &str) -> Option<&str> {
    const BUILT_IN: [&str; 4] = ["moontide-ctx:", "moontide-expect:", "moontide-peaks:", "moontide-prelude:"];
    let ours = |l: &str| l.starts_with("[C]") || BUILT_IN.iter().any(|b| l.starts_with(b));
    traceback.lines().map(str::trim).filter(|l| !ours(l)).find_map(|l| {
        let (at, _) = l.split_once(": in ")?;
        has_position(&format!("{at}: ")).then_some(at)
    })
}

/// Whether a message starts with `file:line: `.
fn has_position(message: &str) -> bool {
    message
        .split_once(": ")
        .and_then(|(at, _)| at.rsplit_once(':'))
        .is_some_and(|(file, line)| !file.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}
