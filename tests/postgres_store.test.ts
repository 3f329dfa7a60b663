/** What only the PostgreSQL store does: migrate once, outlive an outage, resolve a lost COMMIT, share its database. */
import assert from "node:assert/strict";
import process from "node:process";
import { type TestContext, test } from "node:test";
import postgres from "postgres";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { AwaitedRecords } from "../src/store/postgres_awaited.ts";
import { Registration } from "../src/store/postgres_registry.ts";
import { PostgresInboxes } from "../src/store/postgres_shared.ts";
import { CommitInDoubt, type Durability } from "../src/store/store.ts";
import { migrate, SCHEMA_VERSION } from "../src/store/postgres_schema.ts";
import { waitFor } from "./helpers/broker.ts";
import { holdCommits, releaseCommits, sharedPostgres } from "./helpers/postgres.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const cluster = sharedPostgres();

/** A fresh database, an admin connection to it, and `open` for stores on it (all closed after the test). */
async function setUp(t: TestContext) {
  const server = await cluster(t);
  if (server === undefined) return undefined;
  const url = await server.createDatabase();
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const stores: PostgresStore[] = [];
  t.after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await admin.end();
  });
  const warnings: string[] = [];
  const open = async (durability: Durability = "strict") => {
    const store = await PostgresStore.open({
      url,
      durability,
      claimant: { pid: process.pid, host: "test", version: "test" },
      warn: (message) => warnings.push(message),
    });
    stores.push(store);
    return store;
  };
  return { server, url, admin, open, warnings };
}

const message = (n: number) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: n });

test("brokers that start together migrate the schema once", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const clients = Array.from({ length: 4 }, () => postgres(setup.url, { max: 1, onnotice: () => {} }));
  t.after(() => Promise.all(clients.map((sql) => sql.end())));
  const applied = await Promise.all(clients.map((sql) => migrate(sql)));
  const versions = Array.from({ length: SCHEMA_VERSION }, (_, index) => index + 1);
  assert.deepEqual(applied.flat().sort((a, b) => a - b), versions);
  assert.deepEqual(
    (await setup.admin`SELECT version FROM interop_migrations ORDER BY version`).map((row) => row.version),
    versions,
  );
  // A database a newer interop migrated is refused, not misread.
  await setup.admin`INSERT INTO interop_migrations (version, name) VALUES (${SCHEMA_VERSION + 1}, 'from the future')`;
  await assert.rejects(
    setup.open(),
    new RegExp(`schema is version ${SCHEMA_VERSION + 1}, newer than this interop's \\(${SCHEMA_VERSION}\\): run a newer interop`),
  );
});

test("PostgresStore refuses a database whose sessions run with synchronous_commit=off, unless relaxed", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  await setup.admin.unsafe(`ALTER DATABASE ${new URL(setup.url).pathname.slice(1)} SET synchronous_commit = off`);
  await assert.rejects(setup.open(), (error: unknown) =>
    error instanceof InteropError && error.code === "unsafe_durability" &&
    error.message === `PostgreSQL at ${setup.url} runs with synchronous_commit=off: a crash of the server or its machine can lose ` +
        "messages the broker acknowledged; set synchronous_commit=on in postgresql.conf, or pass --durability relaxed to accept the risk");
  const store = await setup.open("relaxed");
  assert.match(setup.warnings[0], /runs with synchronous_commit=off: .* \(--durability relaxed\)$/);
  await store.write({ messages: [message(1)], inboxes: [{ agent: openclaw, create: true }] });
});

test("PostgresStore shows its URL with the password as *** and the user (a role name) as given, in its location and its messages", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  // The test server trusts 127.0.0.1: the password is sent and not checked.
  const url = setup.url.replace("://postgres@", "://postgres:s3cret@");
  const shown = setup.url.replace("://postgres@", "://postgres:***@");
  await setup.admin.unsafe(`ALTER DATABASE ${new URL(setup.url).pathname.slice(1)} SET synchronous_commit = off`);
  const warnings: string[] = [];
  const open = (durability: Durability) =>
    PostgresStore.open({ url, durability, claimant: { pid: process.pid, host: "test", version: "test" }, warn: (text) => warnings.push(text) });
  await assert.rejects(open("strict"), (error: unknown) =>
    error instanceof InteropError && error.code === "unsafe_durability" && error.message.startsWith(`PostgreSQL at ${shown} runs with`));
  const store = await open("relaxed");
  t.after(() => store.close());
  assert.equal(store.location, shown);
  assert.ok(warnings[0].startsWith(`PostgreSQL at ${shown} runs with`), warnings[0]);
});

