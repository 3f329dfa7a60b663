/** `interop migrate`: a SQLite broker's store moved into PostgreSQL, served on from there, checked on a second run. */
import assert from "node:assert/strict";
import { readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type TestContext, test } from "node:test";
import postgres from "postgres";
import { withFileLock } from "../../src/file_lock.ts";
import { DATABASE_FILE } from "../../src/store/sqlite_open.ts";
import { brokerPool, freePort, publish, waitFor } from "../helpers/broker.ts";
import { rpc } from "../helpers/a2a.ts";
import { type CliResult, runCli, tempDir } from "../helpers/cli.ts";
import { sharedPostgres } from "../helpers/postgres.ts";
import { openSse } from "../helpers/sse.ts";
import { bearer, createToken, revokeTokens } from "../helpers/tokens.ts";

const cluster = sharedPostgres();

/** A database of its own, and brokers (SQLite or on it) stopped after the test. */
async function setUp(t: TestContext) {
  const server = await cluster(t);
  if (server === undefined) return undefined;
  const url = await server.createDatabase();
  // Registered first: a test's after hooks run in the order registered, and the brokers must stop before their dirs go.
  const start = brokerPool(t);
  const dirs: Array<{ cleanup(): void }> = [];
  t.after(() => {
    for (const dir of dirs) dir.cleanup();
  });
  const dataDir = () => {
    const dir = tempDir("interop-migrate-");
    dirs.push(dir);
    return dir.path;
  };
  return { url, start, dataDir, anotherDatabase: () => server.createDatabase() };
}

const migrate = (from: string, to: string, json = true) => runCli(["migrate", "--from", from, "--to", to, ...(json ? ["--json"] : [])]);
const peek = async (url: string, agent: string) =>
  ((await (await fetch(`${url}/poll?agent=${agent}&peek=1&limit=500`)).json()) as Array<{ interop: { id: number } }>)
    .map((message) => message.interop.id);
const json = async (response: Response | Promise<Response>) => await (await response).json();

