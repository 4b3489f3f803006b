-- moontide lua test examples/policies/queue_per_worker_test.lua

function test_a_steady_queue_gets_one_worker_per_hundred()
  local p = moontide.policy("queue_per_worker.lua")
  local n, why = p:decide{ current = 1, metrics = { queue = { 450, 450, 450, 450 } } }
  expect.eq(n, 5)
  expect.match(why, "450 waiting")
end

function test_a_growing_queue_is_provisioned_a_minute_ahead()
  local p = moontide.policy("queue_per_worker.lua")
  -- +100 jobs every 10 s: 10 jobs/s, 600 more in a minute
  local n = p:decide{ current = 2, interval = 10, metrics = { queue = { 100, 200, 300, 400 } } }
  expect.eq(n, 10)
end

function test_work_arriving_scales_from_zero()
  local p = moontide.policy("queue_per_worker.lua")
  expect.eq(p:decide{ current = 0, metrics = { queue = { 0, 0, 0, 3 } } }, 1)
end

function test_an_empty_queue_goes_to_zero_only_after_five_quiet_minutes()
  local p = moontide.policy("queue_per_worker.lua")
  local recent = {}
  for i = 1, 30 do recent[i] = 0 end
  recent[25] = 20
  expect.eq(p:decide{ current = 1, metrics = { queue = recent } }, 1)
  recent[25] = 0
  expect.eq(p:decide{ current = 1, metrics = { queue = recent } }, 0)
end

function test_an_unknown_depth_gives_no_opinion()
  local p = moontide.policy("queue_per_worker.lua")
  expect.is_nil(p:decide{ current = 3, metrics = { queue = false } })
end