test("PostgresStore answers storage_unavailable while the server is stopped and serves again once it is back", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const store = await setup.open();
  await store.write({ messages: [message(1)], inboxes: [{ agent: openclaw, create: true }] });
  await setup.server.stop();
  const isUnavailable = (error: unknown) =>
    error instanceof InteropError && error.code === "storage_unavailable" && error.retryAfter === 1;
  await assert.rejects(store.write({ messages: [message(2)], inboxes: [{ agent: openclaw, create: true }] }), isUnavailable);
  assert.ok(store.outage !== undefined);
  await assert.rejects(store.readAfter(openclaw, 0, 10), isUnavailable);
  await setup.server.start();
  await waitFor(() => store.outage === undefined, 10_000, "the store to be back");
  const [third] = await store.write({ messages: [message(3)], inboxes: [{ agent: openclaw, create: true }] });
  assert.ok(third.id > 1);
  assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.payload), [{ n: 1 }, { n: 3 }]);
  assert.match(setup.warnings.join("\n"), /cannot be reached .*: answering 503 until it is back\n.* is back: serving again/);
});

test("the registry tells its listeners when an outage ends, once calls are served again", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  await setup.open();
  const registry = await Registration.connect({ url: setup.url, location: "test", durability: "strict", warn: () => {} });
  t.after(() => registry.close());
  const outageWhenTold: Array<InteropError | undefined> = [];
  registry.onBack(() => outageWhenTold.push(registry.outage));
  registry.fail(new Error("connection lost"));
  assert.ok(registry.outage !== undefined);
  await waitFor(() => outageWhenTold.length > 0, 10_000, "the outage to end");
  assert.deepEqual(outageWhenTold, [undefined], "told once, with the outage over");
});

test("a shared store's watch wakes every stream and waiter when an outage ends (the broker ignored wake-ups meanwhile)", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const sql = postgres(setup.url, { max: 2, onnotice: () => {} });
  t.after(() => sql.end());
  await setup.open();
  let back: (() => void) | undefined;
  const inboxes = new PostgresInboxes({
    sql,
    broker: "this broker",
    awaited: new AwaitedRecords(),
    onBack: (listener) => (back = listener),
    read: (_what, work) => work(),
    transaction: (_what, work) => sql.begin(work) as never,
  });
  const woken: Array<AgentName[] | undefined> = [];
  await inboxes.watch((agents) => woken.push(agents), () => {}, () => {});
  t.after(() => inboxes.close());
  woken.length = 0;
  back!();
  assert.deepEqual(woken, [undefined]);
});

test("PostgresStore settles a write whose COMMIT lost its answer by asking the server, failing the others fast meanwhile", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const store = await setup.open();
  try {
    await holdCommits(setup.url);
    const writing = store.write({ messages: [message(1)], inboxes: [{ agent: openclaw, create: true }] });
    await waitFor(async () =>
      (await setup.admin`SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).length === 1, 10_000, "a COMMIT held");
    await releaseCommits(setup.url, false);
    await setup.server.stop();

    const inDoubt = await within(writing.then(() => assert.fail("the answer was lost"), (error: unknown) => error), "the write");
    assert.ok(inDoubt instanceof CommitInDoubt);
    assert.equal(inDoubt.code, "storage_unavailable");
    await within(
      assert.rejects(store.write({ messages: [message(2)], inboxes: [{ agent: openclaw, create: true }] }), (error: unknown) =>
        error instanceof InteropError && !(error instanceof CommitInDoubt) && error.code === "storage_unavailable"),
      "a write after the one in doubt",
    );

    await setup.server.start();
    const [stored] = (await inDoubt.outcome)!;
    assert.equal(stored.id, 1);
    await waitFor(() => store.outage === undefined, 10_000, "the store to be back");
    await store.write({ messages: [message(3)], inboxes: [{ agent: openclaw, create: true }] });
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.payload), [{ n: 1 }, { n: 3 }]);
  } finally {
    if (setup.server.pid() === undefined) await setup.server.start();
    await releaseCommits(setup.url);
  }
});

/** `promise`, or a failure naming `what` if it takes more than 2 s (what it must not do). */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than 2 s`)), 2000)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

test("PostgresStores on one database each register, write with one id sequence and wake each other", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const [a, b] = [await setup.open(), await setup.open()];
  const woken: Array<string[] | undefined> = [];
  await b.shared.watch((agents) => woken.push(agents), () => {}, () => {});
  const [first] = await a.write({ messages: [message(1)], inboxes: [{ agent: openclaw, create: true }] });
  await waitFor(() => woken.some((agents) => agents?.[0] === openclaw), 10_000, "b to be woken by a's commit");
  const [second] = await b.write({ messages: [message(2)], inboxes: [{ agent: openclaw, create: true }] });
  assert.deepEqual([first.id, second.id], [1, 2]);
  assert.deepEqual((await a.readAfter(openclaw, 0, 10)).map((envelope) => envelope.payload), [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(woken.filter((agents) => agents !== undefined), [[openclaw]], "b is not woken by its own commit");
  const chain = await setup.admin<{ id: number; prev_id: number }[]>`SELECT id::int, prev_id::int FROM interop_messages ORDER BY id`;
  assert.deepEqual(chain.map((row) => [row.id, row.prev_id]), [[1, 0], [2, 1]]);
  const brokers = await setup.admin`SELECT count(*)::int AS n FROM interop_brokers WHERE stopped_at IS NULL`;
  assert.equal(brokers[0].n, 2);
});
