import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";

test("with --pending-ttl, undelivered messages expire: counted in status, logged, and a resume past them is told so", async () => {
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
    const resume = await fetch(`${broker.url}/subscribe?agent=openclaw`, { headers: { "last-event-id": "0" } });
    assert.equal(resume.status, 410);
    assert.equal((await resume.json()).code, "event_id_expired");
  } finally {
    await broker.cleanup();
  }
});
