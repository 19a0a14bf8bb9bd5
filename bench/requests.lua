-- Replays pre-signed requests (one per line: signature<TAB>event type<TAB>body), each once.
-- Arguments: the request file; optionally how many responses to stop after, and a file to
-- create then (bench.servers.run_wrk waits for it and stops wrk's clock).
local lines = {}
local index = 0

local function stop_after(limit, flag)
  local responses = 0
  return function(status, headers, body)
    responses = responses + 1
    if responses == limit then
      io.open(flag, "w"):close()
      wrk.thread:stop()
    end
  end
end

function init(args)
  for line in io.lines(args[1]) do
    lines[#lines + 1] = line
  end
  -- defined only when asked: a script with response() makes wrk parse every answer
  if args[2] then response = stop_after(tonumber(args[2]), args[3]) end
end

function request()
  index = index + 1
  if index > #lines then index = 1 end
  local sig, event, body = lines[index]:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["X-M3-Signature"] = sig
  headers["X-M3-Event"] = event
  return wrk.format("POST", "/hooks/m3", headers, body)
end
