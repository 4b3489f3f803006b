-- Builds the reusable `ctx` of one check. Moontide refreshes the fields of
-- `data` and each metric's `value` before every call; scripts see read-only
-- proxies. Returns the ctx proxy, its data table and a metric constructor.
local bridge = ...

local function readonly(data, what)
  return setmetatable({}, {
    __index = data,
    __newindex = function(_, k)
      error(("%s is read-only (cannot set '%s'); keep your own values in ctx.state"):format(what, tostring(k)), 2)
    end,
    __pairs = function() return next, data, nil end,
  })
end

local Metric = {}
Metric.__index = Metric
function Metric:avg(w) return bridge.query(self.name, "avg", w) end
function Metric:min(w) return bridge.query(self.name, "min", w) end
function Metric:max(w) return bridge.query(self.name, "max", w) end
function Metric:count(w) return bridge.query(self.name, "count", w) end
function Metric:rate(w) return bridge.query(self.name, "rate", w) end
function Metric:slope(w) return bridge.query(self.name, "slope", w) end
function Metric:values(w) return bridge.query(self.name, "values", w) end
function Metric:percentile(p, w) return bridge.query(self.name, "percentile", w, p) end

local metrics = {}
local names = {}
local metrics_proxy = setmetatable({}, {
  __index = function(_, k)
    local m = metrics[k]
    if m == nil then
      error(("no metric named '%s' (the policy declares: %s)"):format(tostring(k), table.concat(names, ", ")), 2)
    end
    return m
  end,
  __newindex = function(_, k)
    error(("ctx.metrics is read-only (cannot set '%s')"):format(tostring(k)), 2)
  end,
  __pairs = function() return next, metrics, nil end,
})

local data = { metrics = metrics_proxy }
local ctx = readonly(data, "ctx")

local function metric(name)
  local d = setmetatable({ name = name }, Metric)
  metrics[name] = readonly(d, "ctx.metrics." .. name)
  names[#names + 1] = name
  table.sort(names)
  return d
end

return ctx, data, metric
