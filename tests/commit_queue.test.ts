/** The group commit against the real SQLite store: one publisher's bad message fails alone, a broken store fails all. */
import assert from "node:assert/strict";
import { createHook } from "node:async_hooks";
import { type TestContext, test } from "node:test";
import { setImmediate } from "node:timers";
import { Broker } from "../src/broker/broker.ts";
import { CommitQueue } from "../src/broker/commit_queue.ts";
import { InteropError } from "../src/errors.ts";
import type { AgentName, Envelope } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { NewMessage, WriteBatch } from "../src/store/store.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { stepWallClock, withinSeconds } from "./helpers/hand_clock.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/** The real store, noting the size of each batch it is asked to write. */
class RecordingStore extends SqliteStore {
  batches: number[] = [];

  override write(batch: WriteBatch): Promise<Envelope[]> {
    this.batches.push(batch.messages.length);
    return super.write(batch);
  }
}

/** A strict store in a temporary dir, both gone when the test ends. */
function openStore(t: TestContext): RecordingStore {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new RecordingStore(dir.path, "strict");
  t.after(() => store.close());
  return store;
}

const message = (payload: Record<string, unknown>): NewMessage => ({ from: hermes, to: openclaw, payload, createdAt: 1000 });

test("CommitQueue commits every other publisher of a group when the store refuses one publisher's message", async (t) => {
  const store = openStore(t);
  const committed: number[] = [];
  const queue = new CommitQueue(store, (stored) => committed.push(...stored.map((envelope) => envelope.id)));

  // Ten publishers in one turn share a commit; the fourth posts a payload JSON cannot encode (a BigInt).
  const publishes = Array.from({ length: 10 }, (_, n) => queue.append([message(n === 3 ? { n: 10n ** 20n } : { n })]));
  const cursor = queue.update({ agent: openclaw, deliveredId: 0, lastSeen: 2000 });
  const results = await Promise.allSettled(publishes);

  assert.equal(store.batches[0], 10, "all ten were offered as one commit first");
  results.forEach((result, n) => {
    if (n !== 3) return assert.equal(result.status, "fulfilled", `publisher ${n}`);
    assert.equal(result.status, "rejected");
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof InteropError);
    assert.equal(error.code, "invalid_body");
    assert.match(error.message, /^Cannot store the message: its payload cannot be encoded as JSON \(.*BigInt.*\)$/);
  });
  await cursor;
  const stored = await store.readAfter(openclaw, 0, 100);
  assert.deepEqual(stored.map((envelope) => envelope.payload.n), [0, 1, 2, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(committed, stored.map((envelope) => envelope.id), "every stored message was announced once");
  assert.equal((await store.loadInboxes())[0].lastSeen, 2000, "the inbox update of the group was committed too");
});

test("CommitQueue lets a stream's cursor moves ride the next publish's commit instead of making commits of their own", async (t) => {
  const store = openStore(t);
  const queue = new CommitQueue(store);

  // A stream delivering each of five publishes in turn moves its cursor after each commit; the next publish comes
  // some event-loop turns later (its client had to hear of the last one first), when a commit would have gathered.
  for (let n = 0; n < 5; n++) {
    const [stored] = await queue.append([message({ n })]);
    queue.note({ agent: openclaw, deliveredId: stored.id, lastSeen: 2000 + n });
    for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
  }
  await queue.drain();

  // Five publishes and the last cursor's own commit (a commit per cursor move made ten).
  assert.ok(store.batches.length <= 6, `five publishes and their cursor moves took ${store.batches.length} commits`);
  const [inbox] = await store.loadInboxes();
  assert.equal(inbox.deliveredId, 5, "the last cursor was committed by the drain");
  assert.equal(inbox.lastSeen, 2004);
});

test("CommitQueue merges an agent's advisory changes noted between commits, alone or beside a change queued with update()", async (t) => {
  const store = openStore(t);
  const queue = new CommitQueue(store);
  const stored = await queue.append([message({ n: 1 }), message({ n: 2 }), message({ n: 3 })]);
  const [first, second, third] = stored.map((envelope) => envelope.id);

  // Only advisory changes queued: the later cursor wins, the earlier last-seen time stays.
  queue.note({ agent: openclaw, deliveredId: second, lastSeen: 2000 });
  queue.note({ agent: openclaw, deliveredId: first });
  await queue.drain();
  let inboxes = new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox]));
  assert.equal(inboxes.get(openclaw)?.deliveredId, second);
  assert.equal(inboxes.get(openclaw)?.lastSeen, 2000);

  // An inbox change queued for the same commit: each agent's advisory changes merge into it.
  const updated = queue.update({ agent: hermes, create: true, lastSeen: 3000 });
  queue.note({ agent: hermes, deliveredId: 7 });
  queue.note({ agent: openclaw, deliveredId: third, lastSeen: 2500 });
  await updated;
  await queue.drain();
  inboxes = new Map((await store.loadInboxes()).map((inbox) => [inbox.agent, inbox]));
  assert.equal(inboxes.get(hermes)?.lastSeen, 3000, "the update() was committed");
  assert.equal(inboxes.get(hermes)?.deliveredId, 7, "with the advisory cursor of the same agent");
  assert.equal(inboxes.get(openclaw)?.deliveredId, third);
  assert.equal(inboxes.get(openclaw)?.lastSeen, 2500);
});

