-- GET /api/users with a query string, round-robin over the tokens of many users.
-- Arguments: a file with one session token per line, the query ("page=1", "q=okka", …).
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local tokens, next_token, path

function init(args)
  tokens = common.lines(args[1])
  next_token = thread_id or 0
  path = "/api/users?" .. (args[2] or "")
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[next_token] })
end
