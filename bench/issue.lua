-- CAS ticket issuance: GET /login?service=... with the TGC cookie (given with -H) -> 302.
-- Script arguments: thread count, the most requests a thread may send.
-- Success: a redirect carrying ticket=ST-.

dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local limit

function init(args)
  limit = tonumber(args[2])
end

function request()
  within_budget(limit)
  return wrk.format()
end

function response(status, headers, body)
  local location = headers["location"] or headers["Location"] or ""
  if status == 302 and string.find(location, "ticket=ST-", 1, true) then
    ok = ok + 1
  end
end
