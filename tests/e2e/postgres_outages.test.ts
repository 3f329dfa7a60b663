/**
 * PostgreSQL stopped and started again three times under live traffic on one broker: a stream (`interop listen`),
 * leased waits (peek, then take under the lease) and asks answered by a long-polling agent. Every acknowledged
 * message reaches its reader exactly once, in order per inbox, and the broker logs each outage once. And an
 * `interop mcp` ask whose reply wait meets an outage, or an A2A task stream open through one, gets its reply once
 * PostgreSQL is back.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import postgres from "postgres";
import { brokerPool, waitFor } from "../helpers/broker.ts";
import { cleanUpAll, testStops } from "../helpers/clean_up_all.ts";
import { tempDir } from "../helpers/cli.ts";
import { allAckedDelivered, checkLedger, type Delivery, Ledger, Publisher, readDeliveriesFile } from "../helpers/ledger.ts";
import { startListen, stopListen } from "../helpers/listener.ts";
import { call, connect } from "../helpers/mcp_client.ts";
import { startPostgres } from "../helpers/postgres.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

const OUTAGES = 3;
/** Acknowledged messages each flow must add between two outages (and after the last): traffic is live throughout. */
const PROGRESS = 5;

/** A client backing off after a 503, as Retry-After asks (a little, so that an outage does not become a busy loop). */
const backOff = () => new Promise<void>((resolve) => setTimeout(resolve, 50));

/** The last refusal or failure each route met, for the message of a test that saw no progress. */
const lastFailures = new Map<string, string>();

/** One request, or undefined when it got no answer (an outage answers 503; this is for a connection cut short). */
async function request(url: string, init: RequestInit = {}): Promise<Response | undefined> {
  const route = new URL(url).pathname;
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) }).catch((error) => {
    lastFailures.set(route, `${new Date().toISOString()} ${error}`);
    return undefined;
  });
  if (response !== undefined && response.status >= 300) {
    lastFailures.set(route, `${new Date().toISOString()} ${response.status} ${await response.clone().text()}`);
  }
  return response;
}

/** Asserts `response`'s status, reading its body only to say what went wrong. */
async function expectStatus(response: Response, status: number): Promise<void> {
  if (response.status !== status) assert.fail(`HTTP ${response.status}, not ${status}: ${await response.text()}`);
}

/**
 * The database's sessions and the locks they wait for, for the message of a test that saw no progress (once, on a
 * loaded machine, every request hung for 30 s right after an outage ended, with no outage logged).
 */
