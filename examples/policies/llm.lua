-- LLM fleet: size a pool of model servers (vLLM, TGI) from what the gateway
-- and the servers say, without knowing a replica's throughput in advance.
--
--   per replica   = tokens/s ÷ ready            (measured decode throughput)
--   for the queue = waiting requests ÷ (requests a replica finishes per DRAIN)
--   for KV cache  = ready × kv ÷ KV_TARGET      (keep headroom for new prompts)
--   wanted        = the largest of: running ÷ BATCH, the KV cache, and, when
--                   requests wait, the ready replicas + the queue's
--
-- Queue depth is the gateway's (pending requests, pushed) or the servers'
-- (`queue_depth` of the vllm preset), whichever is larger. With no requests
-- at all it asks for 0: pair it with `min = 0` to scale to zero, and with a
-- `predictive` check so the fleet is up before a daily peak arrives (a cold
-- start of a model server takes minutes).
-- Needs metrics `queue` (requests waiting), `running` (requests in batches),
-- `kv` (KV-cache use, 0 to 1) and, optionally, `tokens` (generated tokens/s)
-- and `pending` (the gateway's waiting requests).

local BATCH = 32 -- running requests a replica should hold
local KV_TARGET = 0.75 -- KV-cache use to provision for
local DRAIN = 20 -- seconds to work off a queue

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
  -- a replica finishes about BATCH requests per (average request time); with
  -- no measurement yet, assume one batch per DRAIN seconds
  local for_queue = math.ceil(queue / BATCH - 1e-9)
  -- requests wait when the ready replicas are full: the queue's replicas
  -- come on top of them (with an empty queue, the ready count is no floor)
  local want = math.max(for_batch, for_kv, queue > 0 and ctx.ready + for_queue or 0, 1)
  return want, ("%d running, %d waiting, KV %.0f%%: %d for the batch, %d for the KV cache, +%d for the queue"):format(
    running, queue, kv * 100, for_batch, for_kv, for_queue)
end
