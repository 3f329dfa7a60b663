import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { openSse } from "../helpers/sse.ts";

/** Opens a raw SSE request and resolves once the first bytes arrived; `received` keeps everything read. */
function rawStream(port: number, path: string): Promise<{ socket: Socket; received(): string }> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.setEncoding("utf8");
    socket.once("error", reject);
    socket.on("data", (chunk: string) => {
      const first = text === "";
      text += chunk;
      if (first) resolve({ socket, received: () => text });
    });
  });
}

const openDescriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

test("/status answers while 1,000 SSE streams are open, and closing them leaves no per-stream resources", async () => {
  // 1,000 agents besides hermes and openclaw: past the default --max-agents.
  const broker = await startBroker({ args: ["--max-agents", "2000"] });
  const sockets: Socket[] = [];
  try {
    const baseline = openDescriptors(broker.pid);
    for (let batch = 0; batch < 10; batch++) {
      const opened = await Promise.all(
        Array.from({ length: 100 }, (_, index) => rawStream(broker.port, `/subscribe?agent=s${batch * 100 + index}`)),
      );
      sockets.push(...opened.map(({ socket }) => socket));
    }
    const started = performance.now();
    const status = await (await fetch(`${broker.url}/status`)).json();
    const elapsed = performance.now() - started;
    assert.equal(status.streams, 1000);
    assert.equal(status.subscribers.s999, true);
    assert.ok(elapsed < 5000, `/status took ${elapsed.toFixed(0)} ms with 1,000 streams open`);
    console.log(`/status with 1,000 streams open: ${elapsed.toFixed(1)} ms`);

    for (const socket of sockets) socket.destroy();
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).streams === 0, 10_000, "streams to close");
    await waitFor(() => openDescriptors(broker.pid) <= baseline + 2, 10_000, "descriptors to return to the baseline");
    assert.equal((await publish(broker.url, "hermes", "s1", { after: "close" })).status, 200);
  } finally {
    for (const socket of sockets) socket.destroy();
    await broker.cleanup();
  }
});

test("a client hanging up mid-write crashes nothing and loses nothing: the rest is replayed on resume", async () => {
  const broker = await startBroker();
  try {
    const padding = "x".repeat(8192);
    const total = 1000;
    for (let n = 1; n <= total; n++) {
      assert.equal((await publish(broker.url, "hermes", "openclaw", { n, padding })).status, 200);
    }
    // 8 MB of backlog: more than the socket buffers hold, so the broker is still writing when the client goes.
    const stream = await rawStream(broker.port, "/subscribe?agent=openclaw");
    await waitFor(() => stream.received().length > 200_000, 10_000, "part of the backlog");
    stream.socket.pause();
    stream.socket.destroy();
    const complete = [...stream.received().matchAll(/^id: (\d+)\ndata: .*\n\n/gm)].map((match) => Number(match[1]));
    const lastId = complete[complete.length - 1];
    assert.ok(lastId > 0 && lastId < total, `hung up after ${lastId} of ${total}`);

    const resumed = await openSse(`${broker.url}/subscribe?agent=openclaw`, { "last-event-id": String(lastId) });
    const rest = await resumed.take(total - lastId);
    resumed.close();
    assert.deepEqual(
      rest.map((event) => JSON.parse(event.data).n),
      Array.from({ length: total - lastId }, (_, index) => lastId + 1 + index),
    );
    assert.equal((await fetch(`${broker.url}/status`)).status, 200);
    assert.doesNotMatch(broker.log(), /error|unhandled/i);
  } finally {
    await broker.cleanup();
  }
});

test("streams opened and dropped in a hurry while messages flow leave the broker healthy", async () => {
  const broker = await startBroker();
  try {
    const baseline = openDescriptors(broker.pid);
    const publishing = (async () => {
      for (let n = 1; n <= 200; n++) await publish(broker.url, "hermes", "openclaw", { n });
    })();
    for (let round = 0; round < 50; round++) {
      const { socket } = await rawStream(broker.port, "/subscribe?agent=openclaw");
      socket.destroy();
    }
    await publishing;
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).streams === 0, 10_000, "streams to close");
    await waitFor(() => openDescriptors(broker.pid) <= baseline + 2, 10_000, "descriptors to return to the baseline");
    assert.doesNotMatch(broker.log(), /error|unhandled/i);
  } finally {
    await broker.cleanup();
  }
});

test("heartbeats are spread over the --heartbeat interval, and each stream still gets one every interval", async () => {
  const broker = await startBroker({ args: ["--heartbeat", "1s"] });
  const sockets: Socket[] = [];
  try {
    // More streams than a tick writes (32): four ticks' worth, so the interval's four 250 ms ticks each write some.
    const opened = await Promise.all(Array.from({ length: 100 }, (_, index) => rawStream(broker.port, `/subscribe?agent=hb${index}`)));
    const since = performance.now();
    // When each stream's heartbeats arrived, in ms since the streams opened.
    const beats = opened.map(({ socket }) => {
      sockets.push(socket);
      const times: number[] = [];
      socket.on("data", (chunk: string) => {
        for (let i = chunk.indexOf(": keepalive"); i >= 0; i = chunk.indexOf(": keepalive", i + 1)) times.push(performance.now() - since);
      });
      return times;
    });
    await waitFor(() => beats.every((times) => times.length >= 3), 10_000, "three heartbeats on every stream");
    // Seen from this process, which a loaded machine may stall for a moment: a late read delays one heartbeat (or
    // hands over two in one chunk), so each stream's first and third bound two intervals, with room either way.
    for (const times of beats) {
      assert.ok(times[0] < 2000, `a first heartbeat within the interval: ${times.map(Math.round)}`);
      const twoIntervals = times[2] - times[0];
      assert.ok(twoIntervals > 1200 && twoIntervals < 2800, `one heartbeat per interval: ${times.map(Math.round)}`);
    }
    // Written all in one tick, each round's heartbeats would arrive within a few ms of one another; a stall can
    // bunch one round, not all three.
    const spreads = [0, 1, 2].map((round) => {
      const times = beats.map((stream) => stream[round]);
      return Math.max(...times) - Math.min(...times);
    });
    assert.ok(Math.max(...spreads) > 500, `heartbeats spread: ${spreads.map(Math.round)} ms`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await broker.cleanup();
  }
});
