-- moontide lua test examples/policies/llm_test.lua

function test_a_full_kv_cache_asks_for_headroom()
  local p = moontide.policy("llm.lua")
  -- 4 replicas with their KV caches 90 % full, 40 running, nothing queued
  local n, why = p:decide{ current = 4, ready = 4, metrics = { running = { 40 }, kv = { 0.9 }, queue = { 0 } } }
  expect.eq(n, 5) -- 4 × 0.9 / 0.75 = 4.8
  expect.match(why, "KV 90%%")
end

function test_a_queue_adds_replicas_on_top_of_the_busy_ones()
  local p = moontide.policy("llm.lua")
  local n = p:decide{ current = 2, ready = 2, metrics = { running = { 32 }, kv = { 0.5 }, queue = { 40 } } }
  expect.eq(n, 4) -- 2 busy + ceil(40 / 32) = 2 for the queue
end

function test_with_nothing_waiting_it_scales_down_to_the_batch_and_the_kv_cache()
  local p = moontide.policy("llm.lua")
  -- 8 ready replicas, 32 requests running, KV caches 20 % full: the ready count is no floor
  local n = p:decide{ current = 8, ready = 8, metrics = { running = { 32 }, kv = { 0.2 }, queue = { 0 } } }
  expect.eq(n, 3) -- 8 × 0.2 / 0.75 = 2.1 for the KV cache; 32 / 32 = 1 for the batch
end

function test_a_queue_at_replicas_serving_nothing_yet_is_not_added_to_them()
  local p = moontide.policy("llm.lua")
  -- 4 replicas just loaded, none serving yet, 40 requests waiting at the gateway
  local n = p:decide{ current = 4, ready = 4, metrics = { running = { 0 }, kv = { 0 }, queue = { 0 }, pending = { 40 } } }
  expect.eq(n, 2) -- ceil(40 / 32): the ready replicas will take them
end

function test_the_gateway_queue_counts_when_it_is_longer()
  local p = moontide.policy("llm.lua")
  local n = p:decide{ current = 2, ready = 2, metrics = { running = { 32 }, kv = { 0.5 }, queue = { 0 }, pending = { 64 } } }
  expect.eq(n, 4) -- 2 + 64 / 32 (the servers' own queue is empty)
end

function test_from_zero_the_first_request_wakes_one_replica()
  local p = moontide.policy("llm.lua")
  local n = p:decide{ current = 0, ready = 0, metrics = { running = { 0 }, kv = { 0 }, queue = { 0 }, pending = { 1 } } }
  expect.eq(n, 1)
end

function test_no_requests_scale_to_zero()
  local p = moontide.policy("llm.lua")
  local n, why = p:decide{ current = 3, ready = 3, metrics = { running = { 0 }, kv = { 0 }, queue = { 0 } } }
  expect.eq(n, 0)
  expect.match(why, "no requests")
end

function test_a_seasonal_forecast_brings_servers_up_before_the_load()
  local p = moontide.policy("llm.lua")
  -- no request yet, but yesterday's peak starts in 4 minutes
  local forecasts = { ahead = { value = 6000, band = 500, replicas = 5, lead = 240, model = "seasonal_naive(288)" } }
  local n, why = p:decide{ current = 0, ready = 0, forecasts = forecasts,
    metrics = { running = { 0 }, kv = { 0 }, queue = { 0 } } }
  expect.eq(n, 5)
  expect.match(why, "5 for the forecast %(seasonal_naive%(288%), in 240s%)")
  -- under load, the larger of the forecast and what the servers say
  n = p:decide{ current = 5, ready = 5, forecasts = forecasts, metrics = { running = { 64 }, kv = { 0.3 }, queue = { 0 } } }
  expect.eq(n, 5)
  n = p:decide{ current = 5, ready = 5, forecasts = forecasts, metrics = { running = { 160 }, kv = { 0.9 }, queue = { 0 } } }
  expect.eq(n, 6) -- 5 × 0.9 / 0.75
end

function test_a_last_value_forecast_adds_nothing()
  local p = moontide.policy("llm.lua")
  local forecasts = { ahead = { value = 6000, band = 0, replicas = 5, lead = 240, model = "naive" } }
  local n = p:decide{ current = 3, ready = 3, forecasts = forecasts, metrics = { running = { 0 }, kv = { 0 }, queue = { 0 } } }
  expect.eq(n, 0)
end
