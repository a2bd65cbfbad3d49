// BullMQ producer for jobq's core benchmark. Prints one JSON object: {"seconds": <time spent adding>}.
//   node producer.mjs single N          N no-op jobs, one awaited queue.add() each
//   node producer.mjs bulk N BATCH      N no-op jobs, queue.addBulk() of BATCH at a time
//   node producer.mjs paced N RATE      N latency jobs at a steady RATE/s, carrying t = monotonic seconds
import { Queue } from "bullmq";
import { setTimeout as sleep } from "node:timers/promises";
import { connection, monotonic } from "./connection.mjs";

const [mode, nArg, extra] = process.argv.slice(2);
const n = Number(nArg);
const queue = new Queue(process.env.BENCH_QUEUE, { connection: connection(), prefix: process.env.BENCH_PREFIX });
await queue.waitUntilReady();
await queue.add("warmup-none", {}, { delay: 3_600_000 }).then((j) => j.remove()); // load scripts off the clock

let seconds;
if (mode === "single") {
  const t0 = monotonic();
  for (let i = 0; i < n; i++) await queue.add("noop", {});
  seconds = monotonic() - t0;
} else if (mode === "bulk") {
  const batch = Number(extra || 1000);
  const t0 = monotonic();
  for (let i = 0; i < n; i += batch) {
    const size = Math.min(batch, n - i);
    await queue.addBulk(Array.from({ length: size }, () => ({ name: "noop", data: {} })));
  }
  seconds = monotonic() - t0;
} else if (mode === "paced") {
  const interval = 1 / Number(extra);
  const t0 = monotonic();
  let next = t0;
  for (let i = 0; i < n; i++) {
    const pause = next - monotonic();
    if (pause > 0) await sleep(pause * 1000);
    next += interval;
    await queue.add("lat", { t: monotonic() });
  }
  seconds = monotonic() - t0;
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
await queue.close();
console.log(JSON.stringify({ seconds }));
