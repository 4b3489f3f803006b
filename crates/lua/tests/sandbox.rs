//! The sandbox refuses every escape, stops runaway scripts, and stays usable.

use moontide_core::{ManualClock, Observation, Timestamp};
use moontide_lua::{Limits, LuaStrategy, Origin};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)))
}

fn load(src: &str, limits: Limits) -> Result<LuaStrategy, moontide_lua::LuaError> {
    let origin = Origin::Inline { name: "test.lua".into(), source: src.into() };
    LuaStrategy::load(origin, limits, Duration::from_secs(600), clock())
}

fn run(s: &mut LuaStrategy) -> moontide_core::Recommendation {
    let series = BTreeMap::new();
    let obs = Observation {
        now: Timestamp::from_secs(1_700_000_000),
        interval: Duration::from_secs(10),
        current: 3,
        ready: 3,
        min: 1,
        max: 10,
        series: &series,
    };
    s.decide(&obs).0
}

/// Each escape, tried inside decide: the error names what was refused.
#[test]
fn escapes_are_refused_with_a_clear_error() {
    let cases = [
        ("io.open", "return io.open('/etc/passwd')", "io"),
        ("os.execute", "return os.execute('true')", "execute"),
        ("os.getenv", "return os.getenv('HOME')", "getenv"),
        ("os.remove", "return os.remove('/tmp/x')", "remove"),
        ("require of a file", "local m = require('os') return m", "module 'os' is not available"),
        ("require of a path", "local m = require('./evil') return m", "loads no code from disk"),
        ("dofile", "return dofile('/etc/passwd')", "dofile"),
        ("loadfile", "return loadfile('/etc/passwd')", "loadfile"),
        ("load of bytecode", "local f = load('\\27Lua', 'x', 'b') return f", "only text chunks"),
        ("load of bytecode by default mode", "local f, e = load(string.char(27) .. 'Lua') error(e)", "binary chunk"),
        ("string.dump", "return string.dump(decide)", "dump"),
        ("debug", "return debug.getinfo(1)", "debug"),
        ("package", "return package.loadlib('x', 'y')", "package"),
        ("collectgarbage stop", "collectgarbage('stop') return 1", "not allowed"),
    ];
    for (what, body, needle) in cases {
        let src = format!("function decide(ctx) {body} end");
        let mut s = load(&src, Limits::default()).unwrap();
        let rec = run(&mut s);
        let err = rec.error.unwrap_or_else(|| panic!("{what}: not refused: {:?}", rec.desired));
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("test.lua:1"), "{what}: the error names the line: {err}");
    }
}

#[test]
fn safe_libraries_are_there() {
    let src = r#"
        function decide(ctx)
          local t = {3, 1, 2}
          table.sort(t)
          local s = string.format("%d-%s", t[1], utf8.char(72))
          local co = coroutine.wrap(function() coroutine.yield(math.max(4, 5)) end)
          assert(os.time() == 1700000000, "os.time follows Moontide's clock")
          assert(os.date("!%Y", 0) == "1970")
          assert(type(os.clock()) == "number")
          local f = load("return 40 + 2")
          return f() - 40 + co() - 5, s .. " " .. require("json").encode({a = 1})
        end"#;
    let rec = run(&mut load(src, Limits::default()).unwrap());
    assert_eq!(rec.error, None, "{rec:?}");
    assert_eq!(rec.desired, Some(2));
    assert_eq!(rec.reason, "1-H {\"a\":1}");
}

#[test]
fn an_infinite_loop_stops_within_the_budget_even_under_pcall() {
    let cases = [
        ("plain", "while true do end"),
        ("pcall", "while true do pcall(function() while true do end end) end"),
        ("xpcall", "while true do xpcall(function() while true do end end, function(e) return e end) end"),
        ("coroutine", "while true do coroutine.resume(coroutine.create(function() while true do end end)) end"),
        ("error handler loop", "while true do pcall(error, 'x') end"),
        (
            "__close replacing the error",
            "while true do pcall(function() local x <close> = setmetatable({}, {__close = function() error('nope') end}) while true do end end) end",
        ),
        (
            "string.find replaced",
            "string.find = function() end while true do pcall(function() while true do end end) end",
        ),
        (
            "error replaced",
            "_G.error = function() end error = function() end while true do pcall(function() while true do end end) end",
        ),
        (
            "coroutine.close",
            "while true do local co = coroutine.create(function() while true do end end) coroutine.resume(co) coroutine.close(co) end",
        ),
    ];
    for (what, body) in cases {
        let src = format!("function decide(ctx)\n  {body}\nend");
        let mut s = load(&src, Limits::new(Some(200_000), None)).unwrap();
        let rec = run(&mut s);
        let err = rec.error.unwrap_or_else(|| panic!("{what}: returned"));
        assert!(err.contains("instruction budget exceeded of 200000 instructions"), "{what}: {err}");
        // the state is usable for the next call
        let rec = run(&mut s);
        assert!(rec.error.unwrap().contains("budget"), "{what}: next call runs (and loops) again");
    }
}

