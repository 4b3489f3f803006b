-- moontide lua test examples/policies/time_of_day_floor_test.lua

local TUESDAY_10AM = 1700560800 -- 2023-11-21 10:00 UTC, a Tuesday
local TUESDAY_8PM = TUESDAY_10AM + 10 * 3600
local SATURDAY_10AM = TUESDAY_10AM + 4 * 86400

function test_business_hours_raise_the_floor()
  local p = moontide.policy("time_of_day_floor.lua")
  local n, why = p:decide{ now = TUESDAY_10AM, current = 2 }
  expect.eq(n, 4)
  expect.match(why, "10:00 UTC")
end

function test_the_floor_never_lowers_a_larger_count()
  local p = moontide.policy("time_of_day_floor.lua")
  expect.eq(p:decide{ now = TUESDAY_10AM, current = 9 }, 9)
end

function test_evenings_and_weekends_have_no_opinion()
  local p = moontide.policy("time_of_day_floor.lua")
  local n, why = p:decide{ now = TUESDAY_8PM, current = 6 }
  expect.is_nil(n)
  expect.match(why, "Tue 20:00")
  expect.is_nil(p:decide{ now = SATURDAY_10AM, current = 6 })
end
