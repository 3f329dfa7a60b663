/**
 * An agent's removal on a broker whose store other brokers share (PostgreSQL): racing a publish to it, and as the
 * other brokers see it.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { type TestContext, test } from "node:test";
import postgres from "postgres";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { createRouter } from "../src/http/router.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { isStream } from "../src/runtime/types.ts";
import type { AgentName } from "../src/message.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { TextSink } from "./helpers/text_sink.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const cluster = sharedPostgres();
const twoBrokers = twoBrokersOn(cluster);

test("a publish arriving during its recipient's removal re-creates the inbox after it: no message is stored under no inbox", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => admin.end());
  const store = await PostgresStore.open({ url, durability: "strict", claimant: { pid: process.pid, host: "test", version: "test" }, warn: () => {} });
  let opened: Broker | undefined;
  // The broker closes its store; one that failed to open leaves it to close.
  t.after(() => opened !== undefined ? opened.close() : store.close());
  const broker = opened = await Broker.open(testBrokerOptions(store, "/nonexistent", { agents: [hermes], admitAgent: () => {} }));

  // Each round: the removal is under way (not yet committed, so the shared view still lists the agent) when the
  // publish looks the agent up.
  for (let round = 0; round < 5; round++) {
    const agent = `agent${round}` as AgentName;
    await broker.addAgent(agent);
    const [removed, published] = await Promise.allSettled([broker.removeAgent(agent, false), broker.publish(hermes, agent, { round })]);
    assert.equal(removed.status, "fulfilled");
    assert.equal(published.status, "fulfilled", "the publish came after the removal and created the inbox again");
    const inboxes = await admin`SELECT 1 FROM interop_inboxes WHERE agent = ${agent}`;
    const messages = await admin`SELECT 1 FROM interop_messages WHERE recipient = ${agent}`;
    assert.deepEqual([inboxes.length, messages.length], [1, 1], `${agent}: its inbox row holds its message`);
    assert.ok(agent in broker.status().agents, "the broker and the store agree");
  }
});

test("an agent removed on broker A is unknown on broker B at once: a publish there is refused and stores nothing, a read there creates a new inbox", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, storeB, stored } = brokers;
  await a.addAgent(openclaw);
  // B knows openclaw (its publish looks at the cluster) and holds nothing for it.
  await b.publish(hermes, openclaw, { n: 0 });
  // The poll queues a last-seen note on B that commits with B's next batch (within 0.1 s): the removal on A
  // commits before it, and the publish on B may ride with it.
  assert.equal((await b.poll(openclaw, 10)).length, 1);
  assert.equal(await a.removeAgent(openclaw, false), 1);
  await assert.rejects(b.publish(hermes, openclaw, { n: 1 }), { code: "unknown_agent" });
  // Whatever B's view says yet, its store neither brings the inbox back for a note nor stores a message riding with
  // one (the race, made certain).
  const note = { agent: openclaw, lastSeen: Date.now(), deliveredId: 1 };
  await storeB.write({ messages: [], inboxes: [note] });
  assert.deepEqual(await stored(), { inboxes: 0, messages: 0 }, "a note changes only an inbox that exists");
  await assert.rejects(storeB.write({ messages: [{ from: hermes, to: openclaw, payload: { n: 1 }, createdAt: Date.now() }], inboxes: [note] }), {
    code: "unknown_agent",
  });
  assert.deepEqual(await stored(), { inboxes: 0, messages: 0 }, "nothing stored under no inbox");
  assert.equal(openclaw in b.status().agents, false, "B forgot openclaw");

  // openclaw connects to B (a read creates its inbox, as on a broker that never knew it): what A stores for it then
  // is B's to hand out, once.
  assert.deepEqual(await b.poll(openclaw, 10), []);
  const { envelopes: [sent] } = await a.publish(hermes, openclaw, { n: 2 });
  assert.deepEqual((await b.poll(openclaw, 10)).map((envelope) => envelope.id), [sent.id]);
  assert.deepEqual(await stored(), { inboxes: 1, messages: 1 });
});

test("a removal on broker A is refused while the agent's stream is open on broker B or B stored messages for it; forced, it ends that stream", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, stored, streamClosed } = brokers;
  await a.addAgent(openclaw);
  const sink = new TextSink();
  t.after(() => sink.close());
  (await b.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);

  await assert.rejects(a.removeAgent(openclaw, false), { code: "agent_busy", message: /a stream open on another broker/ });
  sink.close();
  await waitFor(streamClosed, 10_000, "B's stream to be closed in the store");
  await b.publish(hermes, openclaw, { n: 1 });
  await assert.rejects(a.removeAgent(openclaw, false), { code: "agent_busy", message: /1 pending message/ });
  assert.deepEqual(await stored(), { inboxes: 1, messages: 1 }, "a refused removal deletes nothing");

  const again = new TextSink();
  t.after(() => again.close());
  (await b.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(again);
  assert.equal(await a.removeAgent(openclaw, true), 1);
  await waitFor(() => again.closed.aborted, 10_000, "B's stream to end");
  assert.match(again.text, /event: error\ndata: .*openclaw was removed by the operator/);
  // The stream may have ended first on finding the inbox gone; the removal's notification follows.
  await waitFor(() => !(openclaw in b.status().agents), 10_000, "B to forget openclaw");
  assert.deepEqual(await stored(), { inboxes: 0, messages: 0 });
});

test("a stream that ends while PostgreSQL is down is closed in the store once it is back: a removal on another broker is not refused for it", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { server, a, b, storeA, storeB, streamClosed } = brokers;
  await a.addAgent(openclaw);
  const sink = new TextSink();
  t.after(() => sink.close());
  (await b.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  await assert.rejects(a.removeAgent(openclaw, false), { code: "agent_busy", message: /a stream open on another broker/ });

  // The blip: the stream ends while B cannot reach the server, so its closing fails.
  await server.stop();
  try {
    sink.close();
    await waitFor(() => storeB.outage !== undefined, 10_000, "B to see the outage");
  } finally {
    await server.start();
  }
  await waitFor(streamClosed, 10_000, "B's stream to be closed in the store once PostgreSQL is back");
  // A may have met the outage too (its view is re-read every second).
  await waitFor(() => storeA.outage === undefined, 10_000, "A to be out of its outage");
  assert.equal(await a.removeAgent(openclaw, false), 0);
});

/**
 * Brokers A and B under `--rate-limit rate` (bursts of twice that) on a clock that stands still (no refill), B
 * knowing `known` from a publish to each (a token each). `removeOpenclaw(...added)` deletes openclaw's inbox and
 * creates `added` behind B's back (no notification): B's view lists openclaw until its next look, so B's store
 * refuses its next publish to it, and B retries on its new view.
 */
