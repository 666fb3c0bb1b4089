-- wrk script for Tools/load: every request appends TOUCHLOG_LOAD_EVENTS events (JSON Lines) that all carry the
-- request's own touchpoint, "load-w<thread>-<n>", so that a replay can check each request is whole and contiguous.
-- Profiles come from a pool of 100,000; times spread over the last 30 days; 1 event in 10 is a conversion.
dofile("Tools/load-report.lua")
local threads = {}
local events = tonumber(os.getenv("TOUCHLOG_LOAD_EVENTS") or "100")
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local touchpoint = "load-w" .. id .. "-" .. counter
  local now = os.time() * 1000
  local lines = {}
  for i = 0, events - 1 do
    local n = counter * events + i
    local kind = (i % 10 == 9) and "conversion" or ((i % 3 == 0) and "click" or "view")
    lines[#lines + 1] = '{"time":' .. (now - (n * 7919) % 2592000000) .. ',"profile":"p' .. ((n * 104729) % 100000) ..
      '","type":"' .. kind .. '","touchpoint":"' .. touchpoint .. '"}'
  end
  return wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/x-ndjson" }, table.concat(lines, "\n") .. "\n")
end
