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
--   wanted           = the largest of these
--
-- Queue depth is the gateway's (pending requests, pushed) or the servers'
-- (`queue_depth` of the vllm preset), whichever is larger. With no requests
-- and no forecast it asks for 0: pair it with `min = 0` to scale to zero.
-- Needs metrics `queue` (requests waiting), `running` (requests in batches),
-- `kv` (KV-cache use, 0 to 1) and, optionally, `pending` (the gateway's
-- waiting requests) and a predictive check named `ahead` (with
-- `forecast_only = true`, so that its forecast counts here alone).

local BATCH = 32 -- running requests a replica should hold
local KV_TARGET = 0.75 -- KV-cache use to provision for
local FORECAST = "ahead" -- the predictive check whose forecast is read

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

function decide(ctx)
  local m = ctx.metrics
  local running, kv = value(m, "running"), value(m, "kv")
  local queue = math.max(value(m, "queue") or 0, value(m, "pending") or 0)
  if running == nil or kv == nil then
    return nil, "running or kv unknown"
  end
  local ahead, why_ahead = for_forecast(ctx)
  if running == 0 and queue == 0 then
    if ahead > 0 then
      return ahead, "no requests" .. why_ahead
    end
    return 0, "no requests: scale to the minimum"
  end
  local ready = math.max(ctx.ready, 1)
  local for_batch = math.ceil(running / BATCH - 1e-9)
  local for_kv = math.ceil(ready * kv / KV_TARGET - 1e-9)
  -- requests wait when the serving replicas are full: the queue's replicas
  -- come on top of them (with an empty queue, or replicas that serve nothing
  -- yet, the ready count is no floor)
  local for_queue = math.ceil(queue / BATCH - 1e-9)
  local on_top = queue > 0 and running > 0 and ctx.ready or 0
  local want = math.max(for_batch, for_kv, on_top + for_queue, ahead, 1)
  return want, ("%d running, %d waiting, KV %.0f%%: %d for the batch, %d for the KV cache, +%d for the queue%s"):format(
    running, queue, kv * 100, for_batch, for_kv, for_queue, why_ahead)
end
