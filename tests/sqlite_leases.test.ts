/**
 * Inbox leases on a broker of its own (SQLite), kept in its memory: what a leased reader was shown expires one
 * pending TTL later under it, and its take after a restart forgot the lease says so.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { createRouter } from "../src/http/router.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { isStream } from "../src/runtime/types.ts";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { waitFor } from "./helpers/broker.ts";
import { handClock } from "./helpers/hand_clock.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";
import { fromWebRequest } from "./helpers/web_request.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/** The pending TTL of these tests, by the hand clock; retention runs every half of it, by the real one. */
const TTL = 400;

/** A broker expiring what waits TTL on a hand clock, closed after the test `t`. */
async function expiringBroker(t: TestContext) {
  const dir = tempDir();
  const clock = handClock();
  let broker: Broker | undefined;
  t.after(async () => {
    await broker?.close();
    dir.cleanup();
  });
  broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { pendingTtlMs: uniform(TTL), now: clock.now }));
  return { broker, clock };
}

test("--pending-ttl expires nothing of an inbox under a lease, one more TTL at most; the take has what was shown", async (t) => {
  // Expired under the lease, what the reader showed was gone by its take: it reported less than it had shown.
  const { broker, clock } = await expiringBroker(t);
  await broker.publish(hermes, openclaw, { text: "shown" });
  await broker.publish(hermes, openclaw, { text: "shown, then let go" });
  const lease = await broker.leases.acquire(openclaw, 60);
  const [shown] = await broker.peek(openclaw, 1);
  await broker.publish(openclaw, hermes, { text: "not leased" });
  clock.advance(TTL * 1.5);
  await waitFor(() => broker.status().agents[hermes].expired === 1, 10_000, "hermes's message to expire");
  assert.deepEqual([broker.status().agents[openclaw].pending, broker.status().agents[openclaw].expired], [2, 0], "kept under the lease");
  const taken = await broker.leases.take(openclaw, lease, (own) => broker.poll(openclaw, 10, { shownUpTo: shown.id, lease: own }));
  assert.deepEqual(taken.map((message) => message.payload.text), ["shown"]);
  await waitFor(() => broker.status().agents[openclaw].expired === 1, 10_000, "the one left to expire once the lease ended");
});

test("a lease renewed for ever holds --pending-ttl expiry of its inbox one more TTL, not for ever", async (t) => {
  // The reader's renewals held its inbox's messages for as long as it renewed: expiry never came.
  const { broker, clock } = await expiringBroker(t);
  await broker.publish(hermes, openclaw, { text: "shown, never taken" });
  const lease = await broker.leases.acquire(openclaw, 60);
  clock.advance(TTL * 2.5);
  assert.equal(await broker.leases.acquire(openclaw, 60, lease), lease, "renewed, still held");
  await waitFor(() => broker.status().agents[openclaw].expired === 1, 10_000, "the message to expire under the lease");
  let lost = false;
  assert.deepEqual(await broker.leases.take(openclaw, lease, (own) => broker.poll(openclaw, 10, { lease: own }), () => (lost = true)), []);
  assert.equal(lost, false, "the lease held all along");
});

/** A GET through a router on `broker`, its answer read. */
async function routerOn(broker: Broker, dataDir: string) {
  const handler = createRouter(broker, {
    auth: await Authenticator.open(new TokenFile(dataDir)),
    metrics: new BrokerMetrics(() => broker.status(), []),
    maxBodyBytes: 65536,
    retryMs: 2000,
    onInternalError: (error) => assert.fail(String(error)),
  });
  return async (path: string) => {
    const response = await handler(fromWebRequest(new Request(`http://localhost${path}`)));
    assert.ok(!isStream(response));
    response.written?.();
    return { status: response.status, headers: response.headers, body: JSON.parse(bodyText(response)) };
  };
}

test("a take whose lease a restart forgot takes what is left and says so (Interop-Lease-Lost), where it said nothing", async (t) => {
  // Leases are in memory on SQLite: after a restart another reader may take what the holder was shown; the
  // holder's take then answered less than it showed, 200, as if its lease had held.
  const dir = tempDir();
  const opened: Broker[] = [];
  t.after(async () => {
    for (const broker of opened) await broker.close();
    dir.cleanup();
  });
  const options = () => testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path);
  const before = await Broker.open(options());
  opened.push(before);
  await before.publish(hermes, openclaw, { text: "one" });
  await before.publish(hermes, openclaw, { text: "two" });
  const shown = await (await routerOn(before, dir.path))("/poll?agent=openclaw&peek=1&lease=60");
  assert.equal(shown.body.length, 2);
  await opened.pop()!.close();
  const broker = await Broker.open(options());
  opened.push(broker);
  const get = await routerOn(broker, dir.path);
  assert.deepEqual((await get("/poll?agent=openclaw&limit=1")).body.map((message: { text: string }) => message.text), ["one"], "another reader");
  const taken = await get(`/poll?agent=openclaw&up_to=${shown.body[1].interop.id}&lease_id=${shown.headers["interop-lease"]}`);
  assert.deepEqual(taken.body.map((message: { text: string }) => message.text), ["two"]);
  assert.equal(taken.headers["interop-lease-lost"], "true");
  // A take under the lease it names says nothing of the kind.
  await broker.publish(hermes, openclaw, { text: "three" });
  const held = await get("/poll?agent=openclaw&peek=1&lease=60");
  const own = await get(`/poll?agent=openclaw&up_to=${held.body[0].interop.id}&lease_id=${held.headers["interop-lease"]}`);
  assert.deepEqual([own.body.length, own.headers["interop-lease-lost"]], [1, undefined]);
});
