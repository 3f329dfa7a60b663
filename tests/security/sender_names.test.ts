/**
 * Red-team finding 5: without tokens each new `from=` name added a /metrics series (and a rate-limit bucket) for
 * as long as the broker ran: 20,000 names took /metrics from 4.5 KB to 2.3 MB. Senders without an inbox now share
 * one series; the buckets are bounded in tests/rate_limiter.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker } from "../helpers/broker.ts";

test("messages from 300 names without an inbox add one /metrics series, counting them all", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(async () => await broker?.cleanup());
  broker = await startBroker({ args: ["--agents", "alice,bob"] });
  for (let i = 0; i < 300; i++) assert.equal((await publish(broker.url, `passer-by-${i}`, "bob", { i })).status, 200);
  assert.equal((await publish(broker.url, "alice", "bob", { text: "from an agent with an inbox" })).status, 200);

  const metrics = await (await fetch(`${broker.url}/metrics`)).text();
  const series = metrics.split("\n").filter((line) => line.startsWith("interop_messages_published_total{"));
  assert.deepEqual(series.sort(), [
    'interop_messages_published_total{from="(no inbox)",to="bob"} 300',
    'interop_messages_published_total{from="alice",to="bob"} 1',
  ]);
});
