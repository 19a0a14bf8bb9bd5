-- GETs with the admin bearer, a path drawn at random from a file (one path a line) for each request.
-- Arguments: the path file, the admin token.
local paths = {}
local token = ""

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  token = args[2]
  math.randomseed(os.time())
end

function request()
  local headers = {}
  headers["Authorization"] = "Bearer " .. token
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
