-- POST /api/auth/login, round-robin over the seeded users u0..u(N-1)@bench.example (from
-- u(FIRST) on when FIRST is given).
-- Arguments: the number of users, the password they share, FIRST (0 by default).
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local users, password, first, n

function init(args)
  users, password, first = tonumber(args[1]), args[2], tonumber(args[3] or "0")
  n = (thread_id or 0) * 7919
end

function request()
  n = n + 1
  local body = string.format('{"email": "u%d@bench.example", "password": "%s"}', first + n % users, password)
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" }, body)
end