async function sessions(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const rows = await sql`
      SELECT a.pid, a.application_name, a.state, a.wait_event_type, a.wait_event, a.xact_start, left(a.query, 100) AS query,
        (SELECT string_agg(l.locktype || ' ' || l.mode, ', ') FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) AS waiting_for
      FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()`;
    return `sessions:\n${rows.map((row) => JSON.stringify(row)).join("\n")}`;
  } catch (error) {
    return `sessions not read: ${error}`;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Takes under a lease that a take refused with 503 ended meanwhile. */
let leasesLost = 0;

/** Takes the oldest message of `agent` as `interop mcp`'s wait does: a leased peek, then a take under the lease. */
async function leasedTake(url: string, agent: string, taken: Delivery[], more: () => boolean): Promise<void> {
  const shown = await request(`${url}/wait?agent=${agent}&timeout=1&peek=1&lease=60`);
  if (shown === undefined || shown.status === 503) return await backOff();
  if (shown.status === 204) return;
  await expectStatus(shown, 200);
  const lease = shown.headers.get("interop-lease");
  const message = await shown.json();
  while (more()) {
    const take = await request(`${url}/poll?agent=${agent}&up_to=${message.interop.id}&lease_id=${lease}`);
    if (take === undefined || take.status === 503) {
      await backOff();
      continue;
    }
    await expectStatus(take, 200);
    // A take that got 503 ended its lease (once PostgreSQL was back): this one takes what is left, told so.
    if (take.headers.get("interop-lease-lost") === "true") leasesLost++;
    for (const entry of await take.json()) taken.push({ key: entry.key, id: entry.interop.id });
    return;
  }
}

/** Answers one question of `agent`'s (taken by a long poll), the reply retried until it is stored. */
async function answerOne(url: string, agent: string, questions: Delivery[], more: () => boolean): Promise<void> {
  const waited = await request(`${url}/wait?agent=${agent}&timeout=1`);
  if (waited === undefined || waited.status === 503) return await backOff();
  if (waited.status === 204) return;
  await expectStatus(waited, 200);
  const question = await waited.json();
  questions.push({ key: question.key, id: question.interop.id });
  while (more()) {
    const reply = await request(`${url}/broadcast?from=${agent}&reply_to=${question.interop.id}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ answer: question.key }),
    });
    if (reply?.status === 200) return;
    assert.ok(reply === undefined || reply.status === 503, `reply refused: ${reply?.status}`);
    await backOff();
  }
}

test(`PostgreSQL stopped and started ${OUTAGES} times under a stream, leased waits and asks: every acknowledged message once, in order per inbox`, async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const dir = tempDir();
  let listener: ChildProcess | undefined;
  /** Publishers and askers run while `sending`, readers while `reading` (then until all they were sent is read). */
  let sending = true;
  let reading = true;
  const senders: Promise<unknown>[] = [];
  const readers: Promise<unknown>[] = [];
  // Among the test's stops, with PostgreSQL's and the brokers': before PostgreSQL, and even when one of them throws.
  testStops(t)(() =>
    cleanUpAll(
      () => (sending = reading = false),
      () => Promise.allSettled([...senders, ...readers]),
      () => listener && stopListen(listener, "SIGKILL"),
      dir.cleanup,
    )
  );
  const start = brokerPool(t);
  const broker = await start({ args: ["--database-url", url, "--agents", "streamed,leased,asker,answerer"] });
  listener = startListen(broker.url, "streamed", dir.path);

  const streamed = new Ledger();
  const leased = new Ledger();
  const questions = new Ledger();
  const taken: Delivery[] = [];
  const answered: Delivery[] = [];
  /** Questions whose ask ended without the reply (504): it lands in the asker's inbox. */
  const unreplied = new Set<number>();
  const ask = async (seq: number) => {
    const key = `ask:${seq}`;
    const asked = await request(`${broker.url}/ask?from=asker&to=answerer&timeout=10`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key }),
    });
    if (asked === undefined || asked.status === 503) {
      questions.unanswered.add(key);
      return await backOff();
    }
    const body = await asked.json();
    if (asked.status === 504) {
      assert.equal(body.code, "reply_timeout", body.error);
      const id = Number(/message (\d+)/.exec(body.error)![1]);
      questions.acked.set(key, id);
      unreplied.add(id);
      return;
    }
    assert.equal(asked.status, 200, JSON.stringify(body));
    assert.equal(body.reply.answer, key, "the reply to this ask's question");
    questions.acked.set(key, body.question);
  };
  const loop = async (more: () => boolean, step: (n: number) => Promise<void>) => {
    for (let n = 1; more(); n++) await step(n);
  };
  senders.push(
    new Publisher(streamed, "s", () => broker.url, "sender", "streamed").publishWhile(() => sending),
    new Publisher(leased, "l", () => broker.url, "sender", "leased").publishWhile(() => sending),
    loop(() => sending, ask),
  );
  readers.push(
    loop(() => reading, () => leasedTake(broker.url, "leased", taken, () => reading)),
    loop(() => reading, () => answerOne(broker.url, "answerer", answered, () => reading)),
  );
  const out = join(dir.path, "out.jsonl");
  const counts = () => [readDeliveriesFile(out).length, taken.length, questions.acked.size];
  const progress = async (what: string) => {
    const before = counts();
    await waitFor(() => counts().every((count, index) => count >= before[index] + PROGRESS), 30_000, what).catch(async (error) => {
      const failures = [...lastFailures].map(([route, failure]) => `${route}: ${failure}`).join("\n");
      throw new Error(`${error.message}: [stream, leased, asks] ${before} then ${counts()}\n${failures}\n${broker.log()}\n${await sessions(url)}`);
    });
  };
  const available = async () => (await (await fetch(`${broker.url}/status`)).json()).store.available as boolean;

  for (let outage = 1; outage <= OUTAGES; outage++) {
    await progress(`traffic before outage ${outage}`);
    await server.stop();
    await waitFor(async () => !await available(), 10_000, `the broker to see outage ${outage}`);
    await server.start();
    await waitFor(available, 20_000, `the broker to see PostgreSQL back after outage ${outage}`);
  }
  await progress("traffic after the last outage");
  sending = false;
  await Promise.all(senders);
  await waitFor(
    () => allAckedDelivered(streamed, readDeliveriesFile(out)) && allAckedDelivered(leased, taken) && allAckedDelivered(questions, answered),
    30_000,
    "the readers to catch up",
  ).catch(() => {});
  reading = false;
  await Promise.all(readers);

  const stream = checkLedger(streamed, readDeliveriesFile(out));
  const leasedCounts = checkLedger(leased, taken);
  const asked = checkLedger(questions, answered);
  // A reply to an ask that timed out is the asker's to read, once; no other reply is left there.
  const left = await (await fetch(`${broker.url}/poll?agent=asker&limit=10000`)).json();
  for (const reply of left) assert.ok(unreplied.has(reply.interop.reply_to), JSON.stringify(reply));
  // Each outage is said, then its end. A stopping server closes its connections one at a time: the broker's own may
  // still answer its first retry (a loaded machine), which ends that outage early and the next call starts another.
  const outageLines = broker.log().match(/answering 503 until it is back|is back: serving again/g) ?? [];
  assert.ok(outageLines.length >= 2 * OUTAGES, broker.log());
  outageLines.forEach((line, index) => assert.equal(line.startsWith("answering"), index % 2 === 0, broker.log()));
  assert.equal(outageLines.at(-1), "is back: serving again", broker.log());
  t.diagnostic(
    `${OUTAGES} outages: stream ${stream.acked} acknowledged (${stream.unanswered} refused), leased waits ` +
      `${leasedCounts.acked} (${leasedCounts.unanswered} refused, ${leasesLost} takes again under a lease lost), asks ${asked.acked} (${unreplied.size} timed out, ` +
      `${asked.unanswered} refused): none missing, repeated or out of order`,
  );
});

test("an interop mcp ask whose reply wait meets a PostgreSQL outage waits on and returns the reply once it is back", async (t) => {
  // The ask failed with the 503 ("retry shortly") after its question was stored: a model asks again.
  const server = await startPostgres(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const start = brokerPool(t);
  // --verbose: the log says when the ask's long poll met the outage.
  const broker = await start({ args: ["--database-url", url, "--agents", "asker,answerer", "--verbose"] });
  const client = await connect(broker.url, "asker");
  testStops(t)(() => client.close());
  const asking = call(client, "ask", { to: "answerer", text: "deploy?", timeout_seconds: 300 });
  const waited = await fetch(`${broker.url}/wait?agent=answerer&timeout=60`);
  await expectStatus(waited, 200);
  const question = await waited.json();
  await server.stop();
  await waitFor(() => /GET \/wait agent=asker → 503/.test(broker.log()), 60_000, "the ask's long poll to meet the outage");
  await server.start();
  let replied: Response | undefined;
  await waitFor(async () => {
    replied = await request(`${broker.url}/broadcast?from=answerer&reply_to=${question.interop.id}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "yes" }),
    });
    return replied?.status === 200;
  }, 60_000, "the reply to be stored once PostgreSQL is back");
  const result = await asking;
  assert.notEqual(result.isError, true, result.content[0].text);
  const { question: asked, reply } = JSON.parse(result.content[0].text);
  assert.equal(asked, question.interop.id);
  assert.equal(reply.text, "yes");
  assert.equal(reply.interop.id, (await replied!.json()).id);
});

