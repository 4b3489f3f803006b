-- A floor for business hours: at least 4 replicas from 08:00 to 18:00 UTC,
-- Monday to Friday; no opinion otherwise (other checks decide). Combine it
-- with a reactive check: the safest (largest) recommendation wins.

local FLOOR = 4
local OPENS, CLOSES = 8, 18 -- hours, UTC

function decide(ctx)
  local t = os.date("!*t", math.floor(ctx.now))
  local weekday = t.wday >= 2 and t.wday <= 6 -- Sunday is 1
  if weekday and t.hour >= OPENS and t.hour < CLOSES then
    return math.max(ctx.current, FLOOR), ("business hours (%02d:%02d UTC): at least %d"):format(t.hour, t.min, FLOOR)
  end
  return nil, ("outside business hours (%s %02d:%02d UTC)"):format(os.date("!%a", math.floor(ctx.now)), t.hour, t.min)
end
