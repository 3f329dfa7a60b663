/** The store contract: the same cases against every backend, so the broker sees one behaviour whatever it runs on. */
import assert from "node:assert/strict";
import os from "node:os";
import process from "node:process";
import { type TestContext, test } from "node:test";
import { type ErrorCode, InteropError } from "../src/errors.ts";
import type { AgentName, Payload } from "../src/message.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { INDEX_LAG, SqliteStore } from "../src/store/sqlite.ts";
import { type Durability, type MessageStore, type NewMessage, type RetentionStep, wasCut } from "../src/store/store.ts";
import { tempDir } from "./helpers/cli.ts";
import { sharedPostgres } from "./helpers/postgres.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/** Opens the store on one test's data (again and again: a reopen sees what was committed). */
type Opener = (durability?: Durability) => Promise<MessageStore>;

interface Backend {
  name: string;
  /** What a second opener of the same data is refused with; undefined when several brokers may share it. */
  lockedCode: ErrorCode | undefined;
  /** Fresh data for test `t`, closed after it; undefined when this backend cannot run here (`t` is skipped). */
  place(t: TestContext): Promise<Opener | undefined>;
}

/** Every store opened by `open` is closed after the test, even one that fails midway. */
function closedAfter(t: TestContext, open: Opener): Opener {
  const opened: MessageStore[] = [];
  t.after(() => Promise.all(opened.map((store) => store.close())));
  return async (durability) => {
    const store = await open(durability);
    opened.push(store);
    return store;
  };
}

const sqlite: Backend = {
  name: "SqliteStore",
  lockedCode: "data_dir_locked",
  place(t) {
    const dir = tempDir();
    t.after(dir.cleanup);
    return Promise.resolve(closedAfter(t, (durability = "strict") => Promise.resolve().then(() => new SqliteStore(dir.path, durability))));
  },
};

const cluster = sharedPostgres();
const postgresql: Backend = {
  name: "PostgresStore",
  lockedCode: undefined,
  async place(t) {
    const server = await cluster(t);
    if (server === undefined) return undefined;
    const url = await server.createDatabase();
    return closedAfter(t, (durability = "strict") =>
      PostgresStore.open({
        url,
        durability,
        claimant: { pid: process.pid, host: os.hostname(), version: "test" },
        warn: () => {},
      }));
  },
};

for (const backend of [sqlite, postgresql]) contract(backend);

/** Messages 1..count from hermes to `to(id)`, each created at its id (in ms) with `{n: id}`: ids as a new store gives them. */
function numbered(count: number, to: (id: number) => AgentName): NewMessage[] {
  return Array.from({ length: count }, (_, i) => ({ from: hermes, to: to(i + 1), payload: { n: i + 1 }, createdAt: i + 1 }));
}

