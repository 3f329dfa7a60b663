import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/cli.ts";
import { startListen, stopAll } from "../helpers/listener.ts";
import { openSse } from "../helpers/sse.ts";

test("with --pending-ttl, undelivered messages expire: counted in status, logged, and gone for every reader", async () => {
  const broker = await startBroker({ args: ["--pending-ttl", "1s"] });
  try {
    for (let n = 1; n <= 3; n++) assert.equal((await publish(broker.url, "hermes", "openclaw", { n })).status, 200);
    const expired = await waitFor(async () => {
      const status = await (await fetch(`${broker.url}/status`)).json();
      return status.agents.openclaw.expired === 3 ? status : undefined;
    }, 10_000, "the messages to expire");
    assert.equal(expired.agents.openclaw.pending, 0);
    // One sweep or two: on a loaded machine the publishes can straddle a sweep.
    const logged = [...broker.log().matchAll(/warn: expired (\d+) undelivered messages? for openclaw \(older than --pending-ttl\)/g)];
    assert.equal(logged.reduce((sum, [, count]) => sum + Number(count), 0), 3, broker.log());

    await publish(broker.url, "hermes", "openclaw", { n: 4 });
    const polled = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
    assert.deepEqual(polled.map((message: { n: number }) => message.n), [4], "later messages are delivered");
    // They were sent to no one: a resume from before them reads on past them, as every other read does (message 5
    // published once the stream is open: pending, it could expire before a slow stream reads it).
    const resume = await openSse(`${broker.url}/subscribe?agent=openclaw`, { "last-event-id": "0" });
    try {
      assert.equal(resume.status, 200);
      await publish(broker.url, "hermes", "openclaw", { n: 5 });
      assert.deepEqual((await resume.take(1)).map((event) => JSON.parse(event.data).n), [5]);
    } finally {
      resume.close();
    }
  } finally {
    await broker.cleanup();
  }
});

test("an expiry above the cursor leaves resumes by id alone: what was delivered after the id is replayed, and listen goes on", async () => {
  const broker = await startBroker({ args: ["--pending-ttl", "0,openclaw=1s"] });
  try {
    const store = (await (await fetch(`${broker.url}/status`)).json()).store_id;
    for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { n });
    // A stream is sent all three (the cursor moves to 3); its reader handled only the first.
    const first = await openSse(`${broker.url}/subscribe?agent=openclaw`);
    const sent = await first.take(3).finally(() => first.close());
    await publish(broker.url, "hermes", "openclaw", { n: 4 });
    await waitFor(async () => {
      const status = await (await fetch(`${broker.url}/status`)).json();
      return status.agents.openclaw.expired === 1 || undefined;
    }, 10_000, "message 4 to expire");

    // listen with no state starts from the cursor (3), below the expired message: before, every such resume was
    // refused as expired, and listen retried it at once, forever. Message 5 is published once it is connected: pending,
    // it could expire before a slow listen starts.
    const dir = tempDir();
    const listen = startListen(broker.url, "openclaw", dir.path);
    let stderr = "";
    listen.stderr!.on("data", (chunk) => (stderr += chunk));
    try {
      await waitFor(() => /connected to .* as openclaw, resuming after 3/.test(stderr) || undefined, 20_000, "listen to connect");
      await publish(broker.url, "hermes", "openclaw", { n: 5 });
      const written = await waitFor(() => textOf(join(dir.path, "out.jsonl")), 10_000, "listen to write message 5");
      assert.deepEqual(written!.trim().split("\n").map((line) => JSON.parse(line).n), [5]);
      assert.doesNotMatch(stderr, /expired/);
    } finally {
      await stopAll(listen);
      dir.cleanup();
    }
    // The stream's reader resumes after the one message it handled: the other two are still kept (retention keeps
    // delivered messages for 24 h), and only a removed delivered message would make the resume expired.
    const resume = await openSse(`${broker.url}/subscribe?agent=openclaw`, { "last-event-id": sent[0].id!, "interop-store": store });
    try {
      assert.equal(resume.status, 200);
      assert.deepEqual((await resume.take(3)).map((event) => JSON.parse(event.data).n), [2, 3, 5]);
    } finally {
      resume.close();
    }
  } finally {
    await broker.cleanup();
  }
});

/** The file's text, or undefined while it is missing or empty. */
function textOf(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8") || undefined;
  } catch {
    return undefined;
  }
}
