-- moontide lua test examples/policies/slo_latency_test.lua

local function series(n, f)
  local t = {}
  for i = 1, n do t[i] = f(i) end
  return t
end

function test_a_broken_slo_scales_up_in_proportion()
  local p = moontide.policy("slo_latency.lua")
  -- the last 2 minutes sit at 500 ms: twice the SLO
  local n, why = p:decide{ current = 3, metrics = { latency_ms = series(12, function() return 500 end) } }
  expect.eq(n, 6)
  expect.match(why, "p95 500 ms breaks")
end

function test_one_slow_reading_in_two_minutes_does_not_break_the_p95()
  local p = moontide.policy("slo_latency.lua")
  -- 24 readings 5 s apart: one outlier sits above the 95th percentile
  local lat = series(24, function() return 100 end)
  lat[6] = 900
  local n, why = p:decide{ current = 3, interval = 5, metrics = { latency_ms = lat } }
  expect.is_nil(n)
  expect.match(why, "within")
end

function test_ten_quiet_minutes_remove_one()
  local p = moontide.policy("slo_latency.lua")
  expect.eq(p:decide{ current = 3, metrics = { latency_ms = series(60, function() return 80 end) } }, 2)
end

function test_partial_history_never_scales_down()
  local p = moontide.policy("slo_latency.lua")
  expect.is_nil(p:decide{ current = 3, metrics = { latency_ms = series(20, function() return 80 end) } })
end
