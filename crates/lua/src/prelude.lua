-- Moontide's sandbox prelude: runs once per Lua state, before any policy code.
-- It receives the raw functions it wraps and installs the safe versions.
local raw_load, raw_time, raw_date, raw_pcall, raw_xpcall, raw_resume, now, preload = ...
local BUDGET = "instruction budget exceeded"

local function is_budget(e)
  return e ~= nil and tostring(e):find(BUDGET, 1, true) ~= nil
end

-- Running out of instructions cannot be caught: pcall, xpcall and
-- coroutine.resume pass that one error on.
local function pass_budget(ok, ...)
  if not ok and is_budget((...)) then error((...), 0) end
  return ok, ...
end

pcall = function(f, ...)
  return pass_budget(raw_pcall(f, ...))
end

xpcall = function(f, handler, ...)
  local function h(e)
    if is_budget(e) then return e end
    return handler(e)
  end
  return pass_budget(raw_xpcall(f, h, ...))
end

coroutine.resume = function(co, ...)
  return pass_budget(raw_resume(co, ...))
end

-- Text chunks only: no precompiled bytecode.
load = function(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then
    error("load: only text chunks are allowed in Moontide's sandbox (mode \"t\")", 2)
  end
  return raw_load(chunk, name, "t", env)
end

-- Time follows Moontide's clock (virtual in the simulator).
os = {
  clock = os.clock,
  time = function(t)
    if t == nil then return math.floor(now()) end
    return raw_time(t)
  end,
  date = function(format, t)
    return raw_date(format, t or math.floor(now()))
  end,
}

require = function(name)
  local m = preload[name]
  if m == nil then
    local names = {}
    for k in pairs(preload) do names[#names + 1] = k end
    table.sort(names)
    error(("module '%s' is not available: Moontide's sandbox loads no code from disk (available: %s)")
      :format(tostring(name), table.concat(names, ", ")), 2)
  end
  return m
end

local raw_collect = collectgarbage
collectgarbage = function(opt, ...)
  if opt == nil or opt == "collect" or opt == "count" or opt == "step" then
    return raw_collect(opt, ...)
  end
  error(("collectgarbage: option '%s' is not allowed in Moontide's sandbox"):format(tostring(opt)), 2)
end

dofile, loadfile, string.dump = nil, nil, nil
