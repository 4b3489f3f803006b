-- The assertion API of `moontide lua test`. Every failure points at the
-- line of the test that called it.
local expect = {}

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function fail(msg, default)
  error((msg and (msg .. ": ") or "") .. default, 3)
end

function expect.eq(actual, expected, msg)
  if not deep_eq(actual, expected) then fail(msg, "expected " .. show(expected) .. ", got " .. show(actual)) end
end

function expect.ne(actual, unexpected, msg)
  if deep_eq(actual, unexpected) then fail(msg, "expected anything but " .. show(unexpected)) end
end

function expect.near(actual, expected, tolerance, msg)
  tolerance = tolerance or 1e-9
  if type(actual) ~= "number" or math.abs(actual - expected) > tolerance then
    fail(msg, ("expected %s ± %s, got %s"):format(show(expected), show(tolerance), show(actual)))
  end
end

function expect.truthy(v, msg)
  if not v then fail(msg, "expected a true value, got " .. show(v)) end
end

function expect.falsy(v, msg)
  if v then fail(msg, "expected false or nil, got " .. show(v)) end
end

function expect.is_nil(v, msg)
  if v ~= nil then fail(msg, "expected nil, got " .. show(v)) end
end

function expect.match(s, pattern, msg)
  if type(s) ~= "string" or not s:find(pattern) then
    fail(msg, "expected " .. show(s) .. " to match " .. show(pattern))
  end
end

function expect.error(f, pattern, msg)
  local ok, err = pcall(f)
  if ok then fail(msg, "expected an error") end
  if pattern and not tostring(err):find(pattern) then
    fail(msg, "expected an error matching " .. show(pattern) .. ", got " .. show(tostring(err)))
  end
end

return expect
