-- POST /api/auth/login with the TOTP code in the same request (`totp_code`), each user's code of
-- the current 30-s step. Stride accepts a code once per step and user (replay protection), so
-- no user logs in twice in one step: users are taken in turn, skipping those already used in
-- this step (bench/run gives each run users of its own, so runs never share a step's codes).
-- Arguments: a file of lines `email code code …` (the codes of consecutive steps, the first of
-- them step FIRST), FIRST, the password.
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

local users, first_step, password
local used, cursor = {}, 0

function init(args)
  users = {}
  for _, line in ipairs(common.lines(args[1])) do
    local fields = {}
    for field in line:gmatch("%S+") do
      fields[#fields + 1] = field
    end
    users[#users + 1] = fields
  end
  first_step, password = tonumber(args[2]), args[3]
end

function request()
  local step = math.floor(os.time() / 30)
  local tries = 0
  repeat
    cursor = cursor % #users + 1
    tries = tries + 1
  until used[cursor] ~= step or tries > #users
  used[cursor] = step
  local user = users[cursor]
  -- fields: the address, then the code of step FIRST, FIRST + 1, …
  local code = user[step - first_step + 2] or user[#user]
  local body = string.format('{"email": "%s", "password": "%s", "totp_code": "%s"}', user[1], password, code)
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" }, body)
end
