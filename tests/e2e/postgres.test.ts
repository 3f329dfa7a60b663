/** A broker on PostgreSQL: what it does on SQLite, plus several brokers per database, durability checks and outages. */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import postgres from "postgres";
import { brokerPool, publish, waitFor } from "../helpers/broker.ts";
import { runCli } from "../helpers/cli.ts";
import { holdCommits, releaseCommits, sharedPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { openSse } from "../helpers/sse.ts";

const cluster = sharedPostgres();

/** A database of its own on the file's cluster, and a way to start brokers on it (stopped after the test). */
async function setUp(t: TestContext) {
  const server = await cluster(t);
  if (server === undefined) return undefined;
  const url = await server.createDatabase();
  const start = brokerPool(t);
  return { server, url, start: (args: string[] = []) => start({ args: ["--database-url", url, ...args] }) };
}

const status = async (url: string) => await (await fetch(`${url}/status`)).json();

/** Takes everything pending for `agent` by polling until nothing is left. */
async function drain(url: string, agent: string): Promise<Array<Record<string, unknown>>> {
  const taken: Array<Record<string, unknown>> = [];
  for (;;) {
    const page = await (await fetch(`${url}/poll?agent=${agent}&limit=500`)).json();
    if (page.length === 0) return taken;
    taken.push(...page);
  }
}

test("a broker on PostgreSQL publishes, streams, polls, asks and keeps it all across a restart", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const broker = await setup.start(["--agents", "hermes,openclaw,leo,dave"]);
  assert.match(broker.log(), /listening on .* \(pid \d+, database postgres:\/\/postgres@127\.0\.0\.1:\d+\/interop_\w+, data dir /);
  const stream = await openSse(`${broker.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  const sent = await (await publish(broker.url, "hermes", "openclaw", { n: 1 })).json();
  assert.equal(sent.id, 1);
  const [event] = await stream.take(1);
  assert.equal(event.id, "1");
  assert.deepEqual(JSON.parse(event.data).n, 1);

  const asking = fetch(`${broker.url}/ask?from=hermes&to=leo&timeout=10`, { method: "POST", body: JSON.stringify({ q: "ping" }) });
  const question = await waitFor(async () => (await (await fetch(`${broker.url}/poll?agent=leo`)).json())[0], 10_000, "the question");
  await fetch(`${broker.url}/broadcast?from=leo&reply_to=${question.interop.id}`, { method: "POST", body: JSON.stringify({ a: "pong" }) });
  const answered = await (await asking).json();
  assert.equal(answered.reply.a, "pong");
  assert.equal(answered.reply.interop.reply_to, question.interop.id);

  for (let n = 2; n <= 4; n++) assert.equal((await publish(broker.url, "leo", "hermes", { n })).status, 200);
  assert.equal((await publish(broker.url, "hermes", "dave", { kept: "for later", key: 1 }, { "idempotency-key": "k1" })).status, 200);
  stream.close();
  assert.deepEqual((await broker.stop()).code, 0);

  const again = await setup.start();
  const pending = await drain(again.url, "hermes");
  assert.deepEqual(pending.map((message) => message.n), [2, 3, 4], "the reply was taken by the ask");
  const retried = await (await publish(again.url, "hermes", "dave", { kept: "for later", key: 1 }, { "idempotency-key": "k1" })).json();
  const [kept] = await drain(again.url, "dave");
  assert.equal(retried.id, (kept.interop as { id: number }).id, "the retried publish found the first one");
  assert.equal((await status(again.url)).last_id, retried.id);
  const metrics = await (await fetch(`${again.url}/metrics`)).text();
  assert.match(metrics, /^interop_messages_delivered_total\{agent="dave"\} 1$/m);
  assert.doesNotMatch(metrics, /^interop_store_bytes /m, "no file size for a database elsewhere");
});

test("interop serve --database-url takes only a postgres:// URL", async () => {
  const result = await runCli(["serve", "--port", "0", "--database-url", "mysql://db/interop"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: Invalid --database-url: use postgres:\/\/USER@HOST:PORT\/DB/);
});

test("two brokers share one database: a message published on one reaches a stream on the other at once", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const [a, b] = [await setup.start(), await setup.start()];
  const stream = await openSse(`${b.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  const started = performance.now();
  const sent = await (await publish(a.url, "hermes", "openclaw", { n: 1 })).json();
  const [event] = await stream.take(1);
  t.diagnostic(`published on A, written to the stream on B after ${(performance.now() - started).toFixed(1)} ms`);
  assert.equal(event.id, String(sent.id));
  const next = await (await publish(b.url, "hermes", "openclaw", { n: 2 })).json();
  assert.equal(next.id, sent.id + 1, "one id sequence for both");
  assert.deepEqual((await stream.take(1)).map((event) => JSON.parse(event.data).n), [2]);
});

test("each broker's pending counts and --max-pending go by the database: what another broker delivered or stored counts", async (t) => {
  // Each counted its own publishes and deliveries alone: B, publishing to openclaw whose stream is on A, counted every
  // message pending for good, and refused the sixth with 507 inbox_full though A's stream had them all.
  const setup = await setUp(t);
  if (setup === undefined) return;
  const args = ["--max-pending", "5", "--agents", "hermes,openclaw,leo"];
  const [a, b] = [await setup.start(args), await setup.start(args)];
  const stream = await openSse(`${a.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  const published: number[] = [];
  const publishOnB = async (n: number) => {
    const response = await publish(b.url, "hermes", "openclaw", { n });
    published.push(response.status);
    await response.body?.cancel();
  };
  for (let n = 1; n <= 5; n++) await publishOnB(n);
  assert.equal((await stream.take(5)).length, 5);
  await waitFor(async () => (await status(b.url)).agents.openclaw.pending === 0 || undefined, 5000, "B to count none pending");
  for (let n = 6; n <= 10; n++) await publishOnB(n);
  assert.deepEqual(published, Array(10).fill(200));
  assert.deepEqual((await stream.take(5)).map((event) => JSON.parse(event.data).n), [6, 7, 8, 9, 10]);
  // And what B stored for an agent no one reads, A counts too.
  for (let n = 1; n <= 2; n++) assert.equal((await publish(b.url, "openclaw", "leo", { n })).status, 200);
  await waitFor(async () => (await status(a.url)).agents.leo.pending === 2 || undefined, 5000, "A to count leo's two pending");
});

test("/status and interop status on any broker list the brokers, alive or gone, and the one each stream is on", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const [a, b] = [await setup.start(), await setup.start()];
  const stream = await openSse(`${b.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  const onB = `127.0.0.1:${b.port}`;
  const report = await waitFor(async () => {
    const seen = await status(a.url);
    const streamOn = seen.brokers?.find((broker: { id: string }) => broker.id === seen.agents.openclaw.stream_broker);
    return streamOn?.listening === onB && seen.brokers.length === 2 ? seen : undefined;
  }, 10_000, "A to see the stream on B");
  assert.deepEqual(report.brokers.map((broker: { listening: string; alive: boolean; self: boolean }) => [broker.listening, broker.alive, broker.self]), [
    [`127.0.0.1:${a.port}`, true, true],
    [onB, true, false],
  ]);
  assert.equal(report.agents.openclaw.online, true);
  const printed = await runCli(["status", "--url", a.url]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, new RegExp(`^brokers: 127\\.0\\.0\\.1:${a.port} \\(this one\\), ${onB}$`, "m"));
  assert.match(printed.stdout, new RegExp(`^openclaw +yes +on ${onB} `, "m"));

  stream.close();
  await b.stop();
  const after = await waitFor(async () => {
    const seen = await status(a.url);
    return seen.brokers[1].alive === false ? seen : undefined;
  }, 10_000, "A to see B gone");
  assert.equal(after.agents.openclaw.stream_broker, null, "B's stream ended with it");
  assert.match((await runCli(["status", "--url", a.url])).stdout, new RegExp(`^brokers: .*, ${onB} \\(gone\\)$`, "m"));
});

// Red team 53: every restart left its row, listed as gone for ever (17 after 15 restarts).
test("a broker that starts forgets the brokers stopped or silent for over a day, and keeps those stopped since", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const first = await setup.start();
  await first.stop();
  const sql = postgres(setup.url, { max: 1, onnotice: () => {} });
  try {
    await sql`INSERT INTO interop_brokers (id, pid, host, version, started_at, heartbeat_at, stopped_at)
      VALUES (gen_random_uuid(), 1, 'old-host', '0.9', now() - interval '3 days', now() - interval '2 days', now() - interval '2 days'),
             (gen_random_uuid(), 2, 'silent-host', '0.9', now() - interval '3 days', now() - interval '25 hours', NULL)`;
  } finally {
    await sql.end();
  }
  const broker = await setup.start();
  const listed = (await status(broker.url)).brokers.map((each: { alive: boolean; self: boolean }) => [each.alive, each.self]);
  assert.deepEqual(listed, [[false, false], [true, true]], "the one stopped a moment ago, and this one");
});

test("an inbox created on one broker is known to the others: a broadcast from any of them reaches it", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const [a, b] = [await setup.start(), await setup.start()];
  assert.deepEqual(await (await fetch(`${a.url}/poll?agent=leo`)).json(), [], "leo's inbox is created on A");
  await waitFor(async () => (await status(b.url)).agents.leo !== undefined, 10_000, "B to know leo");
  const sent = await (await publish(b.url, "hermes", undefined, { to: "all" })).json();
  assert.deepEqual(sent.to.sort(), ["leo", "openclaw"]);
  assert.deepEqual((await drain(a.url, "leo")).map((message) => message.to), ["all"]);
});

test("interop serve refuses a PostgreSQL running with fsync=off unless --durability relaxed, saying why", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  await restart(setup.server, { fsync: "off" });
  try {
    const refused = await runCli(["serve", "--port", "0", "--database-url", setup.url], { timeoutMs: 20_000 });
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `error: PostgreSQL at ${setup.url} runs with fsync=off: a crash of the server or its machine can lose messages the broker ` +
        "acknowledged; set fsync=on in postgresql.conf, or pass --durability relaxed to accept the risk\n",
    );
    const relaxed = await setup.start(["--durability", "relaxed"]);
    assert.match(relaxed.log(), /warn: PostgreSQL at .* runs with fsync=off: .* \(--durability relaxed\)\n/);
    assert.equal((await publish(relaxed.url, "hermes", "openclaw", { n: 1 })).status, 200);
    await relaxed.stop();
  } finally {
    await restart(setup.server, {});
  }
});

test("PostgreSQL stopped: 503 storage_unavailable and /status says so; back: the same broker serves, nothing lost", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const broker = await setup.start();
  const stream = await openSse(`${broker.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  for (let n = 1; n <= 3; n++) assert.equal((await publish(broker.url, "hermes", "openclaw", { n })).status, 200);
  assert.deepEqual((await stream.take(3)).map((event) => event.id), ["1", "2", "3"]);

  await setup.server.stop();
  const refused = await publish(broker.url, "hermes", "openclaw", { n: "refused" });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  const body = await refused.json();
  assert.equal(body.code, "storage_unavailable");
  assert.match(body.error, /^Storage unavailable: PostgreSQL at postgres:\/\/.* cannot be reached \(.*\); retry shortly$/);
  assert.equal((await fetch(`${broker.url}/poll?agent=hermes`)).status, 503);
  assert.equal((await fetch(`${broker.url}/subscribe?agent=hermes`)).status, 503);
  const down = await status(broker.url);
  assert.equal(down.store.available, false);
  const checked = await runCli(["status", "--url", broker.url]);
  assert.equal(checked.code, 5);
  assert.match(checked.stdout, /problem: the broker cannot reach its store or write to it: Storage unavailable: PostgreSQL at .* cannot be reached/);

  await setup.server.start();
  await waitFor(async () => (await status(broker.url)).store.available, 15_000, "the broker to see PostgreSQL back");
  for (let n = 4; n <= 5; n++) assert.equal((await publish(broker.url, "hermes", "openclaw", { n })).status, 200);
  assert.deepEqual((await stream.take(2)).map((event) => JSON.parse(event.data).n), [4, 5], "the open stream went on");
  assert.match(broker.log(), /warn: Storage unavailable: .*: answering 503 until it is back\n.*warn: PostgreSQL at .* is back: serving again\n/);
  stream.close();
  const replayed = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(replayed, [], "the stream's deliveries count as delivered");
  const again = await openSse(`${broker.url}/subscribe?agent=openclaw`, { "last-event-id": "0" });
  t.after(() => again.close());
  assert.deepEqual((await again.take(5)).map((event) => JSON.parse(event.data).n), [1, 2, 3, 4, 5]);
});

test("a publish whose COMMIT lost its answer gets the truth once PostgreSQL is back; the others get 503 meanwhile", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const broker = await setup.start();
  assert.equal((await publish(broker.url, "hermes", "openclaw", { n: 1 })).status, 200);
  try {
    await holdCommits(setup.url);
    const held = publish(broker.url, "hermes", "openclaw", { n: 2 });
    const admin = postgres(setup.url, { max: 1, onnotice: () => {} });
    try {
      await waitFor(async () =>
        (await admin`SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).length === 1, 10_000, "a COMMIT held");
    } finally {
      await admin.end();
    }
    await releaseCommits(setup.url, false);
    await setup.server.stop();

    const started = performance.now();
    const refused = await publish(broker.url, "hermes", "openclaw", { n: 3 });
    assert.equal(refused.status, 503);
    assert.ok(performance.now() - started < 2000, "a publish after the one in doubt is refused at once");
    assert.equal((await status(broker.url)).store.available, false);
    await setup.server.start();
    const answered = await held;
    assert.equal(answered.status, 200, "the held publish was committed, and is answered so");
    assert.equal((await answered.json()).id, 2);
  } finally {
    if (setup.server.pid() === undefined) await setup.server.start();
    await releaseCommits(setup.url);
  }
  await waitFor(async () => (await status(broker.url)).store.available, 15_000, "the broker to see PostgreSQL back");
  const taken = await drain(broker.url, "openclaw");
  assert.deepEqual(taken.map((message) => message.n), [1, 2]);
});

