-- CAS ticket validation: one pre-issued ticket per request, never reused.
-- Script arguments: thread count, ticket file (one per line), path up to "ticket=".
-- Thread `id` takes lines id+1, id+1+threads, ...: each thread its own slice.

dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local tickets = {}
local next_ticket = 1
local path_prefix

function init(args)
  local threads, file = tonumber(args[1]), args[2]
  path_prefix = args[3]
  local line_number = 0
  for line in io.lines(file) do
    if line_number % threads == id then
      tickets[#tickets + 1] = line
    end
    line_number = line_number + 1
  end
end

function request()
  local ticket = tickets[next_ticket]
  if ticket == nil then
    -- Out of tickets: stop this thread rather than send a ticket twice.
    exhausted = 1
    wrk.thread:stop()
    ticket = "ST-none"
  end
  next_ticket = next_ticket + 1
  return wrk.format("GET", path_prefix .. ticket)
end

function response(status, headers, body)
  if status == 200 and string.find(body, "authenticationSuccess", 1, true) then
    ok = ok + 1
  end
end