async function refusedOnB(t: TestContext, rate: number, known: AgentName[] = [openclaw]) {
  const brokers = await twoBrokers(t, { rateLimit: rate, now: () => 1_800_000_000_000 });
  if (brokers === undefined) return undefined;
  const { a, b, admin } = brokers;
  for (const agent of known) {
    await a.addAgent(agent);
    await b.publish(hermes, agent, { n: 0 });
  }
  const removeOpenclaw = (...added: string[]) =>
    admin.begin((tx) => [
      tx`DELETE FROM interop_inboxes WHERE agent = ${openclaw}`,
      tx`DELETE FROM interop_messages WHERE recipient = ${openclaw}`,
      ...added.map((agent) => tx`INSERT INTO interop_inboxes (agent) VALUES (${agent})`),
    ]);
  const storedFor = async (agents: string[]) => (await admin`SELECT 1 FROM interop_messages WHERE recipient IN ${admin(agents)}`).length;
  return { a, b, removeOpenclaw, storedFor };
}

test("a publish refused on broker B for an inbox removed elsewhere, then retried on B's new view, counts once against the rate limit", async (t) => {
  // One message a second, two at once: the publish before and the refused one take both.
  const setup = await refusedOnB(t, 1);
  if (setup === undefined) return;
  await setup.removeOpenclaw();
  await assert.rejects(setup.b.publish(hermes, openclaw, { n: 1 }), { code: "unknown_agent" });
});

