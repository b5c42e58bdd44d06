-- GET /api/auth/profile with valid tokens, round-robin over many users.
-- Arguments: a file with one session token per line (bench/run mints one per user); `cookie`
-- to send each as the browser's `access_token_cookie` (docs/browser-sessions.md) instead of
-- `Authorization: Bearer` (the file then holds cookie tokens: mint_sessions … cookie).
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local tokens, next_token, by_cookie

function init(args)
  tokens = common.lines(args[1])
  next_token = thread_id or 0
  by_cookie = args[2] == "cookie"
end

function request()
  next_token = next_token % #tokens + 1
  local headers
  if by_cookie then
    headers = { ["Cookie"] = "access_token_cookie=" .. tokens[next_token] }
  else
    headers = { ["Authorization"] = "Bearer " .. tokens[next_token] }
  end
  return wrk.format("GET", "/api/auth/profile", headers)
end
