/**
 * The broker's core alone, in one process: one publish to N agents' streams at a time (publish → commit → offer →
 * SSE framing), the streams' sinks counting the text instead of writing it to a socket. It prints the CPU per
 * delivery of that path, with none of the HTTP and socket work the full benchmark also counts, so a change to the
 * core shows here within a few percent where `npm run bench` moves ±15 % between runs. Runs on either runtime:
 *
 *   node bench/core.ts                       # 100 streams, 3,000 publishes, strict
 *   deno run -A bench/core.ts --durability relaxed
 *   node bench/core.ts --payload-bytes 4096  # messages of 4 KiB of text (the default: a short line)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import type { AgentName } from "../src/message.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import type { StreamSink } from "../src/runtime/types.ts";
import { runtimeDescription } from "../src/runtime/serve.ts";
import { SqliteStore } from "../src/store/sqlite.ts";

const { values } = parseArgs({
  options: {
    streams: { type: "string", default: "100" },
    publishes: { type: "string", default: "3000" },
    durability: { type: "string", default: "strict" },
    "payload-bytes": { type: "string" },
  },
});
const streams = Number(values.streams);
const publishes = Number(values.publishes);
const durability = values.durability;
const text = values["payload-bytes"] === undefined ? "benchmark message" : "x".repeat(Number(values["payload-bytes"]));
if (durability !== "strict" && durability !== "relaxed") throw new Error("--durability must be strict or relaxed");
if (!(streams >= 1 && publishes >= 1 && text.length >= 1)) throw new Error("--streams, --publishes and --payload-bytes must be positive numbers");

/** A stream's end that counts what would have been written. */
class CountingSink implements StreamSink {
  static bytes = 0;
  readonly closed = new AbortController().signal;
  write(text: string): number {
    CountingSink.bytes += text.length;
    return 0;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
  destroy(): void {}
}

const dataDir = mkdtempSync(join(tmpdir(), "interop-core-"));
const agents = Array.from({ length: streams }, (_, i) => `agent${i}` as AgentName);
const hub = "hub" as AgentName;
const broker = await Broker.open({
  store: new SqliteStore(dataDir, durability),
  dataDir,
  agents: [hub, ...agents],
  maxPending: uniform(Number.MAX_SAFE_INTEGER),
  retentionMs: 86_400_000,
  heartbeatMs: 3_600_000,
  writeTimeoutMs: 60_000,
  maxHops: 10,
  resumeWindowMs: 180_000,
});
try {
  // As serve wires it: the metrics observe every publish and delivery.
  broker.observe(new BrokerMetrics(() => broker.status(), []));
  const format = sseFormat(2000, true);
  for (const agent of agents) (await broker.prepareStream(agent, { from: "cursor" }, format)).open(new CountingSink());
  const publish = (seq: number) => broker.publish(hub, undefined, { seq, t: performance.now(), text });
  // Warm-up: the JIT, and the store past its first index join.
  for (let seq = 0; seq < Math.min(publishes, 200); seq++) await publish(seq);
  const before = process.cpuUsage();
  const started = performance.now();
  for (let seq = 0; seq < publishes; seq++) await publish(seq);
  const cpu = process.cpuUsage(before);
  const deliveries = publishes * streams;
  const perDelivery = (micros: number) => (micros / deliveries).toFixed(2);
  console.log(
    `${runtimeDescription()}, ${durability}: ${publishes} publishes to ${streams} streams; per delivery ` +
      `${perDelivery(cpu.user + cpu.system)} µs of CPU (${perDelivery(cpu.system)} in the kernel), ` +
      `${perDelivery((performance.now() - started) * 1000)} µs of wall time; ${CountingSink.bytes} bytes framed`,
  );
} finally {
  await broker.close();
  rmSync(dataDir, { recursive: true, force: true });
}
