-- wrk script: each thread rotates over the request paths listed in the file
-- named by the first script argument (one path per line), starting at a
-- different offset, and `done` prints one machine-readable summary line.
local reqs = {}
local idx = 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then reqs[#reqs + 1] = wrk.format(nil, line) end
  end
  if #reqs == 0 then error("no request paths in " .. args[1]) end
  -- thread_no is a global that setup() put into this thread's Lua state
  idx = ((thread_no or 1) * 7919) % #reqs
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"bytes":%.0f,"duration_us":%.0f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"mean":%.1f,"max":%.0f}}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
