-- wrk script: responses counted by status as bench/status.lua does, and each connection
-- waits 50 ms between its requests (a paced shopper). Run from the repository's root.
dofile("bench/status.lua")
function delay() return 50 end
