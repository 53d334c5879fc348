-- The bench's wrk script: an optional form POST, a status check and a JSON summary.
--
-- WRK_FORM, when set, is an urlencoded body sent as a POST with every request; the
-- Cookie header comes from wrk's -H. WRK_EXPECT_STATUS, when set, counts every other
-- status as unexpected: a /hello that redirects to /login, or a login that fails,
-- is a 2xx or 3xx that wrk alone would count as a success. done() prints one line,
-- BENCH_RESULT {...}, with the counts and latency percentiles in microseconds.
-- WRK_COOKIES, when set, names a file of Cookie headers, one a line (many users): each
-- request carries the next line's, each thread starting at another place in the file.

local form = os.getenv("WRK_FORM")
if form and form ~= "" then
  wrk.method = "POST"
  wrk.body = form
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  -- Threads start far apart in the file, so no two send the same cookie together.
  thread:set("position", (#threads - 1) * 997)
end

local cookie_file = os.getenv("WRK_COOKIES")
if cookie_file and cookie_file ~= "" then
  local cookies = {}
  for line in io.lines(cookie_file) do
    if line ~= "" then
      table.insert(cookies, line)
    end
  end
  position = 0
  function request()
    position = position % #cookies + 1
    wrk.headers["Cookie"] = cookies[position]
    return wrk.format()
  end
end

local expect = tonumber(os.getenv("WRK_EXPECT_STATUS") or "")
unexpected = 0
if expect then
  function response(status, headers, body)
    if status ~= expect then
      unexpected = unexpected + 1
    end
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  local wrong = 0
  for _, thread in ipairs(threads) do
    wrong = wrong + (thread:get("unexpected") or 0)
  end
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p99_us": %.0f, '
      .. '"max_us": %.0f, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"status_errors": %d, "timeouts": %d, "unexpected_status": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    wrong
  ))
end
