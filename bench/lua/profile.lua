-- GET /api/auth/profile with valid tokens, round-robin over many users.
-- Arguments: a file with one session token per line (bench/run mints one per user).
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local tokens, next_token

function init(args)
  tokens = common.lines(args[1])
  next_token = thread_id or 0
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", "/api/auth/profile", { ["Authorization"] = "Bearer " .. tokens[next_token] })
end
