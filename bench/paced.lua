-- wrk script: responses counted by status as bench/status.lua does, and each connection
-- waits 50 ms (or PACE_MS) between its requests (a paced shopper). Run from the
-- repository's root.
dofile("bench/status.lua")
local pace = tonumber(os.getenv("PACE_MS") or "") or 50
function delay() return pace end
