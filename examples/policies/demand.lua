-- Demand: Moontide's default policy for a request-serving service, reactive
-- and predictive. It needs no knowledge of what one replica can serve: it
-- measures it.
--
--   busy replicas       = cpu% × ready            (the work being served now)
--   per busy replica    = served req/s ÷ busy     (what one replica serves)
--   arriving            = arrivals: the higher of the last 30 s's average and
--                         the 90th percentile of the last 2 minutes' readings
--                         (spiky traffic needs room for its spikes), plus a rising trend
--                         followed for the replicas' time-to-ready and a minute
--                         more, but no further than the history it was drawn
--                         from; the trend is the slope of the last 3 minutes'
--                         readings less one standard error, so noise is not
--                         taken for a trend
--   replicas for load   = arriving ÷ per busy replica
--                         (arrivals, not CPU: a saturated service's CPU stops
--                          at 100 % while its arrivals keep telling the truth)
--   replicas for queue  = queued ÷ (per busy replica × DRAIN seconds)
--   margin              = replicas kept beside the load, learned: each
--                         look-ahead kept is scored when it comes due, a
--                         time-to-ready later, against the arrivals it was
--                         meant to cover; the margin
--                         grows by STEP × QUANTILE when they came in above
--                         it and shrinks by STEP × (1 − QUANTILE) when not,
--                         so it settles where QUANTILE of the look-aheads
--                         are covered (small on smooth load, wide on bursty
--                         load). It starts at INITIAL_MARGIN and, in
--                         replicas, moves slowly: 0.015 a covered look-ahead,
--                         so shedding the first 3 takes about 200 scores
--                         (35 minutes of 10 s ticks)
--   wanted              = (load + margin + queue) ÷ TARGET utilisation
--   forecast            = the policy's `load` predictive check, if it has one
--                         and a seasonal model beats the last value: the
--                         arrivals forecast at now + time-to-ready (with
--                         `per_step = "max"`, the highest reading a step
--                         will hold), plus half its error band, ÷ per busy
--                         replica, at full utilisation (it is a peak already)
--   wanted              = max(wanted, forecast)
--
-- The forecast only ever adds: it never asks for fewer replicas than the
-- reactive part. Scale-down pacing is left to the policy's behaviour
-- (stabilization). The margin and the look-aheads waiting to be scored
-- (at most MAX_PENDING over a time-to-ready) live in ctx.state, so they survive
-- reloads and restarts. Needs metrics `cpu` (%, averaged over ready replicas),
-- `rps` (requests arriving per second), `served` (requests completed per
-- second) and, optionally, `queue` (requests waiting).

local TARGET = 0.92 -- utilisation to provision for
local QUANTILE = 0.95 -- share of the look-aheads the margin should cover
local STEP = 0.3 -- replicas the margin moves by (× QUANTILE up, × (1 − QUANTILE) down)
local INITIAL_MARGIN = 3 -- replicas of margin to start from, before any look-ahead is scored
local MAX_PENDING = 60 -- look-aheads waiting to be scored, at most
local DRAIN = 30 -- seconds to work off a queue
local LEAD = 180 -- seconds a new replica takes to serve, until the forecast check has measured it
local HEADROOM = 0.5 -- share of the forecast's error band to add
local FORECAST = "load" -- the predictive check whose forecast of `rps` is used
local FORECAST_TARGET = 1.0 -- utilisation to provision the forecast for
local TREND_DOUBT = 1 -- standard errors taken off the trend's slope

-- Scores the look-aheads that have come due against the replicas the
-- arrivals need now, moving the margin for each, and keeps this tick's
-- look-ahead (in replicas of work) with the time it comes due. A
-- look-ahead long overdue (ticks skipped while there was no load, a restart)
-- is dropped unscored; a clock that went back drops them all. Returns the
-- margin.
local function learn_margin(s, now, lead, interval, needed_now, ahead)
  s.margin = s.margin or INITIAL_MARGIN
  if s.last and now < s.last then
    s.due, s.ahead, s.last = nil, nil, nil
  end
  local spacing = lead / MAX_PENDING
  local late = 2 * math.max(interval, spacing)
  local due, kept = {}, {}
  for i, at in ipairs(s.due or {}) do
    if at > now then
      due[#due + 1], kept[#kept + 1] = at, s.ahead[i]
    elseif now - at <= late then
      if needed_now - s.ahead[i] > s.margin then
        s.margin = s.margin + STEP * QUANTILE
      else
        s.margin = math.max(0, s.margin - STEP * (1 - QUANTILE))
      end
    end
  end
  -- at most MAX_PENDING look-aheads made over a time-to-ready (with a long
  -- one, a sample of the ticks), so the state stays small
  if (s.last == nil or now - s.last >= spacing) and ahead == ahead and ahead < math.huge then
    due[#due + 1], kept[#kept + 1] = now + lead, ahead
    s.last = now
  end
  s.due, s.ahead = due, kept
  return s.margin
end

-- The rise per second of a metric over `window`: its least-squares slope
-- less TREND_DOUBT standard errors of it, and 0 when that is not above 0
-- (or under three readings).
local function rising(metric, window)
  local slope, err = metric:slope(window), metric:slope_error(window)
  if slope == nil or err == nil then
    return 0
  end
  return math.max(0, slope - TREND_DOUBT * err)
end

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
  local f = ctx.forecasts[FORECAST]
  local lead = f and f.lead or LEAD
  local trend = rising(m.rps, "3m")
  local history = math.max(m.rps:count() - 1, 0) * ctx.interval
  local recent = math.max(m.rps:avg(30) or rps, m.rps:percentile(90, "2m") or rps)
  local arriving = recent + trend * math.min(lead + 60, history)
  local margin = learn_margin(ctx.state, ctx.now, lead, ctx.interval, rps / per_replica, arriving / per_replica)
  local need = arriving / per_replica + margin + queued / (per_replica * DRAIN)
  local want = math.ceil(need / TARGET - 1e-9)
  local from = "trend"
  if f and f.model ~= "naive" then
    local ahead = math.ceil((f.value + HEADROOM * f.band) / per_replica / FORECAST_TARGET - 1e-9)
    if ahead > want then
      want, from = ahead, ("forecast %.1f by %s"):format(f.value + HEADROOM * f.band, f.model)
    end
  end
  return want,
    ("%.1f req/s arriving, %.1f in %ds with the trend, %.0f queued, %.1f req/s per busy replica, margin %.1f: %d (%s)"):format(
      rps, arriving, lead, queued, per_replica, margin, want, from)
end