test("an A2A task stream open through a PostgreSQL outage stays open and ends with the reply once it is back", async (t) => {
  // The stream's keepalive re-read (every 15 s) met the outage and ended the stream: no final event, no error, and
  // the reply, when it came, went to neither the stream nor (held by the stream's wait) the caller's inbox.
  const server = await startPostgres(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const alice = await createToken(url, "alice");
  const bob = await createToken(url, "bob");
  const broker = await brokerPool(t)({ args: ["--database-url", url] });
  const opened = await fetch(`${broker.url}/a2a/bob`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(alice) },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "SendStreamingMessage",
      params: { message: { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text: "deploy?" }] } },
    }),
  });
  await expectStatus(opened, 200);
  let text = "";
  let ended = false;
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of opened.body!) text += decoder.decode(chunk, { stream: true });
    ended = true;
  })();
  testStops(t)(() => opened.body?.cancel().catch(() => {}));
  const pollBob = async () => await (await fetch(`${broker.url}/poll?agent=bob`, { headers: bearer(bob) })).json();
  let question: { interop: { id: number } } | undefined;
  await waitFor(async () => (question = (await pollBob())[0]) !== undefined, 10_000, "the message in bob's inbox");
  await waitFor(() => text.includes("TASK_STATE_WORKING"), 10_000, "the WORKING update");
  await server.stop();
  // The keepalive is written, then the task read again: once it is here, that read has met the outage.
  const before = text.length;
  await waitFor(() => text.slice(before).includes(": keepalive"), 60_000, "a keepalive during the outage");
  await server.start();
  await waitFor(async () => {
    const replied = await request(`${broker.url}/broadcast?from=bob&reply_to=${question!.interop.id}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(bob) },
      body: JSON.stringify({ text: "yes" }),
    });
    return replied?.status === 200;
  }, 60_000, "the reply to be stored once PostgreSQL is back");
  await waitFor(() => ended, 60_000, `the stream to end (so far: ${text})`);
  await reading;
  assert.match(text, /TASK_STATE_COMPLETED/);
  assert.match(text, /"text":"yes"/);
});
