-- LLM fleet: size a pool of model servers (vLLM, TGI) from what the gateway
-- and the servers say, without knowing a replica's throughput in advance.
--
--   for the batch = running requests ÷ BATCH
--   for the queue = waiting requests ÷ BATCH, on top of the ready replicas
--                   while they serve (requests wait when they are full)
--   for KV cache  = ready × kv ÷ KV_TARGET      (keep headroom for new prompts)
--   wanted        = the largest of: the batch's, the KV cache's, and the
--                   queue's (with the ready replicas, while they serve)
--
-- Queue depth is the gateway's (pending requests, pushed) or the servers'
-- (`queue_depth` of the vllm preset), whichever is larger. With no requests
-- at all it asks for 0: pair it with `min = 0` to scale to zero, and with a
-- `predictive` check so the fleet is up before a daily peak arrives (a cold
-- start of a model server takes minutes).
-- Needs metrics `queue` (requests waiting), `running` (requests in batches),
-- `kv` (KV-cache use, 0 to 1) and, optionally, `pending` (the gateway's
-- waiting requests).

local BATCH = 32 -- running requests a replica should hold
local KV_TARGET = 0.75 -- KV-cache use to provision for

-- the value of a metric, or nil when the policy does not declare it
local function value(m, name)
  local ok, metric = pcall(function() return m[name] end)
  return ok and metric and metric.value or nil
end

function decide(ctx)
  local m = ctx.metrics
  local running, kv = value(m, "running"), value(m, "kv")
  local queue = math.max(value(m, "queue") or 0, value(m, "pending") or 0)
  if running == nil or kv == nil then
    return nil, "running or kv unknown"
  end
  if running == 0 and queue == 0 then
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
  local want = math.max(for_batch, for_kv, on_top + for_queue, 1)
  return want, ("%d running, %d waiting, KV %.0f%%: %d for the batch, %d for the KV cache, +%d for the queue"):format(
    running, queue, kv * 100, for_batch, for_kv, for_queue)
end
