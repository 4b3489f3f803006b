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
-- Two rules size the load, and the policy keeps the one its own history
-- favours:
--
--   trend rule          = arriving ÷ per busy replica + margin (above)
--   held rule           = HELD × the highest arrivals of the last
--                         HELD_MINUTES minutes (or arriving, when higher)
--                         ÷ per busy replica: capacity held through the
--                         gaps between short spikes, which a reaction a
--                         time-to-ready late always misses. The highest
--                         reading of each minute is kept in ctx.state, so
--                         it needs no long metric window.
--
-- Each look-ahead also keeps what both rules asked for, as they would pay
-- for it: the highest of their asks over the last STABILIZATION seconds
-- (the policy's scale-down stabilization holds that long). When it comes
-- due, each rule scores the replicas of arrivals above its ask (overflow)
-- and the ask (cost), older scores fading by DECAY at each new one. The
-- rules are scored only once the margin has had SETTLE scores, time to
-- shed its starting value, so that the trend rule is not charged for a
-- margin it has not learned yet. After MIN_SCORES rule scores (an hour of
-- 10 s ticks with a time-to-ready under 10 minutes; a longer one scores
-- a sample of the ticks) the held rule is used while it would have
-- overflowed no more and paid no more than the trend rule: on traffic of
-- minute-long spikes (the NASA logs) it is both cheaper and safer; on
-- steady load, ramps and flash crowds the trend rule stays.
--
-- The forecast only ever adds: it never asks for fewer replicas than the
-- reactive part. Scale-down pacing is left to the policy's behaviour
-- (stabilization). The margin, the rules' scores and the look-aheads waiting
-- to be scored (at most MAX_PENDING over a time-to-ready) live in ctx.state,
-- so they survive reloads and restarts. Needs metrics `cpu` (%, averaged over ready replicas),
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
local HELD = 1.1 -- the held rule's share of the highest arrivals of the last HELD_MINUTES
local HELD_MINUTES = 30
local STABILIZATION = 180 -- seconds a rule's ask is paid for (the policy's scale-down stabilization)
local SETTLE = math.ceil(INITIAL_MARGIN / (STEP * (1 - QUANTILE)) - 1e-9) -- margin scores (200) before the rules are scored
local MIN_SCORES = 360 -- rule scores before the held rule may be chosen
local DECAY = 0.9999 -- weight an older score keeps at each new one (half in about 19 h of 10 s ticks)
local RULES = { "trend", "held" }
local peaks = require("peaks")

-- Adds one scored look-ahead to a rule's record: the replicas of arrivals
-- it would have missed and what it would have paid, older scores fading.
local function score_rule(rule, needed_now, asked)
  rule.over = rule.over * DECAY + math.max(0, needed_now - asked)
  rule.paid = rule.paid * DECAY + asked
  rule.n = rule.n + 1
end

-- Scores the look-aheads that have come due against the replicas the
-- arrivals need now, moving the margin and the rules' records for each,
-- and keeps this tick's look-ahead (in replicas of work) and the rules'
-- asks with the time it comes due. A look-ahead long overdue (ticks skipped
-- while there was no load, a restart) is dropped unscored; a clock that
-- went back drops them all. Returns the margin.
local function learn(s, now, lead, interval, needed_now, ahead, asks)
  s.margin = s.margin or INITIAL_MARGIN
  s.scored = s.scored or 0
  s.rules = s.rules or {}
  for _, name in ipairs(RULES) do
    s.rules[name] = s.rules[name] or { over = 0, paid = 0, n = 0 }
  end
  if s.last and now < s.last then
    s.due, s.ahead, s.asks, s.last = nil, nil, nil, nil
  end
  local spacing = lead / MAX_PENDING
  local late = 2 * math.max(interval, spacing)
  local old_asks = s.asks or {}
  local due, kept, kept_asks = {}, {}, {}
  for i, at in ipairs(s.due or {}) do
    if at > now then
      due[#due + 1], kept[#kept + 1], kept_asks[#kept_asks + 1] = at, s.ahead[i], old_asks[i] or false
    elseif now - at <= late then
      if needed_now - s.ahead[i] > s.margin then
        s.margin = s.margin + STEP * QUANTILE
      else
        s.margin = math.max(0, s.margin - STEP * (1 - QUANTILE))
      end
      s.scored = s.scored + 1
      -- the asks made with this look-ahead (state kept by an older version
      -- of this script may have none, or asks of other rules)
      local asked = old_asks[i]
      if s.scored > SETTLE and type(asked) == "table" and asked.at == at then
        for _, name in ipairs(RULES) do
          if type(asked[name]) == "number" then
            score_rule(s.rules[name], needed_now, asked[name])
          end
        end
      end
    end
  end
  -- at most MAX_PENDING look-aheads made over a time-to-ready (with a long
  -- one, a sample of the ticks), so the state stays small
  if (s.last == nil or now - s.last >= spacing) and ahead == ahead and ahead < math.huge then
    if asks then
      asks.at = now + lead
    end
    due[#due + 1], kept[#kept + 1], kept_asks[#kept_asks + 1] = now + lead, ahead, asks or false
    s.last = now
  end
  s.due, s.ahead, s.asks = due, kept, kept_asks
  return s.margin
end

-- What each rule would pay for now: the highest of its asks over the last
-- STABILIZATION seconds, this tick's included (kept in s.asked).
local function paid_for(s, now, trend, held)
  local asked = { { now, trend, held } }
  for _, r in ipairs(s.asked or {}) do
    if now - r[1] < STABILIZATION and r[1] < now then
      asked[#asked + 1] = r
    end
  end
  s.asked = asked
  for _, r in ipairs(asked) do
    trend, held = math.max(trend, r[2]), math.max(held, r[3])
  end
  return { trend = trend, held = held }
end

-- The highest arrivals of the last HELD_MINUTES minutes, this reading
-- included: the highest reading of each minute is kept in s.peaks (see
-- require("peaks"); a clock set back never lowers what is held).
local function highest_arrivals(s, now, rps)
  s.peaks = s.peaks or {}
  return peaks.keep(s.peaks, now, HELD_MINUTES, rps) or rps
end

-- Whether the held rule has earned its place: scored long enough, no more
-- overflow and no more cost than the trend rule.
local function held_earned(s)
  local t, h = s.rules.trend, s.rules.held
  return h.n >= MIN_SCORES and h.over <= t.over and h.paid <= t.paid
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
  local s = ctx.state
  local for_queue = queued / (per_replica * DRAIN)
  local highest = highest_arrivals(s, ctx.now, rps)
  local held = math.max(HELD * highest, arriving) / per_replica + for_queue
  local trend_ask = arriving / per_replica + (s.margin or INITIAL_MARGIN) + for_queue
  local asks = { trend = trend_ask / TARGET, held = held / TARGET }
  if asks.trend < math.huge and asks.held < math.huge then -- false for NaN too
    asks = paid_for(s, ctx.now, asks.trend, asks.held)
  else
    asks = nil
  end
  local margin = learn(s, ctx.now, lead, ctx.interval, rps / per_replica, arriving / per_replica, asks)
  local need = arriving / per_replica + margin + for_queue
  local from = "trend"
  if held_earned(s) then
    need, from = held, ("held: %.1f × the highest of the last %d minutes, %.1f req/s"):format(HELD, HELD_MINUTES, highest)
  end
  local want = math.ceil(need / TARGET - 1e-9)
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