test("interop migrate moves messages, cursors, polled marks, dead letters, keys, replies and cancels, and a broker on PostgreSQL serves on", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  const sqlite = await setup.start({ dataDir: dir, args: ["--agents", "hermes,openclaw,leo,bob"] });
  // Delivered: 1 and 2 reach a stream.
  const stream = await openSse(`${sqlite.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  for (const n of [1, 2]) await publish(sqlite.url, "hermes", "openclaw", { n });
  assert.deepEqual((await stream.take(2)).map((event) => event.id), ["1", "2"]);
  stream.close();
  // Until the broker sees the stream gone, it would take the next messages too.
  await waitFor(async () => (await json(fetch(`${sqlite.url}/status`))).streams === 0, 10_000, "the stream to close");
  // Polled: 3 taken by a poll; 4 and 5 dead-lettered while they wait, which takes them out of order (polled marks
  // above the cursor), 5 acknowledged; 6 keyed.
  for (const n of [3, 4, 5]) await publish(sqlite.url, "hermes", "openclaw", { n });
  assert.deepEqual((await json(fetch(`${sqlite.url}/poll?agent=openclaw&limit=1`))).map((m: { n: number }) => m.n), [3]);
  for (const id of [4, 5]) {
    const parked = await fetch(`${sqlite.url}/dead-letters?agent=openclaw`, { method: "POST", body: JSON.stringify({ id, reason: "refused" }) });
    assert.equal(parked.status, 200, await parked.text());
  }
  const acknowledged = await fetch(`${sqlite.url}/dead-letters/acknowledge?agent=openclaw`, { method: "POST", body: '{"ids":[5]}' });
  assert.deepEqual(await acknowledged.json(), { acknowledged: [5], dead_letters: 1 });
  const keyed = await json(publish(sqlite.url, "hermes", "openclaw", { n: 6 }, { "idempotency-key": "k1" }));
  // Replied: leo takes a question and answers it into hermes's inbox.
  const question = await json(publish(sqlite.url, "hermes", "leo", { q: "ping" }));
  await fetch(`${sqlite.url}/poll?agent=leo`);
  const reply = await json(fetch(`${sqlite.url}/broadcast?from=leo&reply_to=${question.id}`, { method: "POST", body: '{"a":"pong"}' }));
  // Cancelled: an A2A task withdrawn before bob read it.
  const task = await rpc(sqlite.url, "bob", undefined, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "never mind" }] },
    configuration: { returnImmediately: true },
  });
  const taskId = (task.body.result!.task as { id: string }).id;
  assert.equal((await rpc(sqlite.url, "bob", undefined, "CancelTask", { id: taskId })).body.error, undefined);
  const pending = { openclaw: await peek(sqlite.url, "openclaw"), hermes: await peek(sqlite.url, "hermes"), bob: await peek(sqlite.url, "bob") };
  assert.deepEqual(pending, { openclaw: [keyed.id], hermes: [reply.id], bob: [] });
  const highest = (await json(fetch(`${sqlite.url}/status`))).last_id;
  assert.equal((await sqlite.stop()).code, 0);
  // A reason an older interop stored with a NUL (what a receiver said), which PostgreSQL's text cannot hold: before,
  // the whole copy failed on it, naming no row.
  const file = new DatabaseSync(join(dir, DATABASE_FILE));
  file.prepare("UPDATE dead_letters SET reason = ? WHERE message_id = 4").run("refused\0here");
  file.close();

  const first = await migrate(dir, setup.url);
  assert.equal(first.code, 0, first.stderr);
  const copied = JSON.parse(first.stdout);
  // Two keys: k1, and the one the A2A task's message is stored with.
  const counts = { messages: highest, dead_letters: 2, keys: 2, withdrawn: 1, highest_id: highest, tokens: 0, tokens_copied: 0 };
  assert.deepEqual({ ...copied, inboxes: undefined }, {
    action: "copied",
    from: dir,
    to: setup.url,
    ...counts,
    inboxes: undefined,
  });
  assert.ok(copied.inboxes >= 4, `inboxes: ${copied.inboxes}`);
  const again = await migrate(dir, setup.url, false);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(
    again.stdout,
    `checked (already there, nothing copied) ${dir} into ${setup.url}: ${highest} messages, ${copied.inboxes} inboxes, ` +
      `2 dead letters, 2 idempotency keys, 1 withdrawn, highest id ${highest}, 0 tokens ` +
      `(0 copied; brokers on the database read their tokens from it); ${dir} is marked moved: a SQLite broker and ` +
      `interop token refuse it (remove ${join(dir, "moved.json")} to take it back)\n`,
  );

  const pg = await setup.start({ args: ["--database-url", setup.url] });
  const served = await openSse(`${pg.url}/subscribe?agent=openclaw`);
  t.after(() => served.close());
  assert.deepEqual((await served.take(1)).map((event) => Number(event.id)), pending.openclaw);
  const retried = await json(publish(pg.url, "hermes", "openclaw", { n: 6 }, { "idempotency-key": "k1" }));
  assert.equal(retried.id, keyed.id, "the retry found the first publish");
  const fresh = await json(publish(pg.url, "hermes", "openclaw", { n: 7 }));
  assert.equal(fresh.id, highest + 1, "a new id above the old highest");
  assert.deepEqual((await served.take(1)).map((event) => Number(event.id)), [fresh.id], "nothing delivered before comes again");
  served.close();
  assert.deepEqual((await json(fetch(`${pg.url}/poll?agent=hermes`))).map((m: { a: string }) => m.a), ["pong"]);
  assert.deepEqual(await peek(pg.url, "bob"), []);
  const [letter] = await json(fetch(`${pg.url}/dead-letters?agent=openclaw`));
  // Deno's node:sqlite binds a string only up to its NUL: there the row holds "refused", on Node the NUL, written out.
  assert.deepEqual([letter.id, letter.reason.replace("\\u0000here", "")], [4, "refused"]);
  if (!("Deno" in globalThis)) assert.equal(letter.reason, "refused\\u0000here");
  const letters = await json(fetch(`${pg.url}/dead-letters?agent=openclaw&acknowledged=1`));
  assert.deepEqual(letters.map((l: { id: number; acknowledged_at: string | null }) => [l.id, l.acknowledged_at !== null]), [[4, false], [5, true]]);
  const openclaw = (await json(fetch(`${pg.url}/status`))).agents.openclaw;
  assert.equal(openclaw.dead_letters, 1, "the acknowledged letter is not counted");
  assert.equal((await pg.stop()).code, 0);

  const third = await migrate(dir, setup.url);
  assert.equal(third.code, 0, third.stderr);
  assert.deepEqual(JSON.parse(third.stdout), { ...copied, action: "checked" }, "the same counts, nothing copied");
});

test("interop migrate copies a broadcast's payload, stored once on SQLite, into each of its copies", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  const sqlite = await setup.start({ dataDir: dir, args: ["--agents", "hermes,openclaw,leo"] });
  const text = "x".repeat(5000);
  const sent = await json(fetch(`${sqlite.url}/broadcast?from=hermes`, { method: "POST", body: JSON.stringify({ text }) }));
  assert.deepEqual(sent.to, ["openclaw", "leo"]);
  assert.equal((await sqlite.stop()).code, 0);
  const copied = await migrate(dir, setup.url);
  assert.equal(copied.code, 0, copied.stderr);
  const pg = await setup.start({ args: ["--database-url", setup.url] });
  for (const agent of ["openclaw", "leo"]) {
    assert.deepEqual((await json(fetch(`${pg.url}/poll?agent=${agent}`))).map((m: { text: string }) => m.text), [text], agent);
  }
  assert.equal((await pg.stop()).code, 0);
});

test("interop migrate moves a store larger than a page a page at a time, showing its progress, and checks it the same way", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  const sqlite = await setup.start({ dataDir: dir, args: ["--agents", "hermes,openclaw"] });
  // 20 messages of ~1 MiB and 2 small ones: more characters than a page holds (16 Mi).
  const big = (n: number) => ({ n, text: `${n}`.padEnd(1_000_000, "x") });
  const sent: Array<{ id: number; n: number; chars: number }> = [];
  for (let n = 1; n <= 22; n++) {
    const body = n === 1 || n === 22 ? { n } : big(n);
    const response = await publish(sqlite.url, "hermes", "openclaw", body);
    assert.equal(response.status, 200, await response.clone().text());
    sent.push({ id: (await response.json()).id, n, chars: JSON.stringify(body).length });
  }
  assert.equal((await sqlite.stop()).code, 0);

  const copied = await migrate(dir, setup.url);
  assert.equal(copied.code, 0, copied.stderr);
  assert.equal(JSON.parse(copied.stdout).messages, 22);
  // One line each tenth passed, none for the end (the counts say it).
  assert.match(copied.stderr, /^(interop migrate: copying messages, \d+ of 22 \(\d+ %\)\n)+$/);
  const sql = postgres(setup.url, { max: 1, onnotice: () => {} });
  t.after(() => sql.end({ timeout: 1 }));
  const stored = await sql<{ id: string; chars: number }[]>`SELECT id, length(payload) AS chars FROM interop_messages ORDER BY id`;
  assert.deepEqual(stored.map((row) => ({ id: Number(row.id), chars: row.chars })), sent.map(({ id, chars }) => ({ id, chars })));
  const checked = await migrate(dir, setup.url);
  assert.equal(checked.code, 0, checked.stderr);
  assert.equal(JSON.parse(checked.stdout).action, "checked");
  assert.match(checked.stderr, /^(interop migrate: checking messages, \d+ of 22 \(\d+ %\)\n)+$/);
});

test("interop migrate copies tokens.json's tokens (ids, hashes, admin flags, times) once; a token revoked in the database since stays revoked", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  const hermes = await createToken(dir, "hermes");
  const admin = await createToken(dir, "ops", { admin: true });
  await createToken(dir, "leo");
  await revokeTokens(dir, "leo");
  const sqlite = await setup.start({ dataDir: dir });
  assert.equal((await publish(sqlite.url, "hermes", "openclaw", { n: 1 }, bearer(hermes))).status, 200);
  assert.equal((await sqlite.stop()).code, 0);
  const inFile = JSON.parse((await runCli(["token", "list", "--json", "--data-dir", dir])).stdout);

  const first = await migrate(dir, setup.url);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual([JSON.parse(first.stdout).tokens, JSON.parse(first.stdout).tokens_copied], [2, 2]);
  const listed = await runCli(["token", "list", "--json", "--database-url", setup.url]);
  assert.deepEqual(JSON.parse(listed.stdout), inFile, "the same ids, agents, admin flags and times");
  const pg = await setup.start({ args: ["--database-url", setup.url] });
  assert.equal((await fetch(`${pg.url}/poll?agent=openclaw`)).status, 401, "tokens on");
  assert.equal((await fetch(`${pg.url}/poll?agent=hermes`, { headers: bearer(hermes) })).status, 200);
  assert.equal((await fetch(`${pg.url}/metrics`, { headers: bearer(admin) })).status, 200, "still an admin token");
  await revokeTokens(setup.url, "hermes");
  assert.equal((await pg.stop()).code, 0);

  const again = await migrate(dir, setup.url);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual([JSON.parse(again.stdout).action, JSON.parse(again.stdout).tokens, JSON.parse(again.stdout).tokens_copied], ["checked", 2, 0]);
  const after = JSON.parse((await runCli(["token", "list", "--json", "--database-url", setup.url])).stdout);
  assert.deepEqual(after.map((token: { agent: string }) => token.agent), ["ops"], "hermes's token stays revoked");
});

test("interop migrate of a data dir whose tokens were all revoked keeps tokens on in the database", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  await createToken(dir, "hermes");
  await revokeTokens(dir, "hermes");
  assert.equal((await (await setup.start({ dataDir: dir })).stop()).code, 0);
  const migrated = await migrate(dir, setup.url);
  assert.equal(migrated.code, 0, migrated.stderr);
  const pg = await setup.start({ args: ["--database-url", setup.url] });
  assert.equal((await fetch(`${pg.url}/poll?agent=hermes`)).status, 401);
});

test("interop migrate reads tokens.json once a change of it under way is done: a token revoked meanwhile is not copied", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const admin = postgres(setup.url, { max: 1, onnotice: () => {} });
  t.after(() => admin.end({ timeout: 1 }));
  const dir = setup.dataDir();
  await createToken(dir, "hermes");
  const leaver = await createToken(dir, "leaver");
  assert.equal((await (await setup.start({ dataDir: dir })).stop()).code, 0);
  const file = join(dir, "tokens.json");
  let migrated: Promise<CliResult> | undefined;
  // A revoke as `interop token revoke` makes it, under the list's lock, while migrate has connected to the database:
  // before, it had read the list already, and copied the revoked token, which then worked on the database's brokers.
  await withFileLock(file, async () => {
    migrated = migrate(dir, setup.url);
    await waitFor(async () =>
      (await admin`SELECT 1 FROM pg_stat_activity WHERE application_name = 'interop migrate'`).length > 0, 30_000, "migrate to connect");
    const { tokens } = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(`${file}.test`, JSON.stringify({ tokens: tokens.filter((token: { agent: string }) => token.agent !== "leaver") }));
    renameSync(`${file}.test`, file);
  });
  const result = await migrated!;
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([JSON.parse(result.stdout).tokens, JSON.parse(result.stdout).tokens_copied], [1, 1]);
  const pg = await setup.start({ args: ["--database-url", setup.url] });
  assert.equal((await fetch(`${pg.url}/poll?agent=leaver`, { headers: bearer(leaver) })).status, 401, "the revoked token works");
});

test("interop migrate refuses while a broker holds the data dir or runs on the database, and refuses another store", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const [one, two] = [setup.dataDir(), setup.dataDir()];
  const brokerOne = await setup.start({ dataDir: one });
  const brokerTwo = await setup.start({ dataDir: two });
  await publish(brokerOne.url, "hermes", "openclaw", { from: "one" });
  await publish(brokerTwo.url, "leo", "openclaw", { from: "two" });
  const held = await migrate(two, setup.url);
  assert.equal(held.code, 6);
  assert.equal(held.stderr, `error: Data dir ${two} is in use by the interop broker with pid ${brokerTwo.pid} on port ${brokerTwo.port}: stop it first\n`);
  await brokerOne.stop();
  await brokerTwo.stop();
  assert.equal((await migrate(one, setup.url)).code, 0);

  const pg = await setup.start({ args: ["--database-url", setup.url] });
  const live = await migrate(one, setup.url);
  assert.equal(live.code, 6);
  assert.match(live.stderr, new RegExp(`^error: Database ${setup.url} is in use by an interop broker: pid ${pg.pid} on \\S+ \\(127\\.0\\.0\\.1:${pg.port}\\); stop it first`));
  await pg.stop();

  const other = await migrate(two, setup.url);
  assert.equal(other.code, 1);
  assert.match(
    other.stderr,
    new RegExp(
      `^error: Database ${setup.url} holds another store than data dir ${two}: it holds the store interop migrate moved ` +
        `from another data dir \\(store [\\w-]+, not [\\w-]+\\); migrate into an empty database\n$`,
    ),
  );
});

/** The store identity of a SQLite broker's data dir, as its answers name it. */
async function storeOf(url: string): Promise<string> {
  return (await json(fetch(`${url}/status`))).store_id;
}

// Red team 54: the database took an identity of its own, so a listener whose last handled id was the SQLite store's
// was read from the cursor, past what the SQLite broker had written to its stream but the listener never handled.
test("a client resuming by an id of the SQLite store (listen names its store) resumes by it on the database it moved to", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  const sqlite = await setup.start({ dataDir: dir, args: ["--agents", "hermes,bob"] });
  const sqliteStore = await storeOf(sqlite.url);
  const stream = await openSse(`${sqlite.url}/subscribe?agent=bob`);
  t.after(() => stream.close());
  for (let n = 1; n <= 5; n++) await publish(sqlite.url, "hermes", "bob", { n });
  // Written to the stream (the cursor moves to 5); the client handled 1 and 2 when it died.
  assert.deepEqual((await stream.take(5)).map((event) => Number(event.id)), [1, 2, 3, 4, 5]);
  stream.close();
  assert.equal((await sqlite.stop()).code, 0);
  const moved = await migrate(dir, setup.url);
  assert.equal(moved.code, 0, moved.stderr);

  const pg = await setup.start({ args: ["--database-url", setup.url] });
  assert.notEqual(await storeOf(pg.url), sqliteStore, "the database keeps an identity of its own");
  const resumed = await openSse(`${pg.url}/subscribe?agent=bob`, { "last-event-id": "2", "interop-store": sqliteStore });
  t.after(() => resumed.close());
  assert.deepEqual((await resumed.take(3)).map((event) => Number(event.id)), [3, 4, 5]);
  // Said so: listen keeps its saved id (it would disown another store's, and a kill before it handled 3 lost 3 to 5).
  assert.equal(resumed.headers.get("interop-resumed-after"), "2");
  resumed.close();
  // An id the SQLite store never handed out before the move names nothing here: a resume without an id, as before
  // (what the last stream was sent within the resume window comes again, then what is pending).
  const fresh = await json(publish(pg.url, "hermes", "bob", { n: 6 }));
  const beyond = await openSse(`${pg.url}/subscribe?agent=bob`, { "last-event-id": "99", "interop-store": sqliteStore });
  t.after(() => beyond.close());
  assert.deepEqual((await beyond.take(4)).map((event) => Number(event.id)), [3, 4, 5, fresh.id]);
  assert.equal(beyond.headers.get("interop-resumed-after"), null);
});

test("a migrated data dir is marked moved: a SQLite broker and interop token refuse it, migrate checks it, another store is refused", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  await createToken(dir, "bob");
  const sqlite = await setup.start({ dataDir: dir, args: ["--agents", "hermes,bob"] });
  assert.equal((await sqlite.stop()).code, 0);
  assert.equal((await migrate(dir, setup.url)).code, 0);
  const marked = join(dir, "moved.json");
  const refused = new RegExp(`in ${dir}: interop migrate moved its store to ${setup.url} at [\\dT:.Z-]+, whose brokers hold it now; ` +
    `use --database-url ${setup.url} \\(to take the SQLite store back, without what was stored since, remove ${marked}\\)`);
  // Served again, the SQLite store handed out the database's next ids once more; a revoke there said "revoked" and
  // the token went on working on the database's brokers.
  const served = await runCli(["serve", "--data-dir", dir, "--port", "0"]);
  assert.equal(served.code, 2, served.stderr);
  assert.match(served.stderr, new RegExp(`^error: Cannot serve the SQLite store ${refused.source}\n$`));
  for (const action of [["revoke", "-a", "bob"], ["create", "-a", "bob"], ["list"]]) {
    const token = await runCli(["token", ...action, "--data-dir", dir]);
    assert.equal(token.code, 2, token.stderr);
    assert.match(token.stderr, new RegExp(`^error: Cannot ${action[0]} tokens ${refused.source}\n$`));
  }
  const home = setup.dataDir();
  const integrated = await runCli(["integrate", "hermes", "--write", "--data-dir", dir, "--home", home]);
  assert.equal(integrated.code, 2, integrated.stderr);
  assert.match(integrated.stderr, new RegExp(`^error: Cannot write the agent's token ${refused.source}\n$`));
  const listed = await runCli(["token", "list", "--json", "--database-url", setup.url]);
  assert.deepEqual(JSON.parse(listed.stdout).map((token: { agent: string }) => token.agent), ["bob"]);
  const checked = await migrate(dir, setup.url);
  assert.equal(checked.code, 0, checked.stderr);
  assert.equal(JSON.parse(checked.stdout).action, "checked");
  // Red team 54: copied into a second, empty database too, the store forked: ids handed out again, messages twice.
  const second = await setup.anotherDatabase();
  const forked = await migrate(dir, second);
  assert.equal(forked.code, 1, forked.stdout);
  assert.match(forked.stderr, new RegExp(`^error: Data dir ${dir} was moved to ${setup.url} at [\\dT:.Z-]+, not ${second}: its brokers ` +
    `serve it there, and a second copy would hand out its ids again and deliver its messages twice \\(to move it anyway, remove ${marked}\\)\n$`));

  // A marker that is a dangling symlink still marks it (red team 54: the broker started).
  rmSync(marked);
  symlinkSync(join(dir, "nowhere"), marked);
  const dangling = await runCli(["serve", "--data-dir", dir, "--port", "0"]);
  assert.equal(dangling.code, 2, dangling.stderr);
  assert.match(dangling.stderr, /interop migrate moved its store to PostgreSQL/);

  // Taken back, the SQLite store hands out ids the database has too: migrate no longer calls it the same store.
  rmSync(marked);
  const back = await setup.start({ dataDir: dir, args: ["--agents", "hermes,bob"] });
  assert.equal((await publish(back.url, "hermes", "bob", { after: "the move" }, bearer(await createToken(dir, "hermes")))).status, 200);
  assert.equal((await back.stop()).code, 0);
  const diverged = await migrate(dir, setup.url);
  assert.equal(diverged.code, 1);
  assert.match(diverged.stderr, new RegExp(`^error: Data dir ${dir} handed out ids up to 1 after its store was moved into ` +
    `${setup.url} \\(up to 0\\): a SQLite broker served it again since, and what it stored or took then is not in the database\n$`));
});

