-- moontide lua test examples/policies/demand_test.lua

local function rep(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

function test_unsaturated_it_provisions_arrivals_and_the_margin_at_ninety_two_percent()
  local p = moontide.policy("demand.lua")
  -- 4 ready replicas at 50 %: 2 busy serving 40 req/s, so one serves 20 req/s
  local n, why = p:decide{ current = 4, ready = 4, metrics = { cpu = rep(50, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(0, 5) } }
  expect.eq(n, 6) -- 40 / 20 = 2 replicas of work, + 3 of margin until it is learned, / 0.92 = 5.4
  expect.match(why, "20.0 req/s per busy replica, margin 3.0")
end

function test_saturated_it_follows_arrivals_not_cpu()
  local p = moontide.policy("demand.lua")
  -- 2 replicas at 100 % serve 40 req/s while 100 req/s arrive
  local n = p:decide{ current = 2, ready = 2, metrics = { cpu = rep(100, 5), rps = rep(100, 5), served = rep(40, 5), queue = rep(0, 5) } }
  expect.eq(n, 9) -- 100 / 20 = 5 replicas of work, + 3, / 0.92 = 8.7
end

function test_a_queue_is_worked_off_within_thirty_seconds()
  local p = moontide.policy("demand.lua")
  local n = p:decide{ current = 2, ready = 2, metrics = { cpu = rep(100, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(1200, 5) } }
  expect.eq(n, 8) -- 2 for the load + 3 + 1200 / (20 × 30) = 2 for the queue, / 0.92 = 7.6
end

-- readings of `rps` rising `by` req/s each 10 s tick, `n` of them from 0
local function ramp(n, by)
  local t = {}
  for i = 1, n do t[i] = (i - 1) * by end
  return t
end

-- 4 ready replicas at 50 % serving 40 req/s (2 busy, 20 req/s each), 10 s
-- ticks, with these readings of `rps`
local function two_busy(rps)
  local n = #rps
  return { current = 4, ready = 4, interval = 10, metrics = {
    cpu = rep(50, n), rps = rps, served = rep(40, n), queue = rep(0, n) } }
end

function test_a_rising_trend_is_followed_for_the_time_to_ready_and_a_minute()
  local p = moontide.policy("demand.lua")
  -- arrivals up 1 req/s every second for 4 minutes (25 readings, 10 s apart)
  local obs = two_busy(ramp(25, 10))
  -- 2 busy serve 40: 20 each; the last 30 s average 230 req/s (the 90th percentile of the
  -- last 2 minutes, 228, is lower): 230 + 1 req/s/s × (180 + 60) s = 470 req/s
  -- → 23.5 replicas of work, + 3 → 28.8
  expect.eq(p:decide(obs), 29)
  -- the forecast check measured a 60 s time-to-ready: 230 + 1 × 120 = 350 → 17.5, + 3 → 22.3
  obs.forecasts = { load = { value = 0, lead = 60, model = "naive" } }
  expect.eq(p:decide(obs), 23)
end

function test_a_trend_is_followed_no_further_than_the_history_it_was_drawn_from()
  local p = moontide.policy("demand.lua")
  -- the same rise seen for one minute only (7 readings): 50 + 1 × 60 = 110 → 5.5, + 3 → 9.2
  expect.eq(p:decide(two_busy(ramp(7, 10))), 10)
end

function test_noise_is_not_taken_for_a_trend()
  local p = moontide.policy("demand.lua")
  -- readings swinging 0 / 100 around 50 with a slight rise that one standard error swallows
  local swing = {}
  for i = 1, 25 do swing[i] = (i % 2 == 0 and 100 or 0) + i * 0.2 end
  local n, why = p:decide(two_busy(swing))
  -- without a trend: the 90th percentile of the last 2 minutes, 104.4 → 5.2 replicas of work, + 3 → 8.9
  expect.eq(n, 9)
  expect.match(why, "104.4 in 180s with the trend")
  -- the same rise without the swing is followed: the last 30 s average 54.8, + 0.02 req/s/s × 240 s
  local flat = {}
  for i = 1, 25 do flat[i] = 50 + i * 0.2 end
  local _, why2 = p:decide(two_busy(flat))
  expect.match(why2, "59.6 in 180s with the trend")
end

function test_a_seasonal_forecast_adds_and_never_takes_away()
  local p = moontide.policy("demand.lua")
  local obs = { current = 4, ready = 4, metrics = { cpu = rep(50, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(0, 5) } }
  -- 200 req/s ± 20 forecast by a seasonal model: 200 + 20 / 2 = 210 → 10.5 replicas of work, at 100 %
  obs.forecasts = { load = { value = 200, band = 20, lead = 120, model = "holt_winters(288)" } }
  local n, why = p:decide(obs)
  expect.eq(n, 11)
  expect.match(why, "forecast 210.0 by holt_winters")
  -- a forecast below what arrives now asks for no fewer than the reactive part (2 + 3 → 6)
  obs.forecasts = { load = { value = 10, band = 0, lead = 120, model = "seasonal_naive(288)" } }
  expect.eq(p:decide(obs), 6)
  -- the last value's forecast adds nothing to what the reactive part sees
  obs.forecasts = { load = { value = 200, band = 0, lead = 120, model = "naive" } }
  expect.eq(p:decide(obs), 6)
end

-- one 10 s tick of steady load (40 req/s, 2 replicas of work) at tick i
local function steady(p, i, lead, rps)
  return p:decide{ now = 1700000000 + 10 * i, current = 4, ready = 4,
    metrics = { cpu = rep(50, 5), rps = rep(rps or 40, 5), served = rep(40, 5), queue = rep(0, 5) },
    forecasts = lead and { load = { value = 40, lead = lead, model = "naive" } } or nil }
end

function test_the_margin_is_learned_from_scored_look_aheads()
  local p = moontide.policy("demand.lua")
  local function tick(i, rps) return steady(p, i, nil, rps) end
  local n, why
  -- nothing is scored before a time-to-ready (180 s) has passed
  for i = 0, 17 do n, why = tick(i, 40) end
  expect.match(why, "margin 3.0")
  -- steady arrivals meet every look-ahead: the margin shrinks by 0.3 × 0.05 a tick, to 0
  for i = 18, 237 do n, why = tick(i, 40) end
  expect.match(why, "margin 0.0")
  expect.eq(n, 3) -- 2 replicas of work / 0.92
  -- arrivals jump to 100 req/s: 5 replicas of work, 3 above the look-ahead made
  -- 180 s before (2), more than the margin: it widens by 0.3 × 0.95
  n, why = tick(238, 100)
  expect.match(why, "margin 0.3")
  expect.eq(n, 6) -- (5 + 0.285) / 0.92 = 5.7
  -- the margin is kept in ctx.state, where it survives restarts
  expect.near(p:state().margin, 0.285, 1e-9)
end

function test_the_look_aheads_waiting_to_be_scored_stay_few_with_a_long_time_to_ready()
  local p = moontide.policy("demand.lua")
  -- a measured time-to-ready of an hour: 720 ticks of 10 s, one look-ahead kept a minute
  for i = 0, 719 do steady(p, i, 3600) end
  expect.eq(#p:state().due, 60)
  -- the first hour's look-aheads were scored as they came due: 60, each covered
  expect.near(p:state().margin, 3 - 60 * 0.015, 1e-9)
end

function test_each_look_ahead_is_scored_when_it_comes_due_even_when_the_lead_shrinks()
  local p = moontide.policy("demand.lua")
  for i = 0, 5 do steady(p, i, 180) end -- due at 180 s to 230 s
  -- the time-to-ready is now measured at 60 s: the six made before still come due at their own time
  steady(p, 6, 60)
  expect.eq(#p:state().due, 7)
  expect.near(p:state().margin, 3, 1e-9)
  for i = 7, 23 do steady(p, i, 60) end
  -- by 230 s: ticks 0–17 came due (the six at 180–230 s, twelve more made at 60 s to 170 s)
  expect.near(p:state().margin, 3 - 18 * 0.015, 1e-9)
end

function test_look_aheads_long_overdue_are_dropped_unscored()
  local p = moontide.policy("demand.lua")
  for i = 0, 5 do steady(p, i, 180) end
  -- an hour later (a restart, or ticks skipped without load), arrivals are 5× higher:
  -- the old look-aheads say nothing about now, so the margin does not move
  local n, why = steady(p, 360, 180, 200)
  expect.match(why, "margin 3.0")
  expect.eq(#p:state().due, 1)
end

function test_a_clock_that_went_back_starts_the_look_aheads_over()
  local p = moontide.policy("demand.lua")
  for i = 100, 105 do steady(p, i, 180, 40 + i) end
  steady(p, 0, 180) -- 1,000 s earlier
  expect.eq(#p:state().due, 1)
  expect.eq(p:state().due[1], 1700000000 + 180)
  -- the arrivals seen "later" are still held, as this minute's
  local peaks = p:state().peaks
  expect.eq(#peaks, 1)
  expect.eq(peaks[1][1], math.floor(1700000000 / 60))
  expect.eq(peaks[1][2], 145)
end

function test_no_load_asks_for_zero_and_the_bounds_decide()
  local p = moontide.policy("demand.lua")
  local n, why = p:decide{ current = 3, ready = 3, metrics = { cpu = rep(0, 5), rps = rep(0, 5), served = rep(0, 5), queue = rep(0, 5) } }
  expect.eq(n, 0)
  expect.match(why, "no load")
end

function test_unknown_metrics_hold()
  local p = moontide.policy("demand.lua")
  local n, why = p:decide{ current = 3, ready = 3, metrics = { cpu = {}, rps = rep(10, 3), served = rep(10, 3) } }
  expect.is_nil(n)
  expect.match(why, "unknown")
end

-- the readings of `rps` of the last 30 minutes at tick i, for arrivals at(k) at tick k
local function last_half_hour(at, i)
  local t = {}
  for k = math.max(0, i - 179), i do t[#t + 1] = at(k) end
  return t
end

-- ticks first..last of 4 ready replicas at 50 % serving 40 req/s (20 req/s
-- each), with arrivals at(k) at tick k; returns the last count and reason
local function run(p, at, first, last)
  local n, why
  for i = first, last do
    local obs = two_busy(last_half_hour(at, i))
    obs.now = 1700000000 + 10 * i
    n, why = p:decide(obs)
  end
  return n, why
end

function test_the_held_rule_takes_over_where_it_would_have_missed_no_more_and_paid_less()
  local p = moontide.policy("demand.lua")
  -- 40 req/s with a one-minute spike to 100 req/s every 5 minutes
  local function spiky(k) return (k % 30 < 6) and 100 or 40 end
  -- the trend rule chases each spike (its 2-minute 90th percentile and the
  -- margin it learns from them, held over the 3-minute stabilization); the
  -- held rule keeps 1.1 × 100 req/s = 5.5 replicas of work all along.
  -- Rules are scored once the margin has had 200 scores (ticks 18–217),
  -- and the held rule needs 360 of them: it cannot be chosen before tick 577
  local n, why = run(p, spiky, 0, 576)
  expect.eq(p:state().rules.held.n, 359)
  expect.match(why, "%(trend%)")
  n, why = run(p, spiky, 577, 577)
  local rules = p:state().rules
  expect.eq(rules.held.n, 360)
  expect.truthy(rules.held.over <= rules.trend.over)
  expect.truthy(rules.held.paid < rules.trend.paid)
  expect.match(why, "held: 1.1 × the highest of the last 30 minutes, 100.0 req/s")
  expect.truthy(n >= 6) -- 1.1 × 100 req/s = 5.5 replicas of work / 0.92, or the arrivals' trend when higher
  -- the highest reading of each of the last 30 minutes is all it keeps for it
  expect.truthy(#p:state().peaks <= 30)
end

function test_on_steady_load_the_trend_rule_stays()
  local p = moontide.policy("demand.lua")
  local why
  -- neither rule misses anything; once its starting margin is shed, the trend
  -- rule asks 2 replicas of work, the held rule 1.1 × 2 = 2.2: the trend rule stays
  for i = 0, 799 do _, why = steady(p, i, nil) end
  local rules = p:state().rules
  expect.eq(rules.held.n, 800 - 18 - 200)
  expect.eq(rules.trend.over, 0)
  expect.eq(rules.held.over, 0)
  expect.truthy(rules.held.paid > rules.trend.paid)
  expect.match(why, "%(trend%)")
end

function test_the_trend_rule_stays_where_the_held_rule_would_pay_more()
  local p = moontide.policy("demand.lua")
  -- 40 req/s with a one-minute spike to 200 req/s every 25 minutes: the held
  -- rule keeps 1.1 × 200 req/s all along and misses none of it; the trend
  -- rule misses the spikes (too rare for its margin) and pays for 40 req/s
  local _, why = run(p, function(k) return (k % 150 < 6) and 200 or 40 end, 0, 799)
  local rules = p:state().rules
  expect.truthy(rules.held.n >= 360)
  expect.truthy(rules.held.over < rules.trend.over)
  expect.truthy(rules.held.paid > rules.trend.paid)
  expect.match(why, "%(trend%)")
end

function test_the_trend_rule_stays_where_the_held_rule_would_miss_more()
  local p = moontide.policy("demand.lua")
  -- arrivals doubling every 3 minutes: a straight-line trend falls behind a
  -- curve, and both rules miss; the trend rule's learned margin misses a
  -- little less, the held rule (no margin) would be cheaper
  local _, why = run(p, function(k) return 20 * 2 ^ (k / 18) end, 0, 599)
  local rules = p:state().rules
  expect.truthy(rules.held.n >= 360)
  expect.truthy(rules.held.over > rules.trend.over)
  expect.truthy(rules.held.paid < rules.trend.paid)
  expect.match(why, "%(trend%)")
end
