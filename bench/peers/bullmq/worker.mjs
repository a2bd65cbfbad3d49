// BullMQ worker for jobq's benchmarks: one Node process, `concurrency` jobs at once.
// BENCH_HANDLER: `noop` (default), or `incr`: one Redis INCR through an ioredis client of its own.
import { appendFileSync } from "node:fs";
import { Worker } from "bullmq";
import IORedis from "ioredis";
import { connection, monotonic } from "./connection.mjs";

const latFile = process.env.BENCH_LAT_FILE;
const incr = process.env.BENCH_HANDLER === "incr";
const client = incr ? new IORedis(connection()) : null;
const incrKey = `${process.env.BENCH_PREFIX}:incr`;
const worker = new Worker(
  process.env.BENCH_QUEUE,
  async (job) => {
    const started = monotonic();
    const t = job.data.t;
    if (t !== undefined) appendFileSync(latFile, `${(started - t).toFixed(9)}\n`);
    if (incr) await client.incr(incrKey);
  },
  {
    connection: connection(),
    prefix: process.env.BENCH_PREFIX,
    concurrency: Number(process.env.BENCH_CONCURRENCY),
  },
);
worker.on("error", (err) => console.error("worker error", err));

async function shutdown() {
  await worker.close();
  if (client) client.disconnect();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
