-- Shared by every bench script (loaded with dofile): thread ids, counters, one result line.
--
-- Each thread gets `id` (0-based) before its init(); scripts count in the thread globals
-- `ok` (answers that really succeeded) and `exhausted` (1 when the thread ran out of input).
-- done() prints one machine-readable line for bench/harness.py.
-- within_budget() bounds a thread's request count besides wrk's -d bound on time.

local threads = {}
local sent = 0

function within_budget(limit)
  sent = sent + 1
  if sent > limit then
    exhausted = 1
    wrk.thread:stop()
    return false
  end
  return true
end

function setup(thread)
  thread:set("id", #threads)
  thread:set("ok", 0)
  thread:set("exhausted", 0)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local ok, exhausted = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("ok")
    exhausted = exhausted + thread:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d ok=%d exhausted=%d connect_errors=%d read_errors=%d "
      .. "write_errors=%d status_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, ok, exhausted, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
