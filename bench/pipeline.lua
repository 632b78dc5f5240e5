-- wrk script: HTTP/1.1 pipelining, PIPELINE requests (16 by default, as in TechEmpower's
-- plaintext test) sent in one write on each connection, so that the load generator spends
-- little per request and the proxy's own work sets the pace.
local depth = tonumber(os.getenv("PIPELINE") or "16")
function init(args)
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil) end
  req = table.concat(r)
end
function request() return req end
