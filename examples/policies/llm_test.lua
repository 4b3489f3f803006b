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

-- one 10 s tick at minute `minute` of an hour: `arrivals` req/s at the gateway, `running` in batches
local function tick(p, minute, arrivals, running)
  return p:decide{ now = 1700000400 + 60 * minute, current = 4, ready = 4,
    metrics = { running = { running or 0 }, kv = { 0.1 }, queue = { 0 }, arrivals = { arrivals } } }
end

function test_servers_are_held_through_the_quiet_minutes_after_a_burst()
  local p = moontide.policy("llm.lua")
  -- a burst of 40 req/s: 0.5 × 40 / 5 = 4 servers held
  local n, why = tick(p, 0, 40, 64)
  expect.eq(n, 4)
  expect.match(why, "4 held %(40.0 req/s at most in 30 minutes%)")
  -- ten quiet minutes later the floor still holds them, with nothing running
  n, why = tick(p, 10, 0)
  expect.eq(n, 4)
  expect.match(why, "no requests, 4 held")
  -- a smaller burst does not lower it while the larger one is within 30 minutes
  expect.eq(tick(p, 20, 10, 8), 4)
  -- 30 minutes after the burst, the smaller one is the highest: ceil(0.5 × 10 / 5) = 1
  expect.eq(tick(p, 30, 0), 1)
  -- and 30 minutes after the smaller burst, the fleet may go to zero
  n, why = tick(p, 50, 0)
  expect.eq(n, 0)
  expect.match(why, "scale to the minimum")
end

function test_the_held_floor_follows_arrivals_not_a_backlog()
  local p = moontide.policy("llm.lua")
  -- woken from zero: 600 requests waited for the first servers, but only 6 req/s arrive
  local n = p:decide{ now = 1700000400, current = 2, ready = 2,
    metrics = { running = { 64 }, kv = { 0.9 }, queue = { 600 }, arrivals = { 6 } } }
  expect.eq(n, 2 + 19) -- the busy servers + ceil(600 / 32) for the queue
  -- once the backlog is worked off and the load goes quiet, the floor is what arrives: ceil(0.5 × 6 / 5)
  expect.eq(tick(p, 5, 0), 1)
end

function test_a_clock_that_went_back_keeps_the_minutes_ahead_of_it()
  local p = moontide.policy("llm.lua")
  expect.eq(tick(p, 10, 40, 64), 4)
  -- the clock is set back 5 minutes: the burst it saw still holds the floor, as this minute's
  expect.eq(tick(p, 5, 0), 4)
  -- for HELD_MINUTES from the new clock
  expect.eq(tick(p, 34, 0), 4)
  expect.eq(tick(p, 35, 0), 0)
end

function test_a_failed_or_nan_arrivals_reading_keeps_the_floor_it_had()
  for _, bad in ipairs({ false, 0 / 0, math.huge }) do
    local p = moontide.policy("llm.lua")
    expect.eq(tick(p, 0, 40, 64), 4)
    local n, why = tick(p, 1, bad)
    expect.eq(n, 4, tostring(bad))
    expect.match(why, "4 held %(40.0 req/s at most in 30 minutes; arrivals unknown now%)")
    -- the bad reading was not kept: the floor goes when the burst is 30 minutes old
    expect.eq(tick(p, 30, 0), 0, tostring(bad))
  end
end

function test_arrivals_are_kept_while_the_servers_metrics_are_unread()
  local p = moontide.policy("llm.lua")
  local n, why = p:decide{ now = 1700000400, current = 4, ready = 4,
    metrics = { running = { false }, kv = { false }, queue = { 0 }, arrivals = { 40 } } }
  expect.eq(n, 4, "unread servers are no reason to scale down")
  expect.match(why, "running or kv unknown with 4 replicas: no scale%-down on missing data")
  expect.eq(tick(p, 1, 0), 4)
end

function test_unread_servers_hold_the_count_and_the_floor_can_raise_it()
  local p = moontide.policy("llm.lua")
  -- 2 replicas, servers unread, arrivals of 40 req/s: the held floor (4) is more than the count
  local n = p:decide{ now = 1700000400, current = 2, ready = 2,
    metrics = { running = { false }, kv = { false }, queue = { 0 }, arrivals = { 40 } } }
  expect.eq(n, 4)
  -- at zero there is no server to read: the gateway's queue decides
  local q = moontide.policy("llm.lua")
  local z = q:decide{ now = 1700000400, current = 0, ready = 0,
    metrics = { running = { false }, kv = { false }, queue = { 0 }, pending = { 0 }, arrivals = { 0 } } }
  expect.eq(z, 0)
end

function test_the_state_keeps_one_peak_a_minute_for_thirty_minutes()
  local p = moontide.policy("llm.lua")
  for minute = 0, 90 do
    for tick_in_minute = 0, 5 do
      p:decide{ now = 1700000400 + 60 * minute + 10 * tick_in_minute, current = 4, ready = 4,
        metrics = { running = { 8 }, kv = { 0.1 }, queue = { 0 }, arrivals = { minute } } }
    end
  end
  local state = p:state()
  expect.eq(#state.peaks, 30)
  expect.eq(state.peaks[1][2], 61) -- minutes 61 to 90
end

function test_without_arrivals_there_is_no_floor()
  local p = moontide.policy("llm.lua")
  local n = p:decide{ now = 1700000400, current = 4, ready = 4, metrics = { running = { 0 }, kv = { 0 }, queue = { 0 } } }
  expect.eq(n, 0)
end

function test_params_set_what_one_server_answers_and_the_batch()
  -- servers that answer 10 req/s: a 40 req/s burst holds ceil(0.5 × 40 / 10) = 2
  local p = moontide.policy("llm.lua", { server_rps = 10 })
  expect.eq(tick(p, 0, 40, 8), 2)
  -- a batch of 16: 64 running ask for 4
  p = moontide.policy("llm.lua", { batch = 16 })
  expect.eq(p:decide{ current = 2, ready = 2, metrics = { running = { 64 }, kv = { 0.1 }, queue = { 0 } } }, 4)
end

function test_a_param_out_of_range_stops_the_check_naming_it()
  for _, bad in ipairs({ { server_rps = 0 }, { server_rps = "fast" }, { kv_target = 1.5 }, { held = -1 } }) do
    local p = moontide.policy("llm.lua", bad)
    local n, _, err = p:decide{ current = 2, ready = 2, metrics = { running = { 8 }, kv = { 0.1 }, queue = { 0 } } }
    expect.is_nil(n)
    local name = next(bad)
    expect.match(err, "params%." .. name .. ": .* is not a usable value")
  end
  -- held = 0 is allowed: no floor
  local p = moontide.policy("llm.lua", { held = 0 })
  expect.eq(tick(p, 0, 40, 8), 1)
end
