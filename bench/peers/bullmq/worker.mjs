// BullMQ worker for jobq's core benchmark: one Node process, `concurrency` jobs at once, no-op processor.
import { appendFileSync } from "node:fs";
import { Worker } from "bullmq";
import { connection, monotonic } from "./connection.mjs";

const latFile = process.env.BENCH_LAT_FILE;
const worker = new Worker(
  process.env.BENCH_QUEUE,
  async (job) => {
    const started = monotonic();
    const t = job.data.t;
    if (t !== undefined) appendFileSync(latFile, `${(started - t).toFixed(9)}\n`);
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
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
