import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { startListen, stopListen } from "../helpers/listener.ts";
import { allAckedDelivered, checkLedger, type Delivery, Ledger, Publisher, readDeliveries, readDeliveriesFile } from "../helpers/ledger.ts";

const AGENT_ARGS = ["--agent", "openclaw"];

/** Runs `fault` `times` times at random moments while `work` runs, then waits for `work`. */
async function withFaults(work: Promise<void>, times: number, fault: () => Promise<void>): Promise<void> {
  for (let done = 0; done < times; done++) {
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 300));
    await fault();
  }
  await work;
}

test("listen gets every acknowledged message once, in order, while the broker is SIGKILLed and restarted", async () => {
  const dir = tempDir();
  const dataDir = join(dir.path, "data");
  let broker: RunningBroker = await startBroker({ dataDir });
  const port = broker.port;
  const listen = startListen(broker.url, "openclaw", dir.path);
  const ledger = new Ledger();
  const publishers = ["p1", "p2", "p3"].map((name) => new Publisher(ledger, name, () => broker.url, "hermes", "openclaw"));
  try {
    const publishing = Promise.all(publishers.map((publisher) => publisher.publish(150))).then(() => {});
    await withFaults(publishing, 3, async () => {
      await broker.stop("SIGKILL");
      broker = await startBroker({ port, dataDir });
    });
    const out = join(dir.path, "out.jsonl");
    await waitFor(() => allAckedDelivered(ledger, readDeliveriesFile(out)), 30_000, "listen to catch up");
    const counts = checkLedger(ledger, readDeliveriesFile(out));
    assert.equal(counts.acked, 450);
    console.log(`broker SIGKILLed 3 times: ${JSON.stringify(counts)}`);
  } finally {
    await stopListen(listen, "SIGKILL");
    await broker.cleanup();
    dir.cleanup();
  }
});

test("listen restarted after SIGKILL and SIGTERM neither loses nor repeats a message", async () => {
  const dir = tempDir();
  const broker = await startBroker();
  let listen = startListen(broker.url, "openclaw", dir.path);
  const ledger = new Ledger();
  const publishers = ["p1", "p2"].map((name) => new Publisher(ledger, name, () => broker.url, "hermes", "openclaw"));
  let kills = 0;
  try {
    const publishing = Promise.all(publishers.map((publisher) => publisher.publish(200))).then(() => {});
    await withFaults(publishing, 4, async () => {
      await stopListen(listen, kills++ % 2 === 0 ? "SIGKILL" : "SIGTERM");
      listen = startListen(broker.url, "openclaw", dir.path);
    });
    const out = join(dir.path, "out.jsonl");
    await waitFor(() => allAckedDelivered(ledger, readDeliveriesFile(out)), 30_000, "listen to catch up");
    const counts = checkLedger(ledger, readDeliveriesFile(out));
    assert.equal(counts.delivered, 400);
    console.log(`listen killed ${kills} times: ${JSON.stringify(counts)}`);
  } finally {
    await stopListen(listen, "SIGKILL");
    await broker.cleanup();
    dir.cleanup();
  }
});

test("a consumer alternating between poll and listen gets each message once, in order", async () => {
  const dir = tempDir();
  const broker = await startBroker();
  const ledger = new Ledger();
  const publisher = new Publisher(ledger, "p", () => broker.url, "hermes", "openclaw");
  const out = join(dir.path, "out.jsonl");
  const received: Delivery[] = [];
  try {
    for (let round = 0; round < 3; round++) {
      await publisher.publish(40);
      const polled = await runCli(["poll", ...AGENT_ARGS, "--limit", "25", "--url", broker.url]);
      assert.equal(polled.code, 0, polled.stderr);
      received.push(...readDeliveries(polled.stdout));
      assert.equal(readDeliveries(polled.stdout).length, 25);

      const before = readDeliveriesFile(out).length;
      const listen = startListen(broker.url, "openclaw", dir.path);
      await publisher.publish(30);
      await waitFor(() => received.length + readDeliveriesFile(out).length - before >= ledger.acked.size, 20_000, "listen");
      assert.equal(await stopListen(listen, "SIGTERM"), 0);
      received.push(...readDeliveriesFile(out).slice(before));
    }
    await publisher.publish(10);
    const rest = await runCli(["poll", ...AGENT_ARGS, "--url", broker.url]);
    received.push(...readDeliveries(rest.stdout));
    const counts = checkLedger(ledger, received);
    assert.equal(counts.delivered, 220);
  } finally {
    await broker.cleanup();
    dir.cleanup();
  }
});

test("interop poll runs at once for one agent print each message once between them (the inbox is leased to one at a time)", async () => {
  const broker = await startBroker();
  const ledger = new Ledger();
  const publisher = new Publisher(ledger, "p", () => broker.url, "hermes", "openclaw");
  try {
    await publisher.publish(300);
    // Overlapping cron runs: without the lease each printed the same first 100.
    const runs = await Promise.all([1, 2, 3].map(() => runCli(["poll", ...AGENT_ARGS, "--limit", "100", "--url", broker.url])));
    const outputs = runs.map((run) => {
      assert.equal(run.code, 0, run.stderr);
      return readDeliveries(run.stdout);
    });
    assert.deepEqual(outputs.map((output) => output.length), [100, 100, 100]);
    for (const output of outputs) assert.ok(output.every((delivery, index) => index === 0 || delivery.id > output[index - 1].id));
    const counts = checkLedger(ledger, outputs.flat().sort((a, b) => a.id - b.id));
    assert.equal(counts.delivered, 300);
  } finally {
    await broker.cleanup();
  }
});
