-- Shared by the scenarios (loaded with dofile; STRIDE_BENCH_LUA names this folder, bench/lua by
-- default): a number for each wrk thread, a file read into lines, and one machine-readable
-- summary line at the end, which bench/run parses.
local common = {}

local threads = 0
-- Runs in wrk's main Lua state, once per thread, just before that thread's init(): a thread
-- cannot know how many follow it, so scripts that split work take the count as an argument.
function common.setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

-- The lines of `path`; when `stride`/`offset` are given, only every stride-th line from offset
-- (so threads never share a line).
function common.lines(path, stride, offset)
  local lines, n = {}, 0
  for line in io.lines(path) do
    if line ~= "" then
      if not stride or n % stride == offset then
        lines[#lines + 1] = line
      end
      n = n + 1
    end
  end
  return lines
end

function common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "mean_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"non_2xx": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"timeouts": %d}\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end

return common