test("a PostgreSQL crash (SIGKILL of the postmaster) under load loses no acknowledged message and repeats none", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const broker = await setup.start();
  const acknowledged = new Set<string>();
  let refused = 0;
  let running = true;
  const publisher = async (name: string) => {
    for (let n = 0; running; n++) {
      const key = `${name}-${n}`;
      const response = await publish(broker.url, name, "openclaw", { key }).catch(() => undefined);
      if (response?.status === 200) acknowledged.add(key);
      else if (response !== undefined) {
        assert.equal(response.status, 503, await response.text());
        refused++;
        // Back off as Retry-After asks, a little, so the crash does not become a busy loop.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const publishers = ["p1", "p2", "p3", "p4"].map(publisher);
  t.after(async () => {
    running = false;
    await Promise.allSettled(publishers);
  });
  await waitFor(() => acknowledged.size >= 100, 20_000, "100 acknowledged publishes");
  await setup.server.kill();
  const before = acknowledged.size;
  await waitFor(async () => !(await status(broker.url)).store.available, 10_000, "the broker to see the crash");
  await setup.server.start();
  await waitFor(async () => (await status(broker.url)).store.available, 20_000, "the broker to see PostgreSQL back");
  await waitFor(() => acknowledged.size >= before + 50, 20_000, "50 more acknowledged publishes");
  running = false;
  await Promise.all(publishers);

  const received = (await drain(broker.url, "openclaw")).map((message) => message.key as string);
  assert.equal(received.length, new Set(received).size, "no message twice");
  const missing = [...acknowledged].filter((key) => !received.includes(key));
  assert.deepEqual(missing, [], "every acknowledged message is there");
  const unacknowledged = received.filter((key) => !acknowledged.has(key));
  assert.deepEqual(unacknowledged, [], "what was refused was not stored");
  t.diagnostic(`${acknowledged.size} acknowledged (${before} before the crash), ${refused} refused with 503 during it`);
});

async function restart(server: TestPostgres, settings: Record<string, string>): Promise<void> {
  await server.stop();
  await server.start(settings);
}

test("a NUL in what a client sends, which PostgreSQL's text cannot hold, is written out or refused 400, never a 503 for ever", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const broker = await setup.start(["--agents", "hermes,openclaw"]);
  // A dead letter's reason is the receiver's text (an --exec command's stderr): listen retried its park for ever.
  const { id } = await (await publish(broker.url, "hermes", "openclaw", { text: "x" })).json();
  const parked = await fetch(`${broker.url}/dead-letters?agent=openclaw`, { method: "POST", body: JSON.stringify({ id, reason: "bad\0input" }) });
  assert.equal(parked.status, 200, await parked.text());
  assert.equal((await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json())[0].reason, "bad\\u0000input");
  // An A2A messageId keys the message in the store.
  const sent = await fetch(`${broker.url}/a2a/openclaw`, {
    method: "POST",
    headers: { "content-type": "application/json", "a2a-version": "1.0" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "SendMessage",
      params: { message: { messageId: "m\0x", role: "ROLE_USER", parts: [{ text: "hi" }] }, configuration: { returnImmediately: true } },
    }),
  });
  assert.equal((await sent.json()).error?.code, -32602);
  const leased = await fetch(`${broker.url}/poll?agent=openclaw&up_to=${id}&lease_id=a%00b`);
  assert.equal(leased.status, 400, await leased.text());
  assert.equal((await status(broker.url)).store.available, true);
});
