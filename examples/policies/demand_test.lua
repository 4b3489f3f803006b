-- moontide lua test examples/policies/demand_test.lua

local function rep(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

function test_unsaturated_it_provisions_arrivals_at_eighty_percent()
  local p = moontide.policy("demand.lua")
  -- 4 ready replicas at 50 %: 2 busy serving 40 req/s, so one serves 20 req/s
  local n, why = p:decide{ current = 4, ready = 4, metrics = { cpu = rep(50, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(0, 5) } }
  expect.eq(n, 3) -- 40 / 20 = 2 replicas of work, / 0.8 = 2.5
  expect.match(why, "20.0 req/s per busy replica")
end

function test_saturated_it_follows_arrivals_not_cpu()
  local p = moontide.policy("demand.lua")
  -- 2 replicas at 100 % serve 40 req/s while 100 req/s arrive
  local n = p:decide{ current = 2, ready = 2, metrics = { cpu = rep(100, 5), rps = rep(100, 5), served = rep(40, 5), queue = rep(0, 5) } }
  expect.eq(n, 7) -- 100 / 20 = 5 replicas of work, / 0.8 = 6.25
end

function test_a_queue_is_worked_off_within_thirty_seconds()
  local p = moontide.policy("demand.lua")
  local n = p:decide{ current = 2, ready = 2, metrics = { cpu = rep(100, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(1200, 5) } }
  expect.eq(n, 5) -- 2 for the load + 1200 / (20 × 30) = 2 for the queue, / 0.8 = 5
end

function test_a_rising_trend_is_followed_for_the_time_to_ready_and_a_minute()
  local p = moontide.policy("demand.lua")
  -- arrivals up 1 req/s every second (10 s ticks)
  local obs = { current = 4, ready = 4, interval = 10, metrics = {
    cpu = { 50, 50, 50, 50, 50, 50, 50 }, rps = { 0, 10, 20, 30, 40, 50, 60 }, served = rep(40, 7), queue = rep(0, 7) } }
  -- 2 busy serve 40: 20 each; the last 30 s average 50 req/s, the 90th percentile of the last
  -- 2 minutes is 54: 54 + 1 req/s/s × (180 + 60) s = 294 req/s → 14.7 replicas of work → 18.4
  expect.eq(p:decide(obs), 19)
  -- the forecast check measured a 60 s time-to-ready: 54 + 1 × 120 = 174 → 8.7 → 10.9
  obs.forecasts = { load = { value = 0, lead = 60, model = "naive" } }
  expect.eq(p:decide(obs), 11)
end

function test_a_seasonal_forecast_adds_and_never_takes_away()
  local p = moontide.policy("demand.lua")
  local obs = { current = 4, ready = 4, metrics = { cpu = rep(50, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(0, 5) } }
  -- 100 req/s ± 20 forecast by a seasonal model: 100 + 20 / 2 = 110 → 5.5 replicas of work, at 100 %
  obs.forecasts = { load = { value = 100, band = 20, lead = 120, model = "holt_winters(288)" } }
  local n, why = p:decide(obs)
  expect.eq(n, 6)
  expect.match(why, "forecast 110.0 by holt_winters")
  -- a forecast below what arrives now asks for no fewer than the reactive part (3)
  obs.forecasts = { load = { value = 10, band = 0, lead = 120, model = "seasonal_naive(288)" } }
  expect.eq(p:decide(obs), 3)
  -- the last value's forecast adds nothing to what the reactive part sees
  obs.forecasts = { load = { value = 100, band = 0, lead = 120, model = "naive" } }
  expect.eq(p:decide(obs), 3)
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
