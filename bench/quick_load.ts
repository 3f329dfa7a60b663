/**
 * A quick load run (not the full benchmark): starts one broker, streams one agent's inbox, and measures
 * publish→deliver latency at a fixed rate, then throughput with concurrent publishers.
 *
 *   npm run load                      # the built dist/interop
 *   npm run load -- --runtime deno    # the source on Deno 2
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { startBrokerProcess } from "./processes.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "binary" },
    rate: { type: "string", default: "200" },
    "latency-messages": { type: "string", default: "1000" },
    "throughput-messages": { type: "string", default: "10000" },
    concurrency: { type: "string", default: "16" },
    durability: { type: "string", default: "strict" },
  },
});
const dataDir = mkdtempSync(join(tmpdir(), "interop-load-"));
const { broker, url } = await startBrokerProcess(values.runtime, [
  "--data-dir", dataDir, "--durability", values.durability, "--rate-limit", "0",
]);

/** CPU seconds (user + system) the broker has used, from /proc. */
function brokerCpuSeconds(): number {
  const fields = readFileSync(`/proc/${broker.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// One stream for the receiving agent: records when each message arrives.
const arrivals = new Map<number, number>();
const order: number[] = [];
let wake = () => {};
const stream = await fetch(`${url}/subscribe?agent=openclaw`);
void (async () => {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream.body!) {
    const now = performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").find((line) => line.startsWith("data: "));
      if (!data) continue;
      const message = JSON.parse(data.slice(6));
      if (arrivals.has(message.seq)) order.push(-1);
      arrivals.set(message.seq, now - message.sentAt);
      order.push(message.interop.id);
    }
    wake();
  }
})().catch(() => {});

let nextSeq = 0;
async function publishOne(): Promise<void> {
  const seq = nextSeq++;
  const response = await fetch(`${url}/broadcast?from=hermes&to=openclaw`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ seq, sentAt: performance.now(), text: "load" }),
  });
  if (response.status !== 200) throw new Error(`publish failed: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

async function allArrived(count: number): Promise<void> {
  while (arrivals.size < count) await new Promise<void>((resolve) => (wake = resolve));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Phase 1: latency at a fixed rate.
const rate = Number(values.rate);
const latencyCount = Number(values["latency-messages"]);
const started = performance.now();
for (let index = 0; index < latencyCount; index++) {
  const due = started + (index * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  void publishOne();
}
await allArrived(latencyCount);
const latencies = [...arrivals.values()].sort((a, b) => a - b);

// Phase 2: throughput with concurrent publishers.
const throughputCount = Number(values["throughput-messages"]);
const cpuBefore = brokerCpuSeconds();
const throughputStart = performance.now();
await Promise.all(Array.from({ length: Number(values.concurrency) }, async () => {
  while (nextSeq < latencyCount + throughputCount) await publishOne();
}));
await allArrived(latencyCount + throughputCount);
const seconds = (performance.now() - throughputStart) / 1000;
const cpuPerMessage = (brokerCpuSeconds() - cpuBefore) / throughputCount;

const duplicates = order.filter((id) => id === -1).length;
const reordered = order.filter((id, index) => index > 0 && id !== -1 && id <= order[index - 1]).length;
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
console.log(`interop quick load (${values.runtime}, durability ${values.durability}, ${new Date().toISOString()})`);
console.log(`latency at ${rate} msg/s over ${latencyCount} messages: p50 ${fmt(percentile(latencies, 50))}, ` +
  `p90 ${fmt(percentile(latencies, 90))}, p99 ${fmt(percentile(latencies, 99))}, max ${fmt(latencies[latencies.length - 1])}`);
console.log(`throughput with ${values.concurrency} publishers: ${(throughputCount / seconds).toFixed(0)} msg/s ` +
  `(${throughputCount} messages in ${seconds.toFixed(2)} s), broker CPU ${(cpuPerMessage * 1e6).toFixed(0)} µs per message`);
console.log(`lost ${latencyCount + throughputCount - arrivals.size}, duplicated ${duplicates}, reordered ${reordered}`);

broker.kill("SIGTERM");
await new Promise((resolve) => broker.on("exit", resolve));
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
