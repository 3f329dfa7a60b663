import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { test } from "node:test";
import { startBroker, waitFor } from "../helpers/broker.ts";
import { openSse } from "../helpers/sse.ts";

const MESSAGES = 100_000;
/** The broker may grow by at most this much while a subscriber reads nothing: it buffers in the store, not in RAM. */
const MEMORY_BOUND_BYTES = 160 * 1024 * 1024;

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match![1]) * 1024;
}

test("a subscriber that reads nothing while 100,000 messages are published costs bounded memory, then gets them all in order", async () => {
  const broker = await startBroker({ args: ["--durability", "relaxed", "--rate-limit", "0"] });
  // A client that opens the stream and never reads from it.
  const stalled = connect(broker.port, "127.0.0.1");
  stalled.pause();
  try {
    await new Promise<void>((resolve) => stalled.once("connect", () => resolve()));
    stalled.write(`GET /subscribe?agent=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const baseline = rssBytes(broker.pid);
    let peak = baseline;
    let next = 1;
    // 3 KB each: buffering them all in memory would take 300 MB, far past the bound.
    const padding = "p".repeat(3000);
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next <= MESSAGES) {
        const n = next++;
        const response = await fetch(`${broker.url}/broadcast?from=fast&to=slow`, { method: "POST", body: JSON.stringify({ n, padding }) });
        assert.equal(response.status, 200);
        await response.arrayBuffer();
        if (n % 5000 === 0) peak = Math.max(peak, rssBytes(broker.pid));
      }
    }));
    peak = Math.max(peak, rssBytes(broker.pid));
    const growth = peak - baseline;
    console.log(`broker RSS ${(baseline / 2 ** 20).toFixed(0)} MiB at start, peak ${(peak / 2 ** 20).toFixed(0)} MiB with ${MESSAGES} messages behind a stalled stream`);
    assert.ok(growth < MEMORY_BOUND_BYTES, `grew ${(growth / 2 ** 20).toFixed(0)} MiB`);

    // The stalled client goes away; the agent resumes (the broker's cursor already counts what it wrote to the
    // stalled stream, so the client says where it is: nothing received yet).
    stalled.destroy();
    const resumed = await openSse(`${broker.url}/subscribe?agent=slow`, { "last-event-id": "0" });
    const events = await resumed.take(MESSAGES, 120_000);
    resumed.close();
    const numbers = events.map((event) => JSON.parse(event.data).n).sort((a, b) => a - b);
    assert.equal(new Set(numbers).size, MESSAGES, "every message once");
    const ids = events.map((event) => Number(event.id));
    assert.ok(ids.every((id, index) => index === 0 || id > ids[index - 1]), "in order");
  } finally {
    stalled.destroy();
    await broker.cleanup();
  }
});

test("a stream whose client reads nothing past --write-timeout is cut off, and its client resumes losing nothing", async () => {
  const broker = await startBroker({ args: ["--write-timeout", "1s", "--rate-limit", "0"] });
  const stalled = connect(broker.port, "127.0.0.1");
  stalled.pause();
  stalled.on("error", () => {}); // the broker resets it
  try {
    await new Promise<void>((resolve) => stalled.once("connect", () => resolve()));
    stalled.write(`GET /subscribe?agent=stuck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const padding = "p".repeat(3000);
    const total = 5000; // 15 MB: more than the socket buffers hold
    let next = 1;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next <= total) {
        const n = next++;
        await (await fetch(`${broker.url}/broadcast?from=fast&to=stuck`, { method: "POST", body: JSON.stringify({ n, padding }) })).arrayBuffer();
      }
    }));
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).streams === 0, 15_000, "the stalled stream to be cut");
    const resumed = await openSse(`${broker.url}/subscribe?agent=stuck`, { "last-event-id": "0" });
    const events = await resumed.take(total, 60_000);
    resumed.close();
    assert.equal(new Set(events.map((event) => JSON.parse(event.data).n)).size, total);
  } finally {
    stalled.destroy();
    await broker.cleanup();
  }
});
