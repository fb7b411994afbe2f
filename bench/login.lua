-- Password logins: POST /login/academic with one form body (identifier, password, CSRF token,
-- pending token) read from a file; the CSRF cookie comes with -H. Success: 302 with a ticket.
-- Script arguments: thread count, the most requests a thread may send, body file, path.

dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local limit, body, path

function init(args)
  limit = tonumber(args[2])
  local file = io.open(args[3], "rb")
  body = file:read("*a")
  file:close()
  path = args[4]
  -- wrk.headers already holds the -H headers (the CSRF cookie): add, do not replace.
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  within_budget(limit)
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  local location = headers["location"] or headers["Location"] or ""
  if status == 302 and string.find(location, "ticket=ST-", 1, true) then
    ok = ok + 1
  end
end
