-- Queue depth per worker: keep about 100 waiting jobs per worker, looking a
-- minute ahead when the queue is growing. Scales from zero when work arrives
-- (set the policy's min to 0) and down to zero when the queue stays empty.
-- Needs a metric named `queue` (jobs waiting).

local PER_WORKER = 100
local LOOK_AHEAD = 60 -- seconds

function decide(ctx)
  local queue = ctx.metrics.queue
  if queue.value == nil then
    return nil, "queue depth unknown"
  end
  local growth = queue:slope("2m") or 0 -- jobs per second
  local ahead = queue.value + math.max(growth, 0) * LOOK_AHEAD
  local want = math.ceil(ahead / PER_WORKER)
  if want == 0 and queue:max("5m") > 0 then
    want = 1 -- drain the last jobs before going to zero
  end
  return want, ("%d waiting, %+.2f/s: %d worker(s) at %d each"):format(queue.value, growth, want, PER_WORKER)
end
