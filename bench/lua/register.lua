-- POST /api/auth/register with a new, unique username and address on every request.
-- Arguments: a one-letter tag that differs between runs on one database, the password.
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local tag, password, n = "a", nil, 0

function init(args)
  tag, password = args[1], args[2]
end

function request()
  n = n + 1
  -- At most 12 characters: tag, thread, counter in base 10.
  local name = string.format("%s%d_%d", tag, thread_id or 0, n)
  local body = string.format(
    '{"username": "%s", "email": "%s@bench.example", "password": "%s", "password_conf": "%s"}',
    name, name, password, password)
  return wrk.format("POST", "/api/auth/register", { ["Content-Type"] = "application/json" }, body)
end