// Red team 54: a message of the second data dir missing from the database was taken as one retention removed there (an
// inbox of the same name had purged past its id), so the second store was "checked" and none of it copied.
test("interop migrate of a second data dir into a database that holds another's refuses it, whatever retention removed there", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const [one, two] = [setup.dataDir(), setup.dataDir()];
  for (const [dir, text] of [[one, "one's"], [two, "two's"]]) {
    const broker = await setup.start({ dataDir: dir, args: ["--agents", "hermes,openclaw"] });
    for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { text, n });
    assert.equal((await broker.stop()).code, 0);
  }
  assert.equal((await migrate(one, setup.url)).code, 0);
  // The database's brokers delivered one's messages, and retention removed them.
  const sql = postgres(setup.url, { max: 1, onnotice: () => {} });
  t.after(() => sql.end({ timeout: 1 }));
  await sql`DELETE FROM interop_messages`;
  await sql`UPDATE interop_inboxes SET delivered_id = 20, purged_id = 20`;
  const second = await migrate(two, setup.url);
  assert.equal(second.code, 1, second.stdout);
  assert.match(second.stderr, /holds another store than data dir .*: it holds the store interop migrate moved from another data dir/);
});

// Red team 54: a re-run refused the store it had moved once the database's brokers had removed some of it ("message 1
// is missing there; migrate into an empty database", which would fork it), and a database where a broker had only
// made its --agents' inboxes was taken for a store: "checked", nothing copied, and the ids handed out again.
test("interop migrate checks a store it moved after the database's brokers removed some of it, and copies into a database with empty inboxes", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const pgFirst = await setup.start({ args: ["--database-url", setup.url, "--agents", "hermes,openclaw"] });
  assert.equal((await pgFirst.stop()).code, 0);
  const dir = setup.dataDir();
  const sqlite = await setup.start({ dataDir: dir, args: ["--agents", "hermes,openclaw,leo"] });
  for (let n = 1; n <= 3; n++) await publish(sqlite.url, "hermes", "openclaw", { n });
  await publish(sqlite.url, "hermes", "leo", { n: 4 });
  assert.equal((await sqlite.stop()).code, 0);
  const copied = await migrate(dir, setup.url);
  assert.equal(copied.code, 0, copied.stderr);
  assert.equal(JSON.parse(copied.stdout).action, "copied");
  const pg = await setup.start({ args: ["--database-url", setup.url] });
  assert.deepEqual(await peek(pg.url, "openclaw"), [1, 2, 3]);
  assert.equal((await json(publish(pg.url, "hermes", "openclaw", { n: 5 }))).id, 5, "past the SQLite store's ids");
  // Taken and removed by retention, and an inbox the operator removed.
  assert.equal((await fetch(`${pg.url}/poll?agent=openclaw`)).status, 200);
  const sql = postgres(setup.url, { max: 1, onnotice: () => {} });
  t.after(() => sql.end({ timeout: 1 }));
  await sql`DELETE FROM interop_messages WHERE id <= 3`;
  const removed = await runCli(["agent", "remove", "leo", "--force", "--url", pg.url]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal((await pg.stop()).code, 0);
  const again = await migrate(dir, setup.url);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).action, "checked");
});

// Red team 54: a database that does not exist answered exit 3 ("try again later"), as one that cannot be reached.
test("interop migrate into a database that does not exist exits 1, and one it cannot reach 3 (worth a retry)", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const dir = setup.dataDir();
  assert.equal((await (await setup.start({ dataDir: dir })).stop()).code, 0);
  const missing = new URL(setup.url);
  missing.pathname = "/no_such_database";
  const refused = await migrate(dir, missing.href);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /database "no_such_database" does not exist/);
  const nowhere = new URL(setup.url);
  nowhere.port = String(await freePort());
  const unreachable = await migrate(dir, nowhere.href);
  assert.equal(unreachable.code, 3, unreachable.stderr);
});
