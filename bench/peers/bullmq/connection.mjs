// Redis connection options from BENCH_REDIS_URL (redis://host:port/db), shared by worker and producer.
export function connection() {
  const url = new URL(process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379/0");
  const db = Number((url.pathname || "/0").slice(1) || 0);
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    db,
    password: url.password || undefined,
    maxRetriesPerRequest: null,
  };
}

// Seconds on CLOCK_MONOTONIC (libuv's hrtime), comparable with Python's time.monotonic().
export function monotonic() {
  return Number(process.hrtime.bigint()) / 1e9;
}