test("CommitQueue commits a cursor move on its own when no publish comes to carry it", async (t) => {
  const store = openStore(t);
  let committed!: () => void;
  const cursorCommitted = new Promise<void>((resolve) => committed = resolve);
  const queue = new CommitQueue(store);
  const write = store.write.bind(store);
  store.write = async (batch) => {
    const stored = await write(batch);
    if (batch.inboxes.length > 0) committed();
    return stored;
  };

  const [stored] = await queue.append([message({ n: 1 })]);
  queue.note({ agent: openclaw, deliveredId: stored.id });
  await cursorCommitted;

  assert.equal((await store.loadInboxes())[0].deliveredId, stored.id, "committed without a drain or a publish");
});

test("CommitQueue commits a lone cursor move within its delay though the wall clock is set back an hour meanwhile", async (t) => {
  const store = openStore(t);
  const queue = new CommitQueue(store);
  const [stored] = await queue.append([message({ n: 1 })]);
  const cursorCommitted = Promise.withResolvers<void>();
  const write = store.write.bind(store);
  store.write = async (batch) => {
    const written = await write(batch);
    if (batch.inboxes.length > 0) cursorCommitted.resolve();
    return written;
  };

  queue.note({ agent: openclaw, deliveredId: stored.id });
  // The advisory delay is a duration, not a time of day.
  stepWallClock(t, -3_600_000);
  await withinSeconds(t, cursorCommitted.promise, "the cursor was still waiting");
  assert.equal((await store.loadInboxes())[0].deliveredId, stored.id);
});

test("CommitQueue sets its advisory timer once for a run of commits, not once per commit, and still commits the last cursor on its own", async (t) => {
  const store = openStore(t);
  let cursorAlone!: (batch: WriteBatch) => void;
  const cursorCommitted = new Promise<WriteBatch>((resolve) => cursorAlone = resolve);
  const write = store.write.bind(store);
  store.write = (batch) => {
    if (batch.messages.length === 0) cursorAlone(batch);
    return write(batch);
  };
  const queue = new CommitQueue(store);
  let timers = 0;
  const hook = createHook({ init: (_id, type) => void (type === "Timeout" && timers++) });

  // A stream delivering each commit's message notes its cursor, which the next publish's commit carries.
  let last = 0;
  hook.enable();
  try {
    for (let n = 0; n < 20; n++) {
      const [stored] = await queue.append([message({ n })]);
      queue.note({ agent: openclaw, deliveredId: last = stored.id });
    }
  } finally {
    hook.disable();
  }
  // One per commit made 20 (a timer set and cleared per commit cost Deno 2-3.5 µs).
  assert.ok(timers <= 2, `${timers} timers for 20 commits`);
  const batch = await cursorCommitted;
  assert.deepEqual(batch.inboxes.map((inbox) => [inbox.agent, inbox.deliveredId]), [[openclaw, last]]);
});

test("CommitQueue fails every publisher of a group at once when the storage itself fails", async (t) => {
  const store = openStore(t);
  const queue = new CommitQueue(store);

  const publishes = Array.from({ length: 5 }, (_, n) => queue.append([message({ n })]));
  // The database goes away under the queue, as a failing disk takes it: nothing can be committed.
  await store.close();
  const results = await Promise.allSettled(publishes);

  assert.deepEqual(store.batches, [5], "one attempt for the group, not one per publisher");
  for (const result of results) {
    assert.equal(result.status, "rejected");
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof InteropError);
    assert.equal(error.code, "storage_failed");
  }
});

