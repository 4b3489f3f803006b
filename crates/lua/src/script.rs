//! Script mode: whole-loop scripts in the style of the autoscaling guide.
//!
//! Moontide provides the modules such scripts `require`:
//! - `socket`: `sleep(seconds)` (yields to Moontide's scheduler and follows
//!   its clock, virtual in a replay) and `gettime()` (Unix seconds);
//! - `socket.http`: `request(url)` or `request{url=, method=, headers=, body=}`,
//!   returning body, status code and headers (or nil and an error message,
//!   as LuaSocket does, when the request fails on the wire);
//! - `json`: `encode` and `decode`.
//!
//! What a request does is up to the host (the engine): URLs mapped to a
//! target become actuation through Moontide's guards, URLs mapped to a source
//! are read through it, hosts on the allow list are fetched, and anything
//! else raises a Lua error naming the host.

use crate::sandbox::Sandbox;
use crate::strategy::Origin;
use crate::{Limits, LuaError};
use mlua::{Table, Value};
use moontide_core::Clock;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An HTTP request made by a script.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// The URL as the script wrote it.
    pub url: String,
    /// GET unless the script said otherwise.
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<String>,
}

/// What the script gets back.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: String,
}

/// Why a request gave no response.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpError {
    /// Not allowed: raised as a Lua error (the script cannot go on as if nothing happened).
    Refused(String),
    /// Failed on the wire: returned as `nil, message`, as LuaSocket does.
    Failed(String),
}

/// What the engine provides to a script.
pub trait ScriptHost: Send + Sync + 'static {
    /// Waits `d` on Moontide's clock.
    fn sleep(&self, d: Duration) -> BoxFuture<()>;
    /// Serves one request.
    fn http(&self, req: HttpRequest) -> BoxFuture<Result<HttpResponse, HttpError>>;
}

/// A loaded script, ready to run.
pub struct Script {
    sandbox: Sandbox,
    main: mlua::Function,
}

impl Script {
    /// Compiles the script in a fresh sandbox with `socket`, `socket.http` and `json` available.
    pub fn load(
        origin: &Origin,
        limits: Limits,
        clock: Arc<dyn Clock>,
        host: Arc<dyn ScriptHost>,
    ) -> Result<Self, LuaError> {
        let sandbox = Sandbox::new(limits, clock.clone())?;
        install(&sandbox, clock, host).map_err(LuaError::setup)?;
        let env = sandbox.environment()?;
        let main = compile(&sandbox, origin, Some(env))?;
        Ok(Script { sandbox, main })
    }

    /// Runs the script until it returns (a loop script never does) or fails.
    pub async fn run(&self) -> Result<(), LuaError> {
        self.sandbox.arm();
        self.main.call_async::<()>(()).await.map_err(|e| LuaError::script(&e, &self.sandbox.limits()))
    }
}

fn install(sandbox: &Sandbox, clock: Arc<dyn Clock>, host: Arc<dyn ScriptHost>) -> mlua::Result<()> {
    let lua = sandbox.lua();
    let rearm = sandbox.rearm();
    let socket = lua.create_table()?;
    {
        let host = host.clone();
        let rearm = rearm.clone();
        socket.set(
            "sleep",
            lua.create_async_function(move |_, secs: f64| {
                let host = host.clone();
                let rearm = rearm.clone();
                async move {
                    let d = Duration::try_from_secs_f64(secs).map_err(|_| {
                        mlua::Error::runtime(format!("socket.sleep: {secs} is not a usable number of seconds"))
                    })?;
                    host.sleep(d).await;
                    rearm();
                    Ok(())
                }
            })?,
        )?;
    }
    socket.set("gettime", lua.create_function(move |_, ()| Ok(clock.now().as_millis() as f64 / 1000.0))?)?;
    let http = lua.create_table()?;
    http.set(
        "request",
        lua.create_async_function(move |lua, arg: Value| {
            let host = host.clone();
            let rearm = rearm.clone();
            let at = crate::sandbox::script_position(&lua);
            async move {
                let req = request_from(arg)?;
                let out = host.http(req).await;
                rearm();
                match out {
                    Ok(r) => {
                        let headers = lua.create_table()?;
                        for (k, v) in r.headers {
                            headers.set(k, v)?;
                        }
                        Ok((
                            Value::String(lua.create_string(&r.body)?),
                            Value::Integer(r.status as i64),
                            Value::Table(headers),
                        ))
                    }
                    Err(HttpError::Failed(e)) => Ok((Value::Nil, Value::String(lua.create_string(&e)?), Value::Nil)),
                    Err(HttpError::Refused(e)) => {
                        Err(mlua::Error::runtime(format!("{}: {e}", at.trim_start_matches(" at "))))
                    }
                }
            }
        })?,
    )?;
    socket.set("http", http.clone())?;
    let preload = sandbox.preload();
    preload.set("socket", socket)?;
    preload.set("socket.http", http)?;
    Ok(())
}

fn request_from(arg: Value) -> mlua::Result<HttpRequest> {
    match arg {
        Value::String(s) => {
            Ok(HttpRequest { url: s.to_string_lossy(), method: "GET".into(), headers: vec![], body: None })
        }
        Value::Table(t) => {
            let url: String = t
                .get::<Option<String>>("url")?
                .ok_or_else(|| mlua::Error::runtime("http.request{...}: `url` is missing"))?;
            let method = t.get::<Option<String>>("method")?.unwrap_or_else(|| "GET".into()).to_uppercase();
            let mut headers = Vec::new();
            if let Some(h) = t.get::<Option<Table>>("headers")? {
                for pair in h.pairs::<String, String>() {
                    headers.push(pair?);
                }
            }
            let body = t.get::<Option<String>>("body")?;
            Ok(HttpRequest { url, method, headers, body })
        }
        other => Err(mlua::Error::runtime(format!(
            "http.request: give a URL or a table {{url = ...}}, not a {}",
            other.type_name()
        ))),
    }
}

/// Compiles a script without running it: syntax errors with file and line.
pub fn check_syntax(origin: &Origin) -> Result<(), LuaError> {
    let sandbox = Sandbox::new(Limits::default(), Arc::new(moontide_core::ManualClock::default()))?;
    compile(&sandbox, origin, None).map(|_| ())
}

fn compile(sandbox: &Sandbox, origin: &Origin, env: Option<Table>) -> Result<mlua::Function, LuaError> {
    let (text, _) = origin.read()?;
    let mut chunk =
        sandbox.lua().load(text).set_name(format!("@{}", origin.name())).set_mode(mlua::chunk::ChunkMode::Text);
    if let Some(env) = env {
        chunk = chunk.set_environment(env);
    }
    chunk.into_function().map_err(|e| LuaError::script(&e, &sandbox.limits()))
}
