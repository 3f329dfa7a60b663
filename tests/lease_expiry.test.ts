/** `--pending-ttl` and inbox leases on a broker of its own (SQLite): what a leased reader was shown does not expire under it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

test("a message a leased reader was shown is not expired by --pending-ttl until the lease ends; the take has it", async (t) => {
  const dir = tempDir();
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { pendingTtlMs: uniform(300) }));
  t.after(() => broker.close());
  await broker.publish(hermes, openclaw, { text: "shown" });
  const lease = await broker.leases.acquire(openclaw, 60);
  const [shown] = await broker.peek(openclaw, 10);
  // Sent after the shown one: once it has expired, a retention pass has passed the shown one's cutoff too.
  await broker.publish(openclaw, hermes, { text: "not leased" });
  await waitFor(() => broker.status().agents[hermes].expired === 1, 10_000, "hermes's message to expire");
  assert.deepEqual([broker.status().agents[openclaw].pending, broker.status().agents[openclaw].expired], [1, 0], "kept under the lease");
  const taken = await broker.leases.take(openclaw, lease, (own) => broker.poll(openclaw, 10, { shownUpTo: shown.id, lease: own }));
  assert.deepEqual(taken.map((message) => message.payload.text), ["shown"]);
});

test("a message whose lease ended without a take expires at the next retention pass", async (t) => {
  const dir = tempDir();
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { pendingTtlMs: uniform(300) }));
  t.after(() => broker.close());
  await broker.publish(hermes, openclaw, { text: "shown, then let go" });
  const lease = await broker.leases.acquire(openclaw, 60);
  assert.equal((await broker.peek(openclaw, 10)).length, 1);
  await broker.publish(openclaw, hermes, { text: "not leased" });
  await waitFor(() => broker.status().agents[hermes].expired === 1, 10_000, "hermes's message to expire");
  assert.equal(broker.status().agents[openclaw].expired, 0, "kept under the lease");
  broker.leases.end(openclaw, lease);
  await waitFor(() => broker.status().agents[openclaw].expired === 1, 10_000, "openclaw's message to expire once the lease ended");
});
