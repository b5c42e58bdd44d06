-- GET /api/ping: the framework's floor (routing, JSON envelope, no database).
local common = dofile((os.getenv("STRIDE_BENCH_LUA") or "bench/lua") .. "/common.lua")
setup, done = common.setup, common.done

wrk.method = "GET"
wrk.path = "/api/ping"
