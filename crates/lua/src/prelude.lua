-- Moontide's sandbox prelude: runs once per Lua state, before any policy code.
-- It receives the raw functions it wraps and installs the safe versions.
-- Everything it relies on is captured here, so a script that replaces a
-- global or a library function cannot change how these guards work.
local raw_load, raw_time, raw_date, raw_pcall, raw_xpcall, raw_resume, raw_close, now, preload, spent = ...
local error, tostring, tonumber, type, pairs, floor = error, tostring, tonumber, type, pairs, math.floor
local format, concat, sort = string.format, table.concat, table.sort
local s_find, s_rep, t_move = string.find, string.rep, table.move
local raw_setmetatable, rawget = setmetatable, rawget
local BUDGET = "instruction budget exceeded"

-- Running out of instructions cannot be caught: pcall, xpcall,
-- coroutine.resume and coroutine.close pass that error on, whatever error
-- object reached them (a __close handler may have replaced it).
local function pass_budget(ok, ...)
  if not ok and spent() then
    local e = (...)
    if type(e) == "string" and s_find(e, BUDGET, 1, true) then error(e, 0) end
    error(BUDGET, 0)
  end
  return ok, ...
end

pcall = function(f, ...)
  return pass_budget(raw_pcall(f, ...))
end

xpcall = function(f, handler, ...)
  local function h(e)
    if spent() then return e end
    return handler(e)
  end
  return pass_budget(raw_xpcall(f, h, ...))
end

coroutine.resume = function(co, ...)
  return pass_budget(raw_resume(co, ...))
end

coroutine.close = function(co)
  return pass_budget(raw_close(co))
end

-- Text chunks only: no precompiled bytecode.
load = function(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then
    error("load: only text chunks are allowed in Moontide's sandbox (mode \"t\")", 2)
  end
  return raw_load(chunk, name, "t", env)
end

-- Library calls that run in C are not counted by the instruction budget.
-- table.move over a huge range is refused here; anything else that runs
-- long in C (a pathological pattern match) is cut off by the engine's
-- deadline on the whole call.
local MAX_MOVE = 10000000
table.move = function(a1, f, e, t, a2)
  -- bounds given as strings are numbers to table.move too
  local nf, ne = tonumber(f), tonumber(e)
  if nf and ne and ne - nf > MAX_MOVE then
    error(format("table.move: %d elements is more than Moontide allows (%d)", floor(ne - nf + 1), MAX_MOVE), 2)
  end
  return t_move(a1, f, e, t, a2)
end

-- Repeating nothing copies no bytes, so the memory limit never stops it:
-- the answer is known at once.
string.rep = function(s, n, sep)
  if (s == "" and (sep == nil or sep == "")) and tonumber(n) then return "" end
  return s_rep(s, n, sep)
end

-- Finalizers run with the instruction hook off, where the budget cannot
-- stop them.
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc finalizers are not allowed in Moontide's sandbox (they run outside the instruction budget)", 2)
  end
  return raw_setmetatable(t, mt)
end

-- Time follows Moontide's clock (virtual in the simulator).
os = {
  clock = os.clock,
  time = function(t)
    if t == nil then return floor(now()) end
    return raw_time(t)
  end,
  date = function(fmt, t)
    return raw_date(fmt, t or floor(now()))
  end,
}

require = function(name)
  local m = preload[name]
  if m == nil then
    local names = {}
    for k in pairs(preload) do names[#names + 1] = k end
    sort(names)
    error(format("module '%s' is not available: Moontide's sandbox loads no code from disk (available: %s)",
      tostring(name), concat(names, ", ")), 2)
  end
  return m
end

local raw_collect = collectgarbage
collectgarbage = function(opt, ...)
  if opt == nil or opt == "collect" or opt == "count" or opt == "step" then
    return raw_collect(opt, ...)
  end
  error(format("collectgarbage: option '%s' is not allowed in Moontide's sandbox", tostring(opt)), 2)
end

dofile, loadfile, string.dump = nil, nil, nil
