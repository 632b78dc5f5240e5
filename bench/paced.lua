-- wrk script: each connection waits 50 ms between its requests (a paced shopper), and
-- responses are counted by status ("status 200: N" at the end).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function delay() return 50 end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do io.write(string.format("status %s: %d\n", k, v)) end
  end
end
