/**
 * Inbox leases across brokers on one PostgreSQL: a reader that peeks, shows, then takes (`interop poll`) holds the
 * inbox on every broker of the database, not only on the one its requests reach.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { publish, waitFor } from "../helpers/broker.ts";
import { collect, spawnCli } from "../helpers/cli.ts";
import { readDeliveries } from "../helpers/ledger.ts";
import { openSse } from "../helpers/sse.ts";
import { sharedPostgres, twoBrokers } from "../helpers/postgres.ts";

const cluster = sharedPostgres();

/** A peek of `agent`'s inbox on `url` under a lease of `seconds` (renewing `id`): its messages' ids and the lease. */
async function leasedPeek(url: string, agent: string, seconds: number, id?: string): Promise<{ ids: number[]; lease: string }> {
  const response = await fetch(`${url}/poll?agent=${agent}&peek=1&lease=${seconds}${id === undefined ? "" : `&lease_id=${id}`}`);
  assert.equal(response.status, 200, await response.clone().text());
  const lease = response.headers.get("interop-lease");
  assert.ok(lease !== null, "the peek names its lease");
  return { ids: (await response.json()).map((message: { interop: { id: number } }) => message.interop.id), lease };
}

test("interop poll runs at once, their requests alternating between two brokers, print each message once", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  // Pages larger than a pipe holds: a run blocks printing its first page until its stdout is read.
  const padding = "x".repeat(4000);
  const sent = new Map<string, number>();
  for (let batch = 0; batch < 30; batch++) {
    await Promise.all(Array.from({ length: 10 }, async (_, n) => {
      const key = `m${batch * 10 + n}`;
      const response = await publish(brokers[0].url, "hermes", "openclaw", { key, padding });
      sent.set(key, (await response.json()).id);
    }));
  }
  // Overlapping cron runs behind a load balancer, each printing into a pipe not read yet: with each broker's own
  // lease, B's run printed the page A's first run printed.
  const urls = [0, 1, 0].map((index) => brokers[index].url);
  const children = urls.map((url) => spawnCli(["poll", "--agent", "openclaw", "--limit", "100", "--url", url]));
  t.after(() => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  });
  // Held until one run has printed into its pipe (it holds the lease) and the others had time to peek too.
  await Promise.race(children.map((child) => once(child.stdout!, "readable")));
  await new Promise((resolve) => setTimeout(resolve, 500));
  const runs = await Promise.all(children.map((child) => collect(child)));
  const outputs = runs.map((run) => {
    assert.equal(run.code, 0, run.stderr);
    return readDeliveries(run.stdout);
  });
  const printed = outputs.flat().map((delivery) => delivery.id);
  assert.equal(printed.length, new Set(printed).size, "no message printed twice");
  assert.deepEqual(outputs.map((output) => output.length), [100, 100, 100]);
  assert.deepEqual(outputs.flat().sort((x, y) => x.id - y.id), [...sent].map(([key, id]) => ({ key, id })).sort((x, y) => x.id - y.id));
});

test("a lease taken on A refuses B's takes, holds B's wait until A's take, and ends with it", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const sent: number[] = [];
  for (const n of [1, 2]) sent.push((await (await publish(a.url, "hermes", "openclaw", { n })).json()).id);
  const { ids, lease } = await leasedPeek(a.url, "openclaw", 60);
  assert.deepEqual(ids, sent);

  const take = await fetch(`${b.url}/poll?agent=openclaw`);
  assert.equal(take.status, 409);
  assert.equal((await take.json()).code, "inbox_leased");
  assert.ok(Number(take.headers.get("retry-after")) > 50, `Retry-After ${take.headers.get("retry-after")}`);
  const other = await fetch(`${b.url}/poll?agent=openclaw&peek=1&lease=60`);
  assert.equal(other.status, 409, "another lease on B is refused");
  await other.body?.cancel();

  // A wait held by the lease still ends at its timeout, taking nothing.
  const short = await fetch(`${b.url}/wait?agent=openclaw&timeout=1`);
  assert.equal(short.status, 204);
  await short.body?.cancel();

  let takeStarted = false;
  const waited = fetch(`${b.url}/wait?agent=openclaw&timeout=20`).then(async (response) => {
    assert.equal(takeStarted, true, "the wait answered before A's take");
    assert.equal(response.status, 200);
    return (await response.json()).interop.id;
  });
  // The wait is held (it polls the store for the lease): A's reader shows the first message and takes it.
  await new Promise((resolve) => setTimeout(resolve, 600));
  takeStarted = true;
  const taken = await fetch(`${a.url}/poll?agent=openclaw&lease_id=${lease}&up_to=${sent[0]}`);
  assert.deepEqual((await taken.json()).map((message: { interop: { id: number } }) => message.interop.id), [sent[0]]);
  assert.equal(await waited, sent[1], "B's wait took what A's reader left");
  // The take ended the lease: B leases the inbox at once.
  await leasedPeek(b.url, "openclaw", 60);
});

