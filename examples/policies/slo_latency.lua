-- Hold the 95th percentile latency under a 250 ms SLO.
--
-- Up: when the p95 of the last 2 minutes breaks the SLO, in proportion to
-- how far (like HPA: current × p95 / SLO). Down: one replica when the worst
-- reading of the last 10 minutes stayed under half the SLO. Needs a metric
-- named `latency_ms`.

local SLO_MS = 250

function decide(ctx)
  local latency = ctx.metrics.latency_ms
  if latency.value == nil then
    return nil, "no latency reading"
  end
  local p95 = latency:percentile(95, "2m")
  if p95 > SLO_MS then
    local want = math.ceil(ctx.current * p95 / SLO_MS)
    return want, ("p95 %.0f ms breaks the %d ms SLO"):format(p95, SLO_MS)
  end
  local full = latency:count("10m") >= math.floor(600 / ctx.interval)
  if full and latency:max("10m") < SLO_MS / 2 then
    return ctx.current - 1, ("worst %.0f ms in 10m, under half the SLO"):format(latency:max("10m"))
  end
  return nil, ("p95 %.0f ms within the %d ms SLO"):format(p95, SLO_MS)
end