function contract({ name, lockedCode, place }: Backend): void {
  test(`${name} keeps committed messages and cursors across a reopen`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    const stored = await store.write({
      messages: [1, 2, 3].map((n) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: 1000 + n })),
      inboxes: [{ agent: openclaw, create: true, deliveredId: 0 }],
    });
    assert.deepEqual(stored.map((envelope) => envelope.id), [1, 2, 3]);
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 1, lastSeen: 5000 }] });
    await store.close();

    const reopened = await open();
    assert.equal(await reopened.lastId(), 3);
    assert.deepEqual(await reopened.loadInboxes(), [
      { agent: openclaw, deliveredId: 1, purgedId: 0, pending: 2, lastSeen: 5000, deadLetters: 0, expired: 0 },
    ]);
    const after = await reopened.readAfter(openclaw, 1, 10);
    assert.deepEqual(after.map((envelope) => envelope.payload), [{ n: 2 }, { n: 3 }]);
    assert.equal(after[0].timestamp, new Date(1002).toISOString());
  });

  test(`${name} refuses a second opener of the same data, unless it is shared`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const first = await open("relaxed");
    if (lockedCode === undefined) {
      await (await open("relaxed")).write({ messages: [], inboxes: [{ agent: openclaw, create: true, deliveredId: 0 }] });
      return;
    }
    await assert.rejects(open("relaxed"), (error: unknown) => {
      assert.ok(error instanceof InteropError);
      assert.equal(error.code, lockedCode);
      return true;
    });
    await first.close();
    await open("relaxed");
  });

  test(`${name} reads the replies to one question in an inbox by the question, leaving out polled ones`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    const [question] = await store.write({
      messages: [{ from: hermes, to: openclaw, payload: { n: 0 }, createdAt: 1 }],
      inboxes: [{ agent: hermes, create: true, deliveredId: 0 }, { agent: openclaw, create: true, deliveredId: 0 }],
    });
    const thread = { replyTo: question.id, conversation: question.id, hops: 1 };
    const stored = await store.write({
      messages: [
        { from: openclaw, to: hermes, payload: { n: 1 }, createdAt: 2 },
        { from: openclaw, to: hermes, payload: { n: 2 }, createdAt: 3, thread },
        { from: hermes, to: openclaw, payload: { n: 3 }, createdAt: 4, thread },
        { from: openclaw, to: hermes, payload: { n: 4 }, createdAt: 5, thread },
        { from: openclaw, to: hermes, payload: { n: 5 }, createdAt: 6, thread },
      ],
      inboxes: [],
    });
    const ids = stored.map((envelope) => envelope.id);
    const replies = async (afterId: number, limit: number) => (await store.readReplies(hermes, question.id, afterId, limit)).map((envelope) => envelope.id);
    assert.deepEqual(await replies(0, 10), [ids[1], ids[3], ids[4]]);
    assert.deepEqual(await replies(ids[1], 1), [ids[3]]);
    await store.write({ messages: [], inboxes: [{ agent: hermes, polled: [{ after: ids[3] - 1, upTo: ids[3] }] }] });
    assert.deepEqual(await replies(0, 10), [ids[1], ids[4]]);
    assert.deepEqual((await store.readReplies(hermes, ids[0], 0, 10)), [], "a message no one answered");
  });

  test(`${name} hides polled messages from replays and ids are never reused after pruning`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    await store.write({
      messages: [1, 2, 3, 4].map((n) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: n })),
      inboxes: [{ agent: openclaw, create: true, deliveredId: 0 }],
    });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 2, polled: [{ after: 0, upTo: 2 }] }] });
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.id), [3, 4]);

    // Polled ones alone went: the purge mark stays, as a resume from before them lacks nothing (none replays them).
    const purged = await store.prune(100, new Map([[openclaw, 4]]));
    assert.deepEqual(purged, { changed: new Map(), more: false });
    assert.deepEqual([await store.find(2), (await store.loadInboxes())[0].purgedId], [undefined, 0]);
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 4 }] });
    // Only up to what was delivered a retention period ago, however old the messages.
    assert.deepEqual([...(await store.prune(100, new Map([[openclaw, 3]]))).changed], [[openclaw, 3]]);
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.id), [4]);
    assert.deepEqual(await store.prune(100, new Map()), { changed: new Map(), more: false }, "an inbox not named keeps all");
    await store.prune(100, new Map([[openclaw, 4]]));
    const [next] = await store.write({
      messages: [{ from: hermes, to: openclaw, payload: {}, createdAt: 5 }],
      inboxes: [],
    });
    assert.equal(next.id, 5);
    await store.close();
    assert.equal(await (await open("relaxed")).lastId(), 5);
  });

  test(`${name} finds a publish by its idempotency key, a message by its id, and keeps threads with their A2A context`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    const thread = { replyTo: 1, conversation: 1, hops: 1, context: "ctx-1" };
    const stored = await store.write({
      messages: [
        { from: hermes, to: openclaw, payload: { n: 1 }, createdAt: 10, idempotencyKey: "k1" },
        { from: hermes, to: hermes, payload: { n: 1 }, createdAt: 10, idempotencyKey: "k1" },
        { from: openclaw, to: hermes, payload: { z: 1, a: [1, "é"] }, createdAt: 20, thread, idempotencyKey: "k1" },
      ],
      inboxes: [{ agent: openclaw, create: true }, { agent: hermes, create: true }],
    });
    assert.deepEqual((await store.findByKey(hermes, "k1")).map((envelope) => [envelope.id, envelope.to]), [[1, openclaw], [2, hermes]]);
    assert.deepEqual(await store.findByKey(hermes, "k2"), []);
    assert.deepEqual(await store.find(3), stored[2]);
    assert.equal(JSON.stringify((await store.find(3))!.payload), '{"z":1,"a":[1,"é"]}');
    assert.equal(await store.find(4), undefined);
    assert.equal(await store.idBefore(hermes, 20), 2);
    assert.equal(await store.idBefore(hermes, 10), 0);
  });

  test(`${name} withdraws a message for good in the commit that says so, and reports replies, takes and withdrawals`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    let store = await open();
    await store.write({
      messages: [1, 2, 3].map((n) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: n, idempotencyKey: `a2a:openclaw:${n}` })),
      inboxes: [{ agent: openclaw, create: true }, { agent: hermes, create: true }],
    });
    const thread = { replyTo: 2, conversation: 2, hops: 1 };
    await store.write({
      messages: [
        // Only the recipient's answer is the reply: a follow-up of the sender's own is not.
        { from: hermes, to: openclaw, payload: { n: "follow-up" }, createdAt: 4, thread },
        { from: openclaw, to: hermes, payload: { n: "answer" }, createdAt: 5, thread },
      ],
      inboxes: [{ agent: openclaw, withdrawn: [{ id: 1, at: 77 }] }],
    });
    await store.close();
    store = await open();
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.id), [2, 3, 4]);
    assert.deepEqual(await store.outcome(1), { taken: true, withdrawnAt: 77, reply: undefined, deadLetter: undefined });
    const answered = await store.outcome(2);
    assert.deepEqual([answered.taken, answered.withdrawnAt, answered.reply?.id, answered.deadLetter], [false, undefined, 5, undefined]);
    assert.deepEqual(await store.outcome(99), { taken: false, withdrawnAt: undefined, reply: undefined, deadLetter: undefined });
    await store.addDeadLetter(openclaw, { messageId: 3, reason: "refused", parkedAt: 9 });
    assert.deepEqual((await store.outcome(3)).deadLetter, { messageId: 3, reason: "refused", parkedAt: 9 });
    assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === openclaw)!.pending, 3);
    const listed = await store.findByKeyPrefix("a2a:openclaw:", { sender: hermes, recipient: openclaw }, 3, 10);
    assert.deepEqual(listed.map((envelope) => envelope.id), [2, 1]);
    assert.deepEqual((await store.findByKeyPrefix("a2a:", {}, 10, 2)).map((envelope) => envelope.id), [3, 2]);
    assert.deepEqual((await store.findByKeyPrefix("a2a:", { recipient: openclaw }, 10, 10)).map((envelope) => envelope.id), [3, 2, 1]);
    assert.deepEqual(await store.findByKeyPrefix("a2a:", { sender: openclaw }, 10, 10), []);
    assert.deepEqual(await store.findByKeyPrefix("a2a:other:", { sender: hermes }, 10, 10), []);
  });

  test(`${name} parks a dead letter once and counts it in its inbox`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({
      messages: [1, 2, 3].map((n) => ({ from: hermes, to: openclaw, payload: {}, createdAt: n })),
      inboxes: [{ agent: openclaw, create: true }],
    });
    assert.equal(await store.addDeadLetter(openclaw, { messageId: 1, reason: "410 Gone", parkedAt: 7 }), true);
    assert.equal(await store.addDeadLetter(openclaw, { messageId: 1, reason: "again", parkedAt: 8 }), false);
    assert.deepEqual(await store.deadLetters(openclaw, 1000), [{ messageId: 1, reason: "410 Gone", parkedAt: 7 }]);
    assert.deepEqual(await store.deadLetters(hermes, 1000), []);
    assert.equal((await store.loadInboxes())[0].deadLetters, 1);
    // The last `limit` of them, oldest first.
    for (const messageId of [3, 2]) await store.addDeadLetter(openclaw, { messageId, reason: "413", parkedAt: 9 });
    assert.deepEqual((await store.deadLetters(openclaw, 2)).map((letter) => letter.messageId), [2, 3]);
    assert.deepEqual((await store.deadLetters(openclaw, 1, 3)).map((letter) => letter.messageId), [2]);
  });

  test(`${name} keeps an acknowledged dead letter, out of the count and the list unless asked, and acknowledges it once`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({
      messages: [1, 2, 3, 4].map((n) => ({ from: hermes, to: n === 4 ? hermes : openclaw, payload: {}, createdAt: n })),
      inboxes: [{ agent: openclaw, create: true }, { agent: hermes, create: true }],
    });
    for (const messageId of [1, 2, 3]) await store.addDeadLetter(openclaw, { messageId, reason: "400", parkedAt: 7 });
    await store.addDeadLetter(hermes, { messageId: 4, reason: "400", parkedAt: 7 });
    // 9: not a letter; 4: hermes's.
    assert.deepEqual(await store.acknowledgeDeadLetters(openclaw, [3, 1, 9, 4], 20), { acknowledged: [1, 3], left: 1 });
    assert.deepEqual(await store.acknowledgeDeadLetters(openclaw, [1], 21), { acknowledged: [], left: 1 }, "acknowledged already");
    const counts = async () => Object.fromEntries((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.deadLetters]));
    assert.deepEqual(await counts(), { hermes: 1, openclaw: 1 });
    assert.deepEqual(await store.deadLetters(openclaw, 1000), [{ messageId: 2, reason: "400", parkedAt: 7 }]);
    assert.deepEqual((await store.deadLetters(openclaw, 1000, undefined, undefined, true)).map((letter) => letter.acknowledgedAt), [20, undefined, 20]);
    // Still the question's outcome: what /wait and an A2A task answer.
    assert.deepEqual((await store.outcome(1)).deadLetter, { messageId: 1, reason: "400", parkedAt: 7 });
    // A park again of an acknowledged letter leaves it so.
    assert.equal(await store.addDeadLetter(openclaw, { messageId: 1, reason: "again", parkedAt: 30 }), false);
    assert.deepEqual(await store.acknowledgeDeadLetters(openclaw, undefined, 40), { acknowledged: [2], left: 0 });
    assert.deepEqual(await counts(), { hermes: 1, openclaw: 0 });
    assert.deepEqual(await store.deadLetters(openclaw, 1000), []);
    // What a receiver said may hold a NUL, which PostgreSQL's text refused (the park failed for ever): written out.
    assert.equal(await store.addDeadLetter(openclaw, { messageId: 4, reason: "exit 1: bad\0input", parkedAt: 50 }), true);
    assert.equal((await store.deadLetters(openclaw, 1))[0].reason, "exit 1: bad\\u0000input");
  });

  test(`${name} removes an inbox for good: its messages, cursor and dead letters, never another's, and ids go on`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({
      messages: [openclaw, hermes, openclaw].map((to, n) => ({ from: hermes, to, payload: { n }, createdAt: n })),
      inboxes: [{ agent: openclaw, create: true, deliveredId: 1 }, { agent: hermes, create: true }],
    });
    await store.addDeadLetter(openclaw, { messageId: 1, reason: "410 Gone", parkedAt: 7 });
    assert.equal(await store.removeInbox(openclaw), 2);
    assert.deepEqual((await store.loadInboxes()).map((inbox) => inbox.agent), [hermes]);
    assert.deepEqual(await store.readAfter(openclaw, 0, 10), []);
    assert.deepEqual(await store.deadLetters(openclaw, 1000), []);
    assert.deepEqual((await store.readAfter(hermes, 0, 10)).map((envelope) => envelope.id), [2]);
    assert.equal(await store.removeInbox(openclaw), 0);
    const [next] = await store.write({ messages: [{ from: hermes, to: openclaw, payload: {}, createdAt: 9 }], inboxes: [{ agent: openclaw, create: true }] });
    assert.equal(next.id, 4, "a removed inbox's ids are not handed out again");
    assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === openclaw)!.deadLetters, 0);
  });

  test(`${name} records a removal until the inbox is created again, across a reopen; an agent never seen was not removed`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    let store = await open();
    await store.write({ messages: [], inboxes: [{ agent: openclaw, create: true }, { agent: hermes, create: true }] });
    assert.equal(await store.wasRemoved(openclaw), false);
    await store.removeInbox(openclaw);
    assert.equal(await store.wasRemoved(openclaw), true);
    assert.equal(await store.wasRemoved(hermes), false);
    assert.equal(await store.wasRemoved("carol" as AgentName), false, "an agent the store never had was not removed");
    await store.close();
    store = await open();
    assert.equal(await store.wasRemoved(openclaw), true, "the removal is committed");
    // Created again, by a commit (a store one broker owns) or by a broker of a shared store.
    await store.write({ messages: [], inboxes: [{ agent: openclaw, create: true }] });
    assert.equal(await store.wasRemoved(openclaw), false);
    if (store.shared === undefined) return;
    await store.removeInbox(hermes);
    await store.shared.createInbox(hermes, 0);
    assert.equal(await store.wasRemoved(hermes), false);
  });

  test(`${name} expires the undelivered messages older than the cutoff, above the newer of the two cursors`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({
      messages: [1, 2, 3, 4, 5].map((n) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: n * 10 })),
      inboxes: [{ agent: openclaw, create: true, deliveredId: 1 }, { agent: hermes, create: true }],
    });
    // Message 4 was taken by a wait: it is not counted, though it goes with its neighbours.
    await store.write({ messages: [], inboxes: [{ agent: openclaw, polled: [{ after: 3, upTo: 4 }] }] });
    const expired = await store.expire(new Map([[openclaw, 45], [hermes, 45]]), { delivered: new Map([[openclaw, 2]]) });
    assert.deepEqual(expired, { changed: new Map([[openclaw, 1]]), more: false });
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.id), [1, 2, 5]);
    const [, inbox] = await store.loadInboxes();
    // They were delivered to no one: a resume by id from before them is not refused as expired.
    assert.deepEqual({ expired: inbox.expired, purgedId: inbox.purgedId }, { expired: 1, purgedId: 0 });
    assert.deepEqual(await store.expire(new Map()), { changed: new Map(), more: false });
  });

  test(`${name} deletes no more than a step's bound in one retention transaction, oldest first, and says when more is left`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    // openclaw 1..5 and hermes 6..7, delivered; bob 8..9 and cron 10, not; each created at its id.
    const bob = "bob" as AgentName;
    const cron = "cron" as AgentName;
    const to = (id: number) => id <= 5 ? openclaw : id <= 7 ? hermes : id <= 9 ? bob : cron;
    await store.write({
      messages: numbered(10, to),
      inboxes: [
        { agent: openclaw, create: true, deliveredId: 5 },
        { agent: hermes, create: true, deliveredId: 7 },
        { agent: bob, create: true },
        { agent: cron, create: true },
      ],
    });
    const steps = async (step: () => Promise<RetentionStep>) => {
      const taken = [];
      for (let more = true; more;) {
        const { changed, more: left } = await step();
        taken.push({ changed: Object.fromEntries(changed), more: left });
        more = left;
      }
      return taken;
    };
    // In name order, each inbox's oldest 3 at most, none after the one that reaches 3: hermes's 2 and openclaw's
    // oldest 3, then openclaw's last 2.
    assert.deepEqual(await steps(() => store.prune(100, new Map([[openclaw, 10], [hermes, 10]]), 3)), [
      { changed: { hermes: 7, openclaw: 3 }, more: true },
      { changed: { openclaw: 5 }, more: false },
    ]);
    assert.deepEqual(await store.readAfter(openclaw, 0, 10), []);
    assert.deepEqual(await store.readAfter(hermes, 0, 10), []);
    const purged = new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.purgedId]));
    assert.deepEqual([purged.get(openclaw), purged.get(hermes)], [5, 7]);
    // One at a time: bob's oldest (cron waits for the next step), bob's other, then cron's.
    assert.deepEqual(await steps(() => store.expire(new Map([[bob, 100], [cron, 100]]), { limit: 1 })), [
      { changed: { bob: 1 }, more: true },
      { changed: { bob: 1 }, more: true },
      { changed: { cron: 1 }, more: false },
    ]);
    assert.deepEqual([...await store.readAfter(bob, 0, 10), ...await store.readAfter(cron, 0, 10)], []);
    const expired = new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.expired]));
    assert.deepEqual([expired.get(bob), expired.get(cron)], [2, 1]);
  });

  test(`${name} counts the taken messages an expiry step deletes in its bound, and spares those a take is still committing`, async (t) => {
    // The bound counted the untaken ones alone: 200,000 polled above one unread message went in one step.
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    // openclaw 1..6, 1..4 taken by polls (the cursor behind); hermes 7..8; openclaw 9 and 10, taken; each created at
    // its id.
    await store.write({
      messages: numbered(10, (id) => id === 7 || id === 8 ? hermes : openclaw),
      inboxes: [{ agent: openclaw, create: true }, { agent: hermes, create: true }],
    });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, polled: [{ after: 0, upTo: 4 }, { after: 8, upTo: 10 }] }] });
    const steps = [];
    for (let more = true; more;) {
      const step = await store.expire(new Map([[openclaw, 100]]), { limit: 4 });
      steps.push({ changed: Object.fromEntries(step.changed), more: step.more });
      more = step.more;
    }
    // The four taken ones first (to reach the untaken past them), then 5 and 6; 9 and 10, taken, in the second step's
    // share but past its last untaken one, stay, delivered.
    assert.deepEqual(steps, [{ changed: {}, more: true }, { changed: { openclaw: 2 }, more: false }]);
    assert.deepEqual([await store.find(1), await store.find(6)], [undefined, undefined]);
    assert.deepEqual([(await store.find(9))?.id, (await store.find(10))?.id], [9, 10]);
    // Message 7 was handed to a reply wait, whose take is still committing: it stays, and is not counted.
    assert.deepEqual(await store.expire(new Map([[hermes, 100]]), { taking: [7] }), { changed: new Map([[hermes, 1]]), more: false });
    assert.deepEqual((await store.readAfter(hermes, 0, 10)).map((envelope) => envelope.id), [7]);
    const expired = new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.expired]));
    assert.deepEqual([expired.get(openclaw), expired.get(hermes)], [2, 1]);
  });

  test(`${name} moves a cursor over the messages right above it that were taken out of order, up to the first untaken one`, async (t) => {
    // An inbox only asked (its replies taken by the asks) kept every reply: retention deletes up to the cursor.
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    const bob = "bob" as AgentName;
    const cron = "cron" as AgentName;
    // openclaw 1..6: 2, 3 and 5 taken out of order, 1 delivered; hermes 7..8 both taken; bob 9 untaken, 10 taken; cron
    // 11 taken, its cursor in the broker further (11) than stored (0).
    const to = (id: number) => id <= 6 ? openclaw : id <= 8 ? hermes : id <= 10 ? bob : cron;
    await store.write({
      messages: numbered(11, to),
      inboxes: [openclaw, hermes, bob, cron].map((agent) => ({ agent, create: true, deliveredId: agent === openclaw ? 1 : 0 })),
    });
    await store.write({
      messages: [],
      inboxes: [
        { agent: openclaw, polled: [{ after: 1, upTo: 3 }, { after: 4, upTo: 5 }] },
        { agent: hermes, polled: [{ after: 6, upTo: 8 }] },
        { agent: bob, polled: [{ after: 9, upTo: 10 }] },
        { agent: cron, polled: [{ after: 10, upTo: 11 }] },
      ],
    });
    const cursors = async () => new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.deliveredId]));
    assert.deepEqual(await store.passTaken(new Map([[cron, 11]])), new Map([[hermes, 8], [openclaw, 3]]));
    assert.deepEqual(await cursors(), new Map([[bob, 0], [cron, 0], [hermes, 8], [openclaw, 3]]));
    // Nothing moves twice, and nothing was taken from what stays to read.
    assert.deepEqual(await store.passTaken(new Map([[cron, 11]])), new Map());
    assert.deepEqual((await store.readAfter(openclaw, 3, 10)).map((envelope) => envelope.id), [4, 6]);
    assert.deepEqual((await store.loadInboxes()).map((inbox) => inbox.pending), [1, 0, 0, 2]);
    // Once the untaken one before them is read, the run past it goes too.
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 4 }] });
    assert.deepEqual(await store.passTaken(new Map([[cron, 11]])), new Map([[openclaw, 5]]));
    // Their deletion moves the purge mark to the last one a resume would replay, not past it: 4, not 5.
    assert.deepEqual(await store.prune(100, new Map([[openclaw, 5], [hermes, 8]])), { changed: new Map([[openclaw, 4]]), more: false });
    assert.deepEqual((await store.loadInboxes()).map((inbox) => inbox.purgedId), [0, 0, 0, 4]);
  });

  test(`${name} reads an inbox's last messages oldest first, delivered or not, leaving out those a poll took`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({
      messages: [1, 2, 3, 4, 5].map((n) => ({ from: hermes, to: n === 3 ? hermes : openclaw, payload: { n }, createdAt: n })),
      inboxes: [{ agent: openclaw, create: true, deliveredId: 2 }, { agent: hermes, create: true }],
    });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, polled: [{ after: 3, upTo: 4 }] }] });
    assert.deepEqual((await store.readLatest(openclaw, 2)).map((envelope) => envelope.id), [2, 5]);
    assert.deepEqual((await store.readLatest(openclaw, 10)).map((envelope) => envelope.id), [1, 2, 5]);
    assert.deepEqual(await store.readLatest("nobody" as AgentName, 10), []);
    // A page before an id, as a list read a page at a time from the newest asks.
    assert.deepEqual((await store.readLatest(openclaw, 1, 5)).map((envelope) => envelope.id), [2]);
    assert.deepEqual((await store.readLatest(openclaw, 10, 2)).map((envelope) => envelope.id), [1]);
  });

  test(`${name} reads, takes, expires and removes an inbox the same whether its messages are many commits old or new`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    // Past SQLite's index lag: 1..n are in its per-recipient index, n + 1..n + 4 only in the tail.
    // Odd ids and n + 1..n + 4 go to openclaw, the even ones to hermes; each created at its id.
    const n = INDEX_LAG + 100;
    await store.write({
      messages: numbered(n, (id) => id % 2 === 0 ? hermes : openclaw),
      inboxes: [{ agent: openclaw, create: true, deliveredId: n - 10 }, { agent: hermes, create: true }],
    });
    await store.write({ messages: [1, 2, 3, 4].map((k) => ({ from: hermes, to: openclaw, payload: { n: n + k }, createdAt: n + k })), inboxes: [] });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, polled: [{ after: n - 5, upTo: n + 2 }] }] });
    const ids = (envelopes: Array<{ id: number }>) => envelopes.map((envelope) => envelope.id - n);
    assert.deepEqual(ids(await store.readAfter(openclaw, n - 10, 10)), [-9, -7, -5, 3, 4]);
    assert.deepEqual(ids(await store.readAfter(openclaw, n - 10, 2)), [-9, -7]);
    assert.deepEqual(ids(await store.readLatest(openclaw, 3)), [-5, 3, 4]);
    assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === openclaw)!.pending, 5);
    assert.equal(await store.idBefore(openclaw, n + 2), n + 1);
    assert.equal(await store.idBefore(openclaw, n), n - 1);
    assert.deepEqual([...(await store.expire(new Map([[openclaw, n + 4]]))).changed], [[openclaw, 4]]);
    // The taken ones went with the expired around them: (n - 10, n + 3] holds 8 of openclaw's.
    assert.equal((await store.readAfter(openclaw, 0, 2 * n)).length, n / 2 + 4 - 8);
    assert.equal(await store.removeInbox(openclaw), n / 2 + 4 - 8);
    assert.deepEqual(await store.readAfter(openclaw, 0, 2 * n), []);
    assert.equal((await store.readAfter(hermes, 0, 2 * n)).length, n / 2);
  });

  test(`${name} keeps nothing of a failed write, and the next one gets new ids`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({ messages: [{ from: hermes, to: openclaw, payload: { n: 1 }, createdAt: 1 }], inboxes: [{ agent: openclaw, create: true }] });
    // A payload that is no JSON at all cannot be stored (the column is NOT NULL): the whole batch fails.
    await assert.rejects(
      store.write({
        messages: [
          { from: hermes, to: openclaw, payload: { n: 2 }, createdAt: 2 },
          { from: hermes, to: openclaw, payload: undefined as unknown as Payload, createdAt: 3 },
        ],
        inboxes: [{ agent: openclaw, deliveredId: 1 }],
      }),
      (error: unknown) => error instanceof InteropError && error.code === "storage_failed",
    );
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.payload), [{ n: 1 }]);
    assert.deepEqual((await store.loadInboxes()).map((inbox) => inbox.deliveredId), [0], "the failed write's cursor was not kept");
    const [next] = await store.write({ messages: [{ from: hermes, to: openclaw, payload: { n: 4 }, createdAt: 4 }], inboxes: [] });
    assert.ok(next.id > 1);
  });

  test(`${name} gives writes issued together increasing ids in the order they were issued`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open("relaxed");
    await store.write({ messages: [], inboxes: [{ agent: openclaw, create: true }, { agent: hermes, create: true }] });
    const batches = await Promise.all(Array.from({ length: 20 }, (_, n) =>
      store.write({ messages: [{ from: hermes, to: openclaw, payload: { n }, createdAt: n }, { from: hermes, to: hermes, payload: { n }, createdAt: n }], inboxes: [] })));
    const ids = batches.flat().map((envelope) => envelope.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, 40);
    assert.deepEqual(batches.map(([first]) => first.payload), Array.from({ length: 20 }, (_, n) => ({ n })));
  });

  test(`${name} stores each copy of a broadcast for its own recipient, under the id it answers with`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    const shared: Payload = { text: "to all" };
    const recipients = ["a", "b", "c", "d"] as AgentName[];
    const stored = await store.write({
      messages: [
        ...recipients.map((to) => ({ from: hermes, to, payload: shared, createdAt: 1 })),
        { from: hermes, to: openclaw, payload: { text: "alone" }, createdAt: 1 },
        ...recipients.slice(0, 2).map((to) => ({ from: hermes, to, payload: shared, createdAt: 2 })),
      ],
      inboxes: [...recipients, openclaw].map((agent) => ({ agent, create: true })),
    });
    assert.deepEqual(stored.map((envelope) => envelope.to), [...recipients, openclaw, "a", "b"]);
    for (const envelope of stored) assert.deepEqual(await store.find(envelope.id), envelope);
    assert.deepEqual((await store.readAfter("a" as AgentName, 0, 10)).map((envelope) => envelope.id), [stored[0].id, stored[5].id]);
  });

  test(`${name} reads no more messages than their payloads' running total keeps within maxChars, one at least, and says when it cut a read short`, async (t) => {
    // From the oldest (readAfter) or from the newest (readLatest, and deadLetters by their messages' payloads).
    const open = await place(t);
    if (open === undefined) return;
    const a = "a" as AgentName;
    const inboxes = [a, openclaw].map((agent) => ({ agent, create: true }));
    // Each payload 111 characters; a broadcast's copies (a's first and third) share theirs (SQLite's shared_payloads).
    const broadcast = (text: string) => [a, openclaw].map((to) => ({ from: hermes, to, payload: { text }, createdAt: 1 }));
    const first = await open();
    await first.write({ messages: [...broadcast("x".repeat(100)), { from: hermes, to: a, payload: { text: "y".repeat(100) }, createdAt: 1 }], inboxes });
    await first.close();
    // Reopened, what is stored is indexed (SQLite): the reads below go through the index, then the newer rows.
    const store = await open();
    await store.write({ messages: [...broadcast("z".repeat(100)), { from: hermes, to: a, payload: { text: "w".repeat(100) }, createdAt: 1 }], inboxes: [] });
    const read = async (limit: number, maxChars?: number) => {
      const page = await store.readAfter(a, 0, limit, maxChars);
      return { texts: page.map((envelope) => String(envelope.payload.text)[0]), cut: wasCut(page) };
    };
    assert.deepEqual(await read(10), { texts: ["x", "y", "z", "w"], cut: false });
    assert.deepEqual(await read(10, 2 * 111), { texts: ["x", "y"], cut: true });
    assert.deepEqual(await read(10, 3 * 111), { texts: ["x", "y", "z"], cut: true });
    assert.deepEqual(await read(10, 3 * 111 - 1), { texts: ["x", "y"], cut: true });
    assert.deepEqual(await read(10, 1), { texts: ["x"], cut: true }, "one message, however large");
    assert.deepEqual(await read(2, 2 * 111), { texts: ["x", "y"], cut: false }, "full by its count");
    assert.deepEqual(await read(10, 4 * 111), { texts: ["x", "y", "z", "w"], cut: false });
    const latest = async (limit: number, maxChars?: number, beforeId?: number) => {
      const page = await store.readLatest(a, limit, beforeId, maxChars);
      return { texts: page.map((envelope) => String(envelope.payload.text)[0]), cut: wasCut(page) };
    };
    assert.deepEqual(await latest(10), { texts: ["x", "y", "z", "w"], cut: false });
    assert.deepEqual(await latest(10, 2 * 111), { texts: ["z", "w"], cut: true });
    assert.deepEqual(await latest(10, 3 * 111), { texts: ["y", "z", "w"], cut: true });
    assert.deepEqual(await latest(10, 1), { texts: ["w"], cut: true }, "one message, however large");
    assert.deepEqual(await latest(2, 2 * 111), { texts: ["z", "w"], cut: false }, "full by its count");
    assert.deepEqual(await latest(10, 4 * 111), { texts: ["x", "y", "z", "w"], cut: false });
    const [, y, z] = (await store.readAfter(a, 0, 10)).map((envelope) => envelope.id);
    assert.deepEqual(await latest(10, 111, z), { texts: ["y"], cut: true }, "a page before an id");
    // a's letters: each of its messages, and one whose message is gone (counted as no characters).
    for (const envelope of await store.readAfter(a, 0, 10)) await store.addDeadLetter(a, { messageId: envelope.id, reason: "410", parkedAt: 1 });
    await store.addDeadLetter(a, { messageId: 1000, reason: "410", parkedAt: 1 });
    const letters = async (limit: number, maxChars?: number, beforeId?: number) => {
      const page = await store.deadLetters(a, limit, beforeId, maxChars);
      return { ids: page.map((letter) => letter.messageId), cut: wasCut(page) };
    };
    const ids = (await letters(10)).ids;
    assert.equal(ids.length, 5);
    assert.deepEqual(await letters(10, 2 * 111), { ids: ids.slice(2), cut: true });
    assert.deepEqual(await letters(10, 1), { ids: [1000], cut: true }, "a letter without its message holds nothing");
    assert.deepEqual(await letters(3, 2 * 111), { ids: ids.slice(2), cut: false }, "full by its count");
    assert.deepEqual(await letters(10, 4 * 111), { ids, cut: false });
    assert.deepEqual(await letters(10, 111, z), { ids: [y], cut: true }, "a page before an id");
  });

  test(`${name} never moves a cursor back and keeps the last time seen`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    await store.write({ messages: [], inboxes: [{ agent: openclaw, create: true, deliveredId: 5, lastSeen: 100 }] });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 3 }, { agent: hermes, create: true, lastSeen: 50 }] });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, lastSeen: 90 }, { agent: openclaw, deliveredId: 7 }] });
    assert.deepEqual(
      (await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.deliveredId, inbox.lastSeen]),
      [[hermes, 0, 50], [openclaw, 7, 90]],
    );
  });

  test(`${name} moves a broadcast's worth of cursors in one commit, creating the inboxes it lacks`, async (t) => {
    const open = await place(t);
    if (open === undefined) return;
    const store = await open();
    // Names a JSON object would reorder or could trip on: digits only, a key every object inherits, and the
    // punctuation agent names allow.
    const agents = ["7", "10", "constructor", "fan.a", "fan_b", "fan-c", ...Array.from({ length: 94 }, (_, i) => `fan${i}`)] as AgentName[];
    await store.write({ messages: [], inboxes: agents.slice(0, 50).map((agent) => ({ agent, create: true, deliveredId: 500 })) });
    await store.write({ messages: [], inboxes: agents.map((agent, i) => ({ agent, create: true, deliveredId: 400 + 2 * i })) });
    const cursors = new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox.deliveredId]));
    assert.deepEqual(cursors, new Map(agents.map((agent, i) => [agent, Math.max(i < 50 ? 500 : 0, 400 + 2 * i)])));
  });
}