test("a broadcast refused on broker B for an inbox removed elsewhere, then retried on B's new view, counts the copies the new view adds", async (t) => {
  // One message a second, two at once: the publish before takes one, so the retry's second copy is one too many.
  const setup = await refusedOnB(t, 1);
  if (setup === undefined) return;
  await setup.removeOpenclaw("agent1", "agent2");
  await assert.rejects(setup.b.publish(hermes, undefined, { n: 1 }), { code: "rate_limited" });
  assert.equal(await setup.storedFor(["agent1", "agent2"]), 0);
});

test("a broadcast refused on broker B for the only other inbox, removed elsewhere, takes no rate-limit tokens when its retry finds no recipient", async (t) => {
  // One message a second, two at once: the publish before takes one.
  const setup = await refusedOnB(t, 1);
  if (setup === undefined) return;
  await setup.removeOpenclaw();
  // On a current view (and on SQLite) this broadcast is refused before it counts.
  await assert.rejects(setup.b.publish(hermes, undefined, { n: 1 }), { code: "no_recipient" });
  const agent1 = "agent1" as AgentName;
  await setup.a.addAgent(agent1);
  await setup.b.publish(hermes, agent1, { n: 2 });
});

test("a broadcast refused on broker B for an inbox removed elsewhere, then retried on B's new view, counts only the copies it stores", async (t) => {
  // Two messages a second, four at once: the publishes before take two.
  const agent1 = "agent1" as AgentName;
  const setup = await refusedOnB(t, 2, [openclaw, agent1]);
  if (setup === undefined) return;
  await setup.removeOpenclaw();
  // The first try counts two copies; the retry stores one, and counts as one.
  const { envelopes } = await setup.b.publish(hermes, undefined, { n: 1 });
  assert.deepEqual(envelopes.map((envelope) => envelope.to), [agent1]);
  await setup.b.publish(hermes, agent1, { n: 2 });
});

test("a broadcast refused on broker B for an inbox removed elsewhere, then retried on a new view with more recipients than a batch may hold, is too big", async (t) => {
  // One message a second, two at once: the retry's three copies are more than a batch may hold, whatever the
  // first try counted.
  const setup = await refusedOnB(t, 1);
  if (setup === undefined) return;
  await setup.removeOpenclaw("agent1", "agent2", "agent3");
  await assert.rejects(setup.b.publish(hermes, undefined, { n: 1 }), { code: "rate_limited", message: /^Batch too big for the rate limit: 3 messages/ });
  assert.equal(await setup.storedFor(["agent1", "agent2", "agent3"]), 0);
});