test("a wait already waiting on B when A's reader leases the inbox takes the message as soon as the lease ends", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  let answeredAt = 0;
  const waited = fetch(`${b.url}/wait?agent=openclaw&timeout=30`).then(async (response) => {
    answeredAt = Date.now();
    assert.equal(response.status, 200);
    return (await response.json()).interop.id;
  });
  // The wait is waiting (nothing pending) before A's reader leases the inbox and a message comes.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const { ids, lease } = await leasedPeek(a.url, "openclaw", 60);
  assert.deepEqual(ids, []);
  const sent = (await (await publish(a.url, "hermes", "openclaw", { n: 1 })).json()).id;
  // B's take for the wait is refused while the lease holds; A's reader, having shown nothing, takes nothing.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(answeredAt, 0, "the wait answered while the lease held");
  const ended = Date.now();
  const released = await fetch(`${a.url}/poll?agent=openclaw&lease_id=${lease}&up_to=0`);
  assert.deepEqual(await released.json(), []);
  assert.equal(await waited, sent);
  // Before, the wait was served again only by the next idle re-read of the store, up to 5 s later.
  assert.ok(answeredAt - ended < 2000, `answered ${answeredAt - ended} ms after the lease ended`);
});

test("a lease renewed with its id lasts from the renewal; one that expires frees the inbox on every broker", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  await publish(a.url, "hermes", "openclaw", { n: 1 });
  const { lease } = await leasedPeek(a.url, "openclaw", 1);
  const renewed = await leasedPeek(a.url, "openclaw", 2, lease);
  assert.equal(renewed.lease, lease, "the renewal keeps the lease's id");
  const start = Date.now();
  const refused = await fetch(`${b.url}/poll?agent=openclaw`);
  assert.equal(refused.status, 409);
  assert.equal(refused.headers.get("retry-after"), "2");
  await refused.body?.cancel();
  let taken: number[] = [];
  await waitFor(async () => {
    const response = await fetch(`${b.url}/poll?agent=openclaw`);
    if (response.status === 409) return (await response.body?.cancel(), false);
    taken = (await response.json()).map((message: { interop: { id: number } }) => message.interop.id);
    return true;
  }, 10_000, "the lease to expire");
  assert.equal(taken.length, 1);
  assert.ok(Date.now() - start > 1000, `freed after ${Date.now() - start} ms`);
  // The expired lease's late take takes nothing and ends nothing of another reader's.
  const next = await leasedPeek(b.url, "openclaw", 60);
  const late = await fetch(`${a.url}/poll?agent=openclaw&lease_id=${lease}`);
  assert.equal(late.status, 409);
  await late.body?.cancel();
  const still = await fetch(`${a.url}/poll?agent=openclaw&peek=1&lease=60`);
  assert.equal(still.status, 409, `B's lease ${next.lease} still holds`);
  await still.body?.cancel();
});

test("removing the agent on B ends a lease taken on A: the inbox created again starts free", async (t) => {
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  await publish(a.url, "hermes", "openclaw", { n: 1 });
  await leasedPeek(a.url, "openclaw", 60);
  const removed = await fetch(`${b.url}/agents?agent=openclaw&force=1`, { method: "DELETE" });
  assert.equal(removed.status, 200, await removed.clone().text());
  await removed.body?.cancel();
  await publish(b.url, "hermes", "openclaw", { n: 2 });
  await leasedPeek(b.url, "openclaw", 60);
});

test("a peek on B right after A's stream got a message does not show it as pending (B's cursor from the cluster view was a second old)", async (t) => {
  // Red team 57: 30 of 30 streamed messages were shown again by peeks on the other broker, and `interop mcp` there
  // showed the model messages its listen had already handed on.
  const brokers = await twoBrokers(t, cluster);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const stream = await openSse(`${a.url}/subscribe?agent=hermes`);
  t.after(() => stream.close());
  for (let n = 0; n < 5; n++) {
    // A peek on B first: B's view of the inbox then holds its cursor, which only its cluster view moves on.
    assert.deepEqual(await (await fetch(`${b.url}/poll?agent=hermes&peek=1`)).json(), []);
    const { id } = await (await publish(a.url, "openclaw", "hermes", { n })).json();
    const [event] = await stream.take(1);
    assert.equal(JSON.parse(event.data).interop.id, id);
    const peeked = await (await fetch(`${b.url}/poll?agent=hermes&peek=1`)).json();
    assert.deepEqual(peeked, [], `message ${id}, written to A's stream, shown pending on B`);
  }
});
