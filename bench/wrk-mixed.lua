-- Users for wrk: 3 GETs then 1 POST, each on a new connection (a new client, no cookie),
-- about one request every 10 ms per connection.
local n = 0
request = function()
  n = n + 1
  if n % 4 == 0 then
    return wrk.format("POST", "/web/dataset/call_kw", {["Content-Type"] = "application/json"}, '{"id": ' .. n .. '}')
  end
  return wrk.format("GET", "/web/page/" .. n)
end
delay = function() return 10 end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.1f non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, e.status, e.connect, e.read, e.write, e.timeout))
end
