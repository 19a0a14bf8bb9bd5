-- Replays pre-signed requests (one per line: signature<TAB>event type<TAB>body), each once.
local lines = {}
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    lines[#lines + 1] = line
  end
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