for (const retention of ["prune", "expire"] as const) {
  test(`a removal on broker A and retention (${retention}) on broker B of the same inbox take its rows in one order: no deadlock`, async (t) => {
    const brokers = await twoBrokers(t, { maxPending: uniform(10) });
    if (brokers === undefined) return;
    const { server, url, admin, a, storeA, storeB } = brokers;
    const watcher = postgres(url, { max: 1, onnotice: () => {} });
    t.after(() => watcher.end());
    await a.addAgent(openclaw);
    for (const n of [1, 2]) await a.publish(hermes, openclaw, { n });
    // What is pruned is delivered, what expires is not. Marked in the store, not by a poll on A: the poll's
    // advisory note (the agent last seen) was committed by A a moment later, which could then queue first for the
    // row held below, ahead of A's removal, and let B's prune go before it (the removal then found nothing).
    if (retention === "prune") {
      await admin`UPDATE interop_inboxes SET delivered_id = (SELECT max(id) FROM interop_messages WHERE recipient = ${openclaw})
        WHERE agent = ${openclaw}`;
    }
    const deadlocks = () => server.log().split("deadlock detected").length - 1;
    const before = deadlocks();
    // The statements waiting for a lock, told apart by their text: the removal's and retention's.
    const waiting = async (statement: string) =>
      (await watcher<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE ${`%${statement}%`}`)[0].n;

    // The inbox's row held while the removal, then retention, queue for it: each has taken what it takes before.
    let removal: Promise<number> | undefined;
    let retained: Promise<unknown> | undefined;
    await admin.begin(async (tx) => {
      await tx`SELECT 1 FROM interop_inboxes WHERE agent = ${openclaw} FOR NO KEY UPDATE`;
      removal = storeA.removeInbox(openclaw);
      await waitFor(async () => await waiting("DELETE FROM interop_inboxes") === 1, 10_000, "the removal to wait for the inbox's row");
      const cutoff = Date.now() + 60_000;
      retained = retention === "prune" ? storeB.prune(cutoff, new Map([[openclaw, Number.MAX_SAFE_INTEGER]])) : storeB.expire(new Map([[openclaw, cutoff]]));
      await waitFor(async () => await waiting("SELECT agent FROM interop_inboxes WHERE agent IN (") === 1, 10_000, `${retention} to wait too`);
    });
    assert.equal(await removal, 2);
    await retained;
    assert.equal(deadlocks() - before, 0, `PostgreSQL broke a deadlock:\n${server.log().slice(-1500)}`);
  });
}

/** Sends requests to `broker`'s HTTP routes (no tokens), answering each one's status, headers and parsed body. */
async function routed(t: TestContext, broker: Broker) {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const handler = createRouter(broker, {
    auth: await Authenticator.open(new TokenFile(dir.path)),
    metrics: new BrokerMetrics(() => broker.status(), []),
    maxBodyBytes: 65536,
    retryMs: 2000,
    onInternalError: (error) => assert.fail(String(error)),
  });
  return async (path: string, init?: RequestInit) => {
    const response = await handler(fromWebRequest(new Request(`http://localhost${path}`, init)));
    assert.ok(!isStream(response));
    response.written?.();
    const text = bodyText(response);
    return { status: response.status, headers: response.headers, body: text === "" ? undefined : JSON.parse(text) };
  };
}

test("a removal refused on broker A (a stream open on broker B) leaves A's /wait and /ask for the agent waiting: they answer what comes after", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  const request = await routed(t, a);
  await a.addAgent(openclaw);
  const sink = new TextSink();
  t.after(() => sink.close());
  (await b.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  const waited = request("/wait?agent=openclaw&timeout=20");
  const asked = request("/ask?from=openclaw&to=hermes&timeout=20", { method: "POST", body: "deploy?" });
  await waitFor(() => a.status().agents[openclaw]?.waiting === 2, 10_000, "the wait and the ask to wait on A");

  await assert.rejects(a.removeAgent(openclaw, false), { code: "agent_busy", message: /a stream open on another broker/ });
  // Closed first, so that what follows goes to the waits and not to the stream.
  sink.close();
  const [question] = await a.poll(hermes, 10);
  await b.publish(hermes, openclaw, { text: "yes" }, { replyTo: question.id });
  await b.publish(hermes, openclaw, { text: "later" });
  const [wait, ask] = await Promise.all([waited, asked]);
  assert.deepEqual([wait.status, wait.body?.text], [200, "later"], "the wait was not ended by the refused removal");
  assert.deepEqual([ask.status, ask.body?.reply?.text], [200, "yes"], "the ask was not ended by the refused removal");
});

test("a leased reader's take on one broker after the operator removed the agent on another is refused 410 agent_removed", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, stored } = brokers;
  const get = await routed(t, a);
  await a.addAgent(openclaw);
  await a.publish(hermes, openclaw, { text: "deploy?" });
  const shown = await get("/poll?agent=openclaw&peek=1&lease=30");
  assert.equal(shown.body.length, 1);
  await waitFor(() => openclaw in b.status().agents, 10_000, "B to see openclaw");
  assert.equal(await b.removeAgent(openclaw, true), 1);
  const taken = await get(`/poll?agent=openclaw&up_to=${shown.body[0].interop.id}&lease_id=${shown.headers["interop-lease"]}`);
  assert.deepEqual([taken.status, taken.body.code], [410, "agent_removed"]);
  assert.equal((await stored()).inboxes, 0, "not created again");
});

