-- LLM fleet: size a pool of model servers (vLLM, TGI) from what the gateway
-- and the servers say, without knowing a replica's throughput in advance.
--
--   for the batch    = running requests ÷ BATCH
--   for the queue    = waiting requests ÷ BATCH, on top of the ready replicas
--                      while they serve (requests wait when they are full)
--   for KV cache     = ready × kv ÷ KV_TARGET      (keep headroom for new prompts)
--   for the forecast = the replicas the policy's `ahead` predictive check
--                      asks for the token rate it forecasts a time-to-ready
--                      from now, when a seasonal model beats the last value
--                      (a model server takes minutes to load: be up before
--                      the daily peak, even from zero)
--   held floor       = HELD × the highest arrivals of the last HELD_MINUTES
--                      minutes ÷ SERVER_RPS, when the policy reads `arrivals`
--                      (requests/s reaching the gateway): servers held
--                      through the quiet minutes between bursts, since a
--                      server started for a burst comes up minutes after it.
--                      Arrivals, unlike the queue, do not swell while a
--                      fleet woken from zero works off its backlog, so the
--                      floor does not hold that backlog's servers. Each
--                      minute's highest reading is kept in ctx.state; a
--                      failed reading keeps the minutes already seen.
--   wanted           = the largest of these
--
-- Queue depth is the gateway's (pending requests, pushed) or the servers'
-- (`queue_depth` of the vllm preset), whichever is larger. With no requests
-- and no forecast it asks for the held floor, 0 once HELD_MINUTES have
-- passed without arrivals: pair it with `min = 0` to scale to zero.
-- Needs metrics `queue` (requests waiting), `running` (requests in batches),
-- `kv` (KV-cache use, 0 to 1) and, optionally, `pending` (the gateway's
-- waiting requests), `arrivals` (requests/s arriving at the gateway) and a
-- predictive check named `ahead` (with
-- `forecast_only = true`, so that its forecast counts here alone).
--
-- Each setting below may be given in the check's `params` instead of
-- editing this file, by its name in lower case: e.g.
-- `params = { server_rps = 8, batch = 48 }`.

local DEFAULTS = {
  BATCH = 32, -- running requests a replica should hold
  KV_TARGET = 0.75, -- KV-cache use to provision for, over 0 and at most 1
  SERVER_RPS = 5, -- requests/s one server answers within its objectives (measure it with a load test)
  HELD = 0.5, -- share of the recent highest arrivals held through quiet minutes (0: no floor)
  HELD_MINUTES = 30, -- how long a burst's arrivals are held
}
local FORECAST = "ahead" -- the predictive check whose forecast is read
local peaks = require("peaks")

-- The settings: DEFAULTS, with the check's params over them. A param that is
-- not a number in its range stops the check with an error naming it.
local function settings(ctx)
  local c = {}
  for name, default in pairs(DEFAULTS) do
    local key = name:lower()
    local v = ctx.params[key]
    if v == nil then
      v = default
    elseif type(v) ~= "number" or v ~= v or v == math.huge or v < 0 or (v == 0 and name ~= "HELD")
      or (name == "KV_TARGET" and v > 1) then
      error(("params.%s: %s is not a usable value (the default is %s)"):format(key, tostring(v), default), 0)
    end
    c[name] = v
  end
  return c
end

-- the value of a metric, or nil when the policy does not declare it
local function value(m, name)
  local ok, metric = pcall(function() return m[name] end)
  return ok and metric and metric.value or nil
end

-- The replicas the forecast asks for, and why; 0 without a seasonal forecast.
local function for_forecast(ctx)
  local f = ctx.forecasts[FORECAST]
  if f == nil or f.replicas == nil or f.model == "naive" then
    return 0, ""
  end
  return f.replicas, (", %d for the forecast (%s, in %.0fs)"):format(f.replicas, f.model, f.lead)
end

-- The held floor, and why: HELD × the highest arrivals of the last
-- HELD_MINUTES minutes (this reading included) ÷ SERVER_RPS. The highest
-- reading of each minute is kept in s.peaks (require("peaks")).
-- A reading that is no number (failed, NaN, infinite) adds nothing, but the
-- minutes kept still hold the floor: a gateway that stops answering for a
-- minute does not let the fleet go. Minutes ahead of the clock (one set
-- back) count as this minute, so a clock change never lowers the floor.
local function held_floor(c, s, now, arrivals)
  local read = arrivals ~= nil and math.abs(arrivals) < math.huge -- false for NaN too
  s.peaks = s.peaks or {}
  local highest = math.max(0, peaks.keep(s.peaks, now, c.HELD_MINUTES, arrivals) or 0)
  local floor = math.ceil(c.HELD * highest / c.SERVER_RPS - 1e-9)
  if floor <= 0 then
    return 0, ""
  end
  return floor, (", %d held (%.1f req/s at most in %g minutes%s)"):format(
    floor, highest, c.HELD_MINUTES, read and "" or "; arrivals unknown now")
end

function decide(ctx)
  local m = ctx.metrics
  local running, kv = value(m, "running"), value(m, "kv")
  local queue = math.max(value(m, "queue") or 0, value(m, "pending") or 0)
  -- first, so that this minute's arrivals are kept even when the servers' metrics are not read
  local c = settings(ctx)
  local held, why_held = held_floor(c, ctx.state, ctx.now, value(m, "arrivals"))
  if running == nil or kv == nil then
    if ctx.current > 0 then
      -- servers that cannot be read are no reason to remove any: hold (more if the floor asks)
      return math.max(ctx.current, held), ("running or kv unknown with %d replicas: no scale-down on missing data%s")
        :format(ctx.current, why_held)
    end
    -- no servers to read: nothing runs
    running, kv = 0, 0
  end
  local ahead, why_ahead = for_forecast(ctx)
  if running == 0 and queue == 0 then
    if ahead > 0 or held > 0 then
      return math.max(ahead, held), "no requests" .. why_ahead .. why_held
    end
    return 0, "no requests: scale to the minimum"
  end
  local ready = math.max(ctx.ready, 1)
  local for_batch = math.ceil(running / c.BATCH - 1e-9)
  local for_kv = math.ceil(ready * kv / c.KV_TARGET - 1e-9)
  -- requests wait when the serving replicas are full: the queue's replicas
  -- come on top of them (with an empty queue, or replicas that serve nothing
  -- yet, the ready count is no floor)
  local for_queue = math.ceil(queue / c.BATCH - 1e-9)
  local on_top = queue > 0 and running > 0 and ctx.ready or 0
  local want = math.max(for_batch, for_kv, on_top + for_queue, ahead, held, 1)
  return want, ("%d running, %d waiting, KV %.0f%%: %d for the batch, %d for the KV cache, +%d for the queue%s%s"):format(
    running, queue, kv * 100, for_batch, for_kv, for_queue, why_ahead, why_held)
end
