-- moontide lua test examples/policies/demand_test.lua

local function rep(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

function test_unsaturated_it_provisions_arrivals_at_seventy_percent()
  local p = moontide.policy("demand.lua")
  -- 4 ready replicas at 50 %: 2 busy serving 40 req/s, so one serves 20 req/s
  local n, why = p:decide{ current = 4, ready = 4, metrics = { cpu = rep(50, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(0, 5) } }
  expect.eq(n, 3) -- 40 / 20 = 2 replicas of work, / 0.7 = 2.9
  expect.match(why, "20.0 req/s per busy replica")
end

function test_saturated_it_follows_arrivals_not_cpu()
  local p = moontide.policy("demand.lua")
  -- 2 replicas at 100 % serve 40 req/s while 100 req/s arrive
  local n = p:decide{ current = 2, ready = 2, metrics = { cpu = rep(100, 5), rps = rep(100, 5), served = rep(40, 5), queue = rep(0, 5) } }
  expect.eq(n, 8) -- 100 / 20 = 5 replicas of work, / 0.7 = 7.1
end

function test_a_queue_is_worked_off_within_thirty_seconds()
  local p = moontide.policy("demand.lua")
  local n = p:decide{ current = 2, ready = 2, metrics = { cpu = rep(100, 5), rps = rep(40, 5), served = rep(40, 5), queue = rep(1200, 5) } }
  expect.eq(n, 6) -- 2 for the load + 1200 / (20 × 30) = 2 for the queue, / 0.7 = 5.7
end

function test_a_rising_trend_is_followed_a_minute_ahead()
  local p = moontide.policy("demand.lua")
  -- arrivals up 1 req/s every second (10 s ticks)
  local n = p:decide{ current = 4, ready = 4, interval = 10, metrics = {
    cpu = { 50, 50, 50, 50, 50, 50, 50 }, rps = { 0, 10, 20, 30, 40, 50, 60 }, served = rep(40, 7), queue = rep(0, 7) } }
  -- 2 busy serve 40: 20 each; 60 + 1 × 60 = 120 req/s → 6 replicas of work → 8.6
  expect.eq(n, 9)
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
