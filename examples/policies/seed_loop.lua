-- A loop in the style of the autoscaling guide, written for Moontide's script
-- mode: it reads JSON metrics, decides, and calls a provider's scale-up or
-- scale-down URL, then sleeps. Moontide maps those URLs (see
-- examples/script.toml) so every call passes through its guards, rate limits,
-- idempotency keys and decision log; the loop itself stays this simple.
local socket = require("socket")
local http = require("socket.http")
local json = require("json")

local METRICS = "http://metrics.internal/metrics"
local SCALE_UP = "https://cloud.example/v1/groups/web/scale-up"
local SCALE_DOWN = "https://cloud.example/v1/groups/web/scale-down"

local function read_metrics()
  local body, code = http.request(METRICS)
  if body == nil or code ~= 200 then
    return nil, tostring(code)
  end
  return json.decode(body)
end

while true do
  local m, err = read_metrics()
  if m == nil then
    print("metrics unavailable: " .. err) -- skip this round; never act on missing data
  elseif m.cpuUsage > 80 or m.memoryUsage > 75 then
    http.request(SCALE_UP)
  elseif m.cpuUsage < 30 and m.memoryUsage < 50 then
    http.request(SCALE_DOWN)
  end
  socket.sleep(10)
end
