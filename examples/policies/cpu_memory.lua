-- The guide's rule, done right.
--
-- Up: CPU above 80 % or memory above 75 % for a whole minute.
-- Down: CPU below 40 % and memory below 50 % for five whole minutes.
-- In between: no opinion, so the count holds (no flapping). A failed reading
-- gives no opinion either, and Moontide never scales down on missing data.
-- Needs metrics named `cpu` and `memory`.

local UP_CPU, UP_MEMORY = 80, 75
local DOWN_CPU, DOWN_MEMORY = 40, 50
local UP_FOR, DOWN_FOR = 60, 300 -- seconds

-- Whether the last `seconds` hold a reading for every tick.
local function covered(m, seconds, ctx)
  return m:count(seconds) >= math.floor(seconds / ctx.interval)
end

function decide(ctx)
  local cpu, memory = ctx.metrics.cpu, ctx.metrics.memory
  if cpu.value == nil or memory.value == nil then
    return nil, "waiting for fresh cpu and memory readings"
  end
  if covered(cpu, UP_FOR, ctx) and cpu:min(UP_FOR) > UP_CPU then
    return ctx.current + 1, ("cpu above %d%% for %ds (lowest %.0f%%)"):format(UP_CPU, UP_FOR, cpu:min(UP_FOR))
  end
  if covered(memory, UP_FOR, ctx) and memory:min(UP_FOR) > UP_MEMORY then
    return ctx.current + 1,
      ("memory above %d%% for %ds (lowest %.0f%%)"):format(UP_MEMORY, UP_FOR, memory:min(UP_FOR))
  end
  if covered(cpu, DOWN_FOR, ctx) and covered(memory, DOWN_FOR, ctx)
    and cpu:max(DOWN_FOR) < DOWN_CPU and memory:max(DOWN_FOR) < DOWN_MEMORY then
    return ctx.current - 1, ("cpu below %d%% and memory below %d%% for %ds"):format(DOWN_CPU, DOWN_MEMORY, DOWN_FOR)
  end
  return nil, ("holding: cpu %.0f%%, memory %.0f%%"):format(cpu.value, memory.value)
end
