-- moontide lua test examples/policies/forecast_test.lua

local function rep(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

local function obs(forecast)
  return { current = 4, ready = 4, forecasts = forecast and { load = forecast } or nil,
    metrics = { cpu = rep(50, 3), rps = rep(40, 3), served = rep(40, 3), queue = rep(0, 3) } }
end

function test_it_sizes_the_forecast_with_the_measured_throughput()
  local p = moontide.policy("forecast.lua")
  -- 2 busy replicas serve 40 req/s: 20 each; 60 ± 8 forecast: 64 → 3.2 replicas of work → 4
  local n, why = p:decide(obs{ value = 60, band = 8, lead = 180, model = "seasonal_naive(288)" })
  expect.eq(n, 4)
  expect.match(why, "in 180s by seasonal_naive")
  -- it scales in on the forecast: 10 req/s → 0.5 → 1
  expect.eq(p:decide(obs{ value = 10, lead = 180 }), 1)
end

function test_without_a_forecast_it_holds()
  local p = moontide.policy("forecast.lua")
  local n, why = p:decide(obs(nil))
  expect.is_nil(n)
  expect.match(why, "no forecast yet")
end