test("an agent removed on broker B takes its questions' reply holds with it: a reply to its inbox made again is read at once", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, admin } = brokers;
  await a.addAgent(openclaw);
  const question = await a.publishHoldingReply(openclaw, hermes, { text: "question" }, 3_600_000);
  const records = async () => (await admin`SELECT 1 FROM interop_awaited_replies WHERE agent = ${openclaw}`).length;
  await waitFor(async () => await records() === 1, 10_000, "the hold's record");
  await b.removeAgent(openclaw, true);
  // In the removal's transaction: not when broker A hears of the removal and ends its own hold.
  assert.equal(await records(), 0);
  await b.addAgent(openclaw);
  await b.publish(hermes, openclaw, { text: "reply to the old openclaw" }, { replyTo: question.id });
  assert.deepEqual((await b.poll(openclaw, 10)).map((envelope) => envelope.payload.text), ["reply to the old openclaw"]);
});

test("an agent removed on broker B ends the waits for it on broker A (as A's /wait and /ask then answer 410)", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  let removals = 0;
  const unwatch = a.watchRemoval(openclaw, () => removals++);
  t.after(unwatch);
  await b.removeAgent(openclaw, true);
  await waitFor(() => removals === 1, 10_000, "A to end its wait for the removed agent");
  await assert.rejects(a.refuseRemoved(openclaw, a.storeId), { code: "agent_removed" });
});

// Red team, session 46: the refused removal had released the hold, and the poll took the reply.
test("a removal refused on a shared store keeps the agent's reply holds: the reply waits for its asker, not its in-order readers", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, admin } = brokers;
  await a.addAgent(openclaw);
  await a.publish(hermes, openclaw, { text: "pending" });
  const question = await a.publishHoldingReply(openclaw, hermes, { text: "question" }, 3_600_000);
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies WHERE agent = ${openclaw}`).length === 1, 10_000, "the hold's record");
  await assert.rejects(a.removeAgent(openclaw, false), { code: "agent_busy", message: /1 pending message/ });
  await a.publish(hermes, openclaw, { text: "the reply" }, { replyTo: question.id });
  assert.deepEqual((await a.poll(openclaw, 10)).map((envelope) => envelope.payload.text), ["pending"]);
});

test("a read on broker A by a client that had the inbox, overtaken by the agent's removal on broker B, is refused rather than create it again", async (t) => {
  // Red team, session 46: 7 of 40 polls (and 2 of 40 leased waits) with Interop-Had-Inbox made the removed agent
  // again, when A heard of B's removal between the read's check and its take.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, stored } = brokers;
  await a.addAgent(openclaw);
  const endRead = await a.readAsHolder(openclaw, a.storeId);
  await b.removeAgent(openclaw, true);
  await waitFor(() => !(openclaw in a.status().agents), 10_000, "A to hear of the removal");
  await assert.rejects(a.poll(openclaw, 10), { code: "agent_removed" });
  await assert.rejects(a.peek(openclaw, 10), { code: "agent_removed" });
  assert.equal((await stored()).inboxes, 0, "not created again");
  endRead();
  // Once that read ended, a read creates the inbox as before (a client that never had it).
  assert.deepEqual(await a.poll(openclaw, 10), []);
  assert.equal((await stored()).inboxes, 1);
});

test("a dead letter parked on broker A after broker B removed its agent is refused, not left behind for the agent made again", async (t) => {
  // Red team, session 47: the park's insert committed after B's removal (5 of 40 racing it), and the letter showed
  // on the agent created again under the name.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, storeA, admin } = brokers;
  await a.addAgent(openclaw);
  const { envelopes: [sent] } = await a.publish(hermes, openclaw, { text: "refused" });
  await b.removeAgent(openclaw, true);
  // The park's look found the inbox and the message before the removal; its insert comes after.
  await assert.rejects(storeA.addDeadLetter(openclaw, { messageId: sent.id, reason: "refused", parkedAt: Date.now() }), { code: "unknown_message" });
  assert.equal((await admin`SELECT 1 FROM interop_dead_letters`).length, 0);
});
