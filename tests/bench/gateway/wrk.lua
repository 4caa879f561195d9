-- wrk script of tests/bench/gateway/run: POST a small chat completion (JSON, or streamed when
-- BENCH_STREAM=1) with the key in BENCH_KEY, and print one machine-readable summary line.
local stream = os.getenv("BENCH_STREAM") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "")
wrk.body = '{"model":"mock-gpt-4o","max_tokens":32,"messages":[{"role":"user","content":"Say hello in one sentence."}]'
  .. (stream and ',"stream":true}' or '}')

-- Latencies are in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
