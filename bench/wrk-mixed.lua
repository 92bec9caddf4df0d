-- Users for wrk: 3 GETs then 1 POST, about one request every 10 ms per connection; each
-- on a new connection (a new client, no cookie) when wrk is given -H "Connection: close",
-- else on kept-alive connections. (wrk.format's own headers replace wrk's -H ones: the
-- POST takes them over explicitly.)
local n = 0
request = function()
  n = n + 1
  if n % 4 == 0 then
    local headers = {["Content-Type"] = "application/json"}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    return wrk.format("POST", "/web/dataset/call_kw", headers, '{"id": ' .. n .. '}')
  end
  return wrk.format("GET", "/web/page/" .. n)
end
delay = function() return 10 end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.1f non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, e.status, e.connect, e.read, e.write, e.timeout))
end
