-- POST /api/auth/password/reset-request, round-robin over the seeded users' addresses (each
-- request queues an email in the outbox).
-- Arguments: the number of users.
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local users, n

function init(args)
  users = tonumber(args[1])
  n = (thread_id or 0) * 7919
end

function request()
  n = n + 1
  local body = string.format('{"email": "u%d@bench.example"}', n % users)
  return wrk.format("POST", "/api/auth/password/reset-request", { ["Content-Type"] = "application/json" }, body)
end
