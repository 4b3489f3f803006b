-- Demand: Moontide's default reactive policy for a request-serving service.
-- It needs no knowledge of what one replica can serve: it measures it.
--
--   busy replicas       = cpu% × ready            (the work being served now)
--   per busy replica    = served req/s ÷ busy     (what one replica serves)
--   replicas for load   = arriving req/s ÷ per busy replica
--                         (arrivals, not CPU: a saturated service's CPU stops
--                          at 100 % while its arrivals keep telling the truth)
--   replicas for queue  = queued ÷ (per busy replica × DRAIN seconds)
--   wanted              = (load + queue) ÷ TARGET utilisation
--
-- Arrivals rising over the last two minutes are followed LOOK_AHEAD seconds ahead,
-- since a replica started now serves only after its startup delay. Scale-down
-- pacing is left to the policy's behaviour (stabilization).
-- Needs metrics `cpu` (%, averaged over ready replicas), `rps` (requests
-- arriving per second), `served` (requests completed per second) and,
-- optionally, `queue` (requests waiting).

local TARGET = 0.7 -- utilisation to provision for
local DRAIN = 30 -- seconds to work off a queue
local LOOK_AHEAD = 60 -- seconds to follow a rising trend

function decide(ctx)
  local m = ctx.metrics
  local cpu, rps, served = m.cpu.value, m.rps.value, m.served.value
  if cpu == nil or rps == nil or served == nil then
    return nil, "cpu, rps or served unknown"
  end
  local queued = m.queue and m.queue.value or 0
  local busy = cpu / 100 * ctx.ready
  if busy < 0.01 or served <= 0 then
    if rps > 0 or queued > 0 then
      return math.max(ctx.ready, 1), "load arriving but nothing served yet"
    end
    return 0, "no load"
  end
  local per_replica = served / busy
  local trend = math.max(m.rps:slope("2m") or 0, 0)
  local arriving = rps + trend * LOOK_AHEAD
  local need = arriving / per_replica + queued / (per_replica * DRAIN)
  local want = math.ceil(need / TARGET - 1e-9)
  return want,
    ("%.1f req/s arriving (%+.2f/s), %.0f queued, %.1f req/s per busy replica: %d at %d%%"):format(
      rps, trend, queued, per_replica, want, TARGET * 100)
end
