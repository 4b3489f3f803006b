-- Builds the reusable `ctx` of one check; scripts see read-only proxies.
-- Returns the data table, a metric constructor, `run`, which refreshes the
-- fields and calls decide in one go (one crossing from Rust per tick), and
-- `set_decide`.
local query = ...

local function readonly(data, what)
  return setmetatable({}, {
    __index = data,
    __newindex = function(_, k)
      error(("%s is read-only (cannot set '%s'); keep your own values in ctx.state"):format(what, tostring(k)), 2)
    end,
    __pairs = function() return next, data, nil end,
    __len = function() return #data end,
  })
end

-- A read-only copy of `t` all the way down (ctx.params).
local function frozen(t, what)
  local copy = {}
  for k, v in pairs(t) do
    copy[k] = type(v) == "table" and frozen(v, ("%s.%s"):format(what, tostring(k))) or v
  end
  return readonly(copy, what)
end

-- Helpers call into Rust with the metric's index and an operation number
-- (the order of OPS in strategy.rs).
local Metric = {}
Metric.__index = Metric
function Metric:avg(w) return query(self.index, 0, w) end
function Metric:min(w) return query(self.index, 1, w) end
function Metric:max(w) return query(self.index, 2, w) end
function Metric:count(w) return query(self.index, 3, w) end
function Metric:rate(w) return query(self.index, 4, w) end
function Metric:slope(w) return query(self.index, 5, w) end
function Metric:values(w) return query(self.index, 6, w) end
function Metric:percentile(p, w) return query(self.index, 7, w, p) end
function Metric:slope_error(w) return query(self.index, 8, w) end

-- Known metrics are plain fields (no function call on the hot path); an
-- unknown name falls through to an error naming the declared ones.
local names = {}
local metrics = setmetatable({}, {
  __index = function(_, k)
    error(("no metric named '%s' (the policy declares: %s)"):format(tostring(k), table.concat(names, ", ")), 2)
  end,
})
local metrics_proxy = setmetatable({}, {
  __index = metrics,
  __newindex = function(_, k)
    error(("ctx.metrics is read-only (cannot set '%s')"):format(tostring(k)), 2)
  end,
  __pairs = function() return next, metrics, nil end,
})

local data = { metrics = metrics_proxy }
local ctx = readonly(data, "ctx")

local by_index = {}

-- Declares the metric at `index` (1-based, the order Moontide passes values in).
local function metric(name, index)
  local d = setmetatable({ name = name, index = index }, Metric)
  metrics[name] = readonly(d, "ctx.metrics." .. name)
  by_index[index] = d
  names[#names + 1] = name
  table.sort(names)
end

local select = select
local next = next

-- Refreshes ctx and calls decide; returns decide's first two results and
-- whether ctx.state holds anything. The first eight metric values come as
-- named parameters (no call per value), any more through `...`.
local decide

-- Sets the script's decide function (at load and after a reload).
local function set_decide(f)
  decide = f
end

local function run(now, interval, current, ready, min, max, n, v1, v2, v3, v4, v5, v6, v7, v8, ...)
  data.now, data.interval, data.current, data.ready, data.min, data.max = now, interval, current, ready, min, max
  local m = by_index
  if n >= 1 then m[1].value = v1 end
  if n >= 2 then m[2].value = v2 end
  if n >= 3 then m[3].value = v3 end
  if n >= 4 then m[4].value = v4 end
  if n >= 5 then m[5].value = v5 end
  if n >= 6 then m[6].value = v6 end
  if n >= 7 then m[7].value = v7 end
  if n >= 8 then m[8].value = v8 end
  for i = 9, n do
    m[i].value = (select(i - 8, ...))
  end
  local count, reason = decide(ctx)
  return count, reason, next(data.state) ~= nil
end

-- Sets ctx.params (the check's `params`, read-only).
local function set_params(t)
  data.params = frozen(t, "ctx.params")
end

return data, metric, run, set_decide, set_params
