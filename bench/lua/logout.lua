-- POST /api/auth/logout, a fresh session token for every request: each thread takes its own
-- share of the file's lines. A token used twice answers 401, which wrk counts as non-2xx and
-- bench/run reports: mint more tokens than the run can spend.
-- Arguments: a file with one session token per line, the number of wrk threads (-t).
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local tokens, n = nil, 0

function init(args)
  tokens = common.lines(args[1], tonumber(args[2]), thread_id)
end

function request()
  n = n + 1
  local token = tokens[(n - 1) % #tokens + 1]
  return wrk.format("POST", "/api/auth/logout", { ["Authorization"] = "Bearer " .. token })
end
