-- `require("peaks")`: the highest reading of each minute, kept for a number
-- of minutes in a plain list the policy stores in ctx.state, so that "the
-- highest arrivals of the last 30 minutes" survives reloads and restarts and
-- needs no metric window that long.
--
--   local peaks = require("peaks")
--   ctx.state.rps_peaks = ctx.state.rps_peaks or {}
--   local highest = peaks.keep(ctx.state.rps_peaks, ctx.now, 30, rps)
--
-- keep(list, now, minutes, value): folds `list` in place to the minutes of
-- the last `minutes` (this one included; up to 1, this one alone) and adds `value` to this minute's
-- peak, then returns the highest peak kept (nil when none is). A value that
-- is nil, NaN or infinite adds nothing, so a failed reading does not lower
-- what is held. Minutes ahead of the clock (one set back) count as this
-- minute: a clock change never lowers what is held. The list holds
-- { minute, highest } pairs, oldest first, at most `minutes` of them.
local error, type, format, floor, huge = error, type, string.format, math.floor, math.huge

local function keep(list, now, minutes, value)
  if type(list) ~= "table" then
    error(format("peaks.keep: the list must be a table (got %s)", type(list)), 2)
  end
  if type(now) ~= "number" or now ~= now or now == huge or now == -huge then
    error("peaks.keep: now must be a finite number of seconds", 2)
  end
  if type(minutes) ~= "number" or not (minutes > 0 and minutes < huge) then
    error("peaks.keep: minutes must be a number above 0", 2)
  end
  if value ~= nil and type(value) ~= "number" then
    error(format("peaks.keep: the value must be a number or nil (got %s)", type(value)), 2)
  end
  local minute = floor(now / 60)
  -- in place: this runs every tick, and a new table per kept minute was
  -- most of a policy's time on long traces
  local n, highest = 0, nil
  for i = 1, #list do
    local p = list[i]
    if type(p) == "table" and type(p[1]) == "number" and type(p[2]) == "number" then
      if p[1] > minute then
        p[1] = minute
      end
      if p[1] > minute - minutes then
        local last = list[n]
        if n > 0 and last[1] == p[1] then
          if p[2] > last[2] then
            last[2] = p[2]
          end
        else
          n = n + 1
          list[n] = p
        end
        if highest == nil or p[2] > highest then
          highest = p[2]
        end
      end
    end
  end
  for i = #list, n + 1, -1 do
    list[i] = nil
  end
  if value ~= nil and value == value and value < huge and value > -huge then
    local last = list[n]
    if n > 0 and last[1] == minute then
      if value > last[2] then
        last[2] = value
      end
    else
      list[n + 1] = { minute, value }
    end
    if highest == nil or value > highest then
      highest = value
    end
  end
  return highest
end

-- Read-only, so that one policy cannot change the module under another.
local module = { keep = keep }
return setmetatable({}, {
  __index = module,
  __newindex = function()
    error("the peaks module is read-only", 2)
  end,
  __metatable = false,
})
