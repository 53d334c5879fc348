-- The bench's wrk script: an optional form POST (the login storm) and a JSON summary.
--
-- WRK_FORM, when set, is an urlencoded body sent as a POST with every request; the
-- Cookie header comes from wrk's -H. done() prints one line, BENCH_RESULT {...}, with
-- the counts and the latency percentiles in microseconds, for bench/wrk.py to read.

local form = os.getenv("WRK_FORM")
if form and form ~= "" then
  wrk.method = "POST"
  wrk.body = form
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p99_us": %.0f, '
      .. '"max_us": %.0f, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, errors.connect, errors.read, errors.write, errors.status, errors.timeout
  ))
end