test("CommitQueue keeps two takes of one inbox in one commit apart: the messages between them stay pending", async (t) => {
  const store = openStore(t);
  const queue = new CommitQueue(store);
  await queue.append(Array.from({ length: 12 }, (_, n) => message({ n })));
  // A poll takes 7 and 8 while an ask's reply, 12, is taken out of order; both ride the same commit.
  await Promise.all([
    queue.update({ agent: openclaw, deliveredId: 8, polled: [{ after: 6, upTo: 8 }] }),
    queue.update({ agent: openclaw, polled: [{ after: 11, upTo: 12 }] }),
  ]);
  // Merged into one span (6, 12], 9 to 11 were marked taken and never handed out.
  assert.deepEqual((await store.readAfter(openclaw, 8, 100)).map((envelope) => envelope.id), [9, 10, 11]);
});

/** A queue that hands each commit to a stream of openclaw, as the broker does: the stream's cursor is noted. */
function deliveringQueue(store: SqliteStore): CommitQueue {
  const queue: CommitQueue = new CommitQueue(store, (stored) => {
    if (stored.length > 0) queue.note({ agent: openclaw, deliveredId: stored[stored.length - 1].id });
  });
  return queue;
}

test("CommitQueue.drain() commits the cursors that the commit it waited for noted while delivering, before the store closes", async (t) => {
  const store = openStore(t);
  const queue = deliveringQueue(store);

  const published = queue.append([message({ n: 1 })]);
  await queue.drain();

  const [stored] = await published;
  assert.deepEqual((await store.loadInboxes()).map((inbox) => inbox.deliveredId), [stored.id], "the cursor waits for a timer that a closed store would fail");
});

test("CommitQueue.drain() called while a commit runs commits the cursors that commit notes", async (t) => {
  const store = openStore(t);
  const queue = deliveringQueue(store);
  const write = store.write.bind(store);
  const running = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  store.write = async (batch) => {
    running.resolve();
    await release.promise;
    return write(batch);
  };

  const published = queue.append([message({ n: 1 })]);
  await running.promise;
  const drained = queue.drain();
  release.resolve();
  await drained;

  const [stored] = await published;
  assert.deepEqual((await store.loadInboxes()).map((inbox) => inbox.deliveredId), [stored.id]);
});

test("CommitQueue.drain() ends while another client keeps publishing, each commit bringing the cursors of the last", async (t) => {
  const store = openStore(t);
  const queue = deliveringQueue(store);
  // A publisher that publishes again as soon as it hears back, for at most `limit` publishes.
  const limit = 300;
  let drained = false;
  const publisher = (async () => {
    let count = 0;
    while (!drained && count < limit) {
      await queue.append([message({ count })]);
      count++;
    }
    return count;
  })();
  t.after(() => void (drained = true));

  await queue.append([message({ first: true })]);
  await queue.drain();
  drained = true;

  const published = await publisher;
  assert.ok(published < limit, `the drain lasted as long as the publisher (${published} publishes)`);
});

/** The real store, whose reads, once done, hand their rows back only when `release` is called. */
class HeldReadStore extends SqliteStore {
  reading = Promise.withResolvers<void>();
  #release = Promise.withResolvers<void>();

  release(): void {
    this.#release.resolve();
  }

  override async readAfter(agent: AgentName, after: number, limit: number): Promise<Envelope[]> {
    const rows = await super.readAfter(agent, after, limit);
    this.reading.resolve();
    await this.#release.promise;
    return rows;
  }
}

test("a poll that read an agent's inbox before the agent was removed does not create its inbox again when it marks its messages delivered", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new HeldReadStore(dir.path, "strict");
  const broker = await Broker.open(testBrokerOptions(store, dir.path));
  let closed = false;
  t.after(async () => {
    store.release();
    if (!closed) await broker.close();
  });
  await broker.publish(hermes, openclaw, { n: 1 });

  const polled = broker.poll(openclaw, 10);
  await store.reading.promise;
  assert.equal(await broker.removeAgent(openclaw, true), 1);
  store.release();
  assert.equal((await polled).length, 1, "the poll had read the message before the removal");
  await broker.close();
  closed = true;

  const reopened = new SqliteStore(dir.path, "strict");
  t.after(() => reopened.close());
  assert.deepEqual((await reopened.loadInboxes()).map((inbox) => inbox.agent), [hermes]);
});
