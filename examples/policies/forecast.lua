-- Forecast: sizes a request-serving service from the forecast alone (the
-- predictive-only variant of demand.lua, for comparison). It reads the
-- policy's `load` predictive check (a forecast of `rps`, arrivals per second,
-- at now + the replicas' time-to-ready) and turns it into replicas with the
-- measured throughput of a busy replica:
--
--   per busy replica = served req/s ÷ (cpu% × ready)
--   wanted           = (forecast + HEADROOM × band) ÷ per busy replica ÷ TARGET
--
-- Until the check can forecast, or while nothing is served to measure a
-- replica by, it has no opinion (the count holds).

local TARGET = 1.0 -- utilisation to provision the forecast for (with `per_step = "max"` it is a peak already)
local HEADROOM = 0.5 -- share of the forecast's error band to add
local FORECAST = "load"

function decide(ctx)
  local f = ctx.forecasts[FORECAST]
  if f == nil then
    return nil, "no forecast yet"
  end
  local m = ctx.metrics
  local cpu, served = m.cpu.value, m.served.value
  if cpu == nil or served == nil then
    return nil, "cpu or served unknown"
  end
  local busy = cpu / 100 * ctx.ready
  if busy < 0.01 or served <= 0 then
    return nil, "nothing served: a replica's throughput is unknown"
  end
  local per_replica = served / busy
  local ahead = math.max(f.value + HEADROOM * f.band, 0)
  local want = math.ceil(ahead / per_replica / TARGET - 1e-9)
  return want, ("%.1f req/s forecast in %ds by %s, %.1f req/s per busy replica: %d at %d%%"):format(
    ahead, f.lead, f.model, per_replica, want, TARGET * 100)
end
