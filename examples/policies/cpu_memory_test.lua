-- moontide lua test examples/policies/cpu_memory_test.lua

local function rep(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

function test_a_sustained_minute_of_high_cpu_adds_one()
  local p = moontide.policy("cpu_memory.lua")
  local n, why = p:decide{ current = 3, interval = 10, metrics = { cpu = rep(90, 6), memory = rep(40, 6) } }
  expect.eq(n, 4)
  expect.match(why, "cpu above 80%% for 60s")
end

function test_a_spike_shorter_than_a_minute_holds()
  local p = moontide.policy("cpu_memory.lua")
  local n, why = p:decide{ current = 3, metrics = { cpu = { 50, 50, 95, 95, 95, 95 }, memory = rep(40, 6) } }
  expect.is_nil(n)
  expect.match(why, "holding")
end

function test_memory_alone_is_enough_to_scale_up()
  local p = moontide.policy("cpu_memory.lua")
  local n = p:decide{ current = 2, metrics = { cpu = rep(20, 6), memory = rep(80, 6) } }
  expect.eq(n, 3)
end

function test_quiet_for_five_minutes_removes_one()
  local p = moontide.policy("cpu_memory.lua")
  local n, why = p:decide{ current = 5, metrics = { cpu = rep(10, 30), memory = rep(30, 30) } }
  expect.eq(n, 4)
  expect.match(why, "below")
end

function test_between_the_bounds_it_holds_without_flapping()
  local p = moontide.policy("cpu_memory.lua")
  for _, cpu in ipairs({ 45, 60, 79, 41 }) do
    local n = p:decide{ current = 4, metrics = { cpu = rep(cpu, 30), memory = rep(30, 30) } }
    expect.is_nil(n, "cpu " .. cpu)
  end
end

function test_a_failed_reading_gives_no_opinion()
  local p = moontide.policy("cpu_memory.lua")
  local cpu = rep(10, 30)
  cpu[30] = false
  local n, why, err = p:decide{ current = 4, metrics = { cpu = cpu, memory = rep(30, 30) } }
  expect.is_nil(n)
  expect.is_nil(err)
  expect.match(why, "waiting")
end
