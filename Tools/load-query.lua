-- wrk script for Tools/load: asks for a segment's member count as of now (TOUCHLOG_LOAD_PATH).
dofile("Tools/load-report.lua")
local path = os.getenv("TOUCHLOG_LOAD_PATH")

function request()
  return wrk.format("GET", path)
end