#[test]
fn a_memory_bomb_is_stopped_and_the_state_survives() {
    let src = r#"
        local calls = 0
        function decide(ctx)
          calls = calls + 1
          if calls == 1 then
            local t = {}
            while true do t[#t + 1] = string.rep("x", 1024 * 1024) .. #t end
          end
          return 2, "recovered"
        end"#;
    let mut s = load(src, Limits::new(Some(100_000_000), Some(16))).unwrap();
    let rec = run(&mut s);
    let err = rec.error.unwrap();
    assert!(err.contains("memory limit of 16 MiB exceeded"), "{err}");
    let rec = run(&mut s);
    assert_eq!((rec.desired, rec.error), (Some(2), None));
    assert_eq!(rec.reason, "recovered");
}

#[test]
fn the_top_level_is_limited_too() {
    let err = load("while true do end", Limits::new(Some(100_000), None)).err().unwrap();
    assert!(err.to_string().contains("instruction budget exceeded"), "{err}");
    let err = load("function decide(ctx) return 1 end\nlocal x = = 1", Limits::default()).err().unwrap();
    assert!(err.to_string().contains("syntax error") && err.to_string().contains("test.lua:2"), "{err}");
    let err = load("function decid(ctx) return 1 end", Limits::default()).err().unwrap();
    assert!(err.to_string().contains("no `decide` function"), "{err}");
    let err = load("decide = 5", Limits::default()).err().unwrap();
    assert!(err.to_string().contains("`decide` is a integer"), "{err}");
}

/// Library calls that run in C are not counted by the budget: table.move
/// over a huge range is refused before it starts (the engine's deadline
/// covers the rest: see the moontide crate's tests).
#[test]
fn unbounded_library_calls_are_refused() {
    let cases = [
        ("table.move", "table.move({}, 1, 1e13, 1, {})", "table.move: 10000000000000 elements"),
        ("table.move by strings", "table.move({}, '1', '200000000', 1, {})", "table.move: 200000000 elements"),
        // a finalizer runs with the instruction hook off: it could loop for ever
        (
            "a __gc finalizer",
            "setmetatable({}, { __gc = function() while true do end end })",
            "__gc finalizers are not allowed",
        ),
    ];
    for (what, body, want) in cases {
        let src = format!("function decide(ctx)\n  {body}\n  return 1\nend");
        let rec = run(&mut load(&src, Limits::default()).unwrap());
        let err = rec.error.unwrap_or_else(|| panic!("{what}: not refused"));
        assert!(err.contains(want) && err.contains("test.lua:2"), "{what}: {err}");
    }
    // repeating nothing an endless number of times is nothing, at once
    let src = "function decide(ctx) return #string.rep('', math.maxinteger) + #(''):rep(2e9, '') + 1 end";
    let rec = run(&mut load(src, Limits::default()).unwrap());
    assert_eq!((rec.desired, rec.error), (Some(1), None), "{}", rec.reason);
    // ordinary uses stay allowed
    let src = "function decide(ctx) local s = string.rep('k=v;', 1000) local n = 0 for k, v in s:gmatch('(%w+)=(%w+)') do n = n + 1 end return n / 1000, s:find('v;k', 1, true) and 'ok' end";
    let rec = run(&mut load(src, Limits::default()).unwrap());
    assert_eq!((rec.desired, rec.error), (Some(1), None), "{}", rec.reason);
}

/// An error raised by one of Moontide's Rust functions (json.decode of bad
/// input, a wrong argument) names the script's line, as Lua's own errors do.
#[test]
fn errors_of_built_in_functions_name_the_scripts_line() {
    let json = "local json = require('json')\n";
    let cases = [
        ("json.decode of nil", "json.decode(nil)", "json.decode: expected a string of JSON, got nil"),
        ("json.decode of a number", "assert(json.decode(5) == 5) json.decode({})", "got table"),
        ("json.decode of bad text", "json.decode('{')", "json.decode: EOF while parsing"),
        ("json.encode of a function", "json.encode(decide)", "json.encode"),
    ];
    for (what, body, want) in cases {
        let src = format!("{json}function decide(ctx)\n  local x = 1\n  {body}\n  return 1\nend");
        let rec = run(&mut load(&src, Limits::default()).unwrap());
        let err = rec.error.unwrap_or_else(|| panic!("{what}: no error"));
        assert!(err.contains("test.lua:4: ") && err.contains(want), "{what}: {err}");
    }
    // a file of the user's own whose name starts like Moontide's built-in chunks keeps its line
    let origin = Origin::Inline {
        name: "moontide-scale.lua".into(),
        source: format!("{json}function decide(ctx)\n  return json.decode(nil)\nend"),
    };
    let mut s = LuaStrategy::load(origin, Limits::default(), Duration::from_secs(600), clock()).unwrap();
    let err = run(&mut s).error.unwrap();
    assert!(err.contains("moontide-scale.lua:3: json.decode"), "{err}");
    // a Lua error keeps its own position, not a second one
    let rec = run(&mut load("function decide(ctx)\n  error('mine')\nend", Limits::default()).unwrap());
    let err = rec.error.unwrap();
    assert!(err.ends_with("test.lua:2: mine") && err.matches("test.lua").count() == 1, "{err}");
}

#[test]
fn print_is_bounded_and_g_is_the_scripts_own() {
    let src = "function decide(ctx) for i = 1, 100 do print(string.rep('x', 100000)) end _G.mine = 1 return rawget(_G, 'mine') end";
    let rec = run(&mut load(src, Limits::default()).unwrap());
    assert_eq!((rec.desired, rec.error), (Some(1), None));
}
