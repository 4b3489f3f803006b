-- require("peaks"), run by crates/lua/tests/peaks.rs through `moontide lua test`'s runner.
local peaks = require("peaks")
local T0 = 1700000000 -- a minute boundary: 28333333 × 60 + 20, so T0 - 20 is one

local function at(minutes, seconds)
  return T0 - 20 + minutes * 60 + (seconds or 0)
end

function test_the_highest_of_each_minute_is_kept_and_the_highest_kept_returned()
  local list = {}
  expect.eq(peaks.keep(list, at(0, 5), 3, 10), 10)
  expect.eq(peaks.keep(list, at(0, 15), 3, 4), 10, "a lower reading in the same minute")
  expect.eq(#list, 1, "one entry a minute")
  expect.eq(list[1][2], 10)
  expect.eq(peaks.keep(list, at(1, 0), 3, 7), 10)
  expect.eq(peaks.keep(list, at(2, 0), 3, 2), 10)
  expect.eq(#list, 3)
  -- minute 0 falls out of the last 3 minutes at minute 3
  expect.eq(peaks.keep(list, at(3, 0), 3, 1), 7)
  expect.eq(#list, 3)
  expect.eq(list[1][1], math.floor(at(1) / 60), "oldest first")
  -- a minute or less: this minute alone
  expect.eq(peaks.keep(list, at(3, 30), 0.5, nil), 1)
  expect.eq(#list, 1)
end

function test_no_value_holds_what_is_kept_and_bad_values_add_nothing()
  local list = {}
  peaks.keep(list, at(0), 30, 12)
  expect.eq(peaks.keep(list, at(1), 30, nil), 12, "a failed reading does not lower it")
  expect.eq(peaks.keep(list, at(1), 30, 0 / 0), 12, "NaN adds nothing")
  expect.eq(peaks.keep(list, at(1), 30, math.huge), 12, "nor does infinity")
  expect.eq(#list, 1)
  expect.is_nil(peaks.keep({}, at(0), 30, nil), "nothing kept, nothing to return")
  -- a long silence empties the list
  expect.is_nil(peaks.keep(list, at(90), 30, nil))
  expect.eq(#list, 0)
end

function test_a_clock_set_back_never_lowers_what_is_held()
  local list = {}
  peaks.keep(list, at(10), 5, 40)
  expect.eq(peaks.keep(list, at(2), 5, 3), 40, "minutes ahead of the clock count as this minute")
  expect.eq(#list, 1, "and merge into it")
  expect.eq(list[1][1], math.floor(at(2) / 60))
end

function test_a_list_restored_from_json_state_is_read_and_junk_in_it_dropped()
  local list = { { math.floor(at(0) / 60), 9 }, "junk", { "x", 3 }, { math.floor(at(1) / 60), 5 } }
  expect.eq(peaks.keep(list, at(1), 5, 1), 9)
  expect.eq(#list, 2)
end

function test_wrong_arguments_name_what_is_wrong_and_the_module_is_read_only()
  expect.error(function() peaks.keep(nil, at(0), 3, 1) end, "the list must be a table")
  expect.error(function() peaks.keep({}, "now", 3, 1) end, "now must be a finite number")
  expect.error(function() peaks.keep({}, at(0), 0, 1) end, "minutes must be a number above 0")
  expect.error(function() peaks.keep({}, at(0), 3, "9") end, "the value must be a number or nil")
  expect.error(function() peaks.keep = nil end, "read%-only")
  expect.eq(type(require("peaks").keep), "function", "still there")
end
