/**
 * `interop poll`'s take of what it printed: after its lease on the inbox was lost while it printed (a broker of its
 * own restarted, or the lease expired), another reader took some of it, and the run says which rather than exit 0
 * as if it had taken them all; refused for load, it is asked again rather than leave what was printed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { run } from "../../src/cli/poll.ts";
import type { Io } from "../../src/cli/io.ts";
import { brokerPool, publish, waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { sharedPostgres } from "../helpers/postgres.ts";

const cluster = sharedPostgres();

/** An Io whose stdout holds the first line until `release` is called; `writing` resolves when it is written. */
function heldStdout() {
  const writing = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = {
    stdout: (text) => void out.push(text),
    writeStdout: async (text) => {
      writing.resolve();
      await released.promise;
      out.push(text);
    },
    stderr: (text) => void err.push(text),
    readStdin: () => Promise.resolve(null),
    env: {},
    shutdown: new AbortController().signal,
  };
  return { io, writing: writing.promise, release: () => released.resolve(), out, err };
}

async function sentIds(url: string): Promise<number[]> {
  const ids: number[] = [];
  for (const n of [1, 2]) ids.push((await (await publish(url, "hermes", "openclaw", { n })).json()).id);
  return ids;
}

test("interop poll whose lease a broker restart forgot names what it printed and another reader took, and exits 10", async (t) => {
  // It printed both, took the one left and exited 0: the other was handled by two readers, and nothing said so.
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const start = brokerPool(t);
  const first = await start({ dataDir: dir.path });
  const ids = await sentIds(first.url);
  const { io, writing, release, out, err } = heldStdout();
  t.after(release);
  const polling = run(["--agent", "openclaw", "--url", first.url], io);
  // Settled already if it failed: the test then says why rather than wait for a print that never comes.
  await Promise.race([writing, polling]);
  await first.stop();
  const broker = await start({ dataDir: dir.path, port: first.port });
  const other = await fetch(`${broker.url}/poll?agent=openclaw&limit=1`);
  assert.deepEqual((await other.json()).map((message: { interop: { id: number } }) => message.interop.id), [ids[0]]);
  release();
  assert.equal(await polling, 10);
  assert.deepEqual(out.map((line) => JSON.parse(line).interop.id), ids, "both were printed");
  assert.equal(err.length, 1, err.join(""));
  assert.match(err[0], new RegExp(`^warning: printed but not taken by this run: ${ids[0]}; this run's lease on the inbox was lost`));
  const left = await fetch(`${broker.url}/poll?agent=openclaw&peek=1`);
  assert.deepEqual(await left.json(), [], "the run took the one left");
});

test("interop poll whose lease expired waits out the lease another reader took meanwhile, then says (--json) what it did not take", async (t) => {
  // Its take was refused 409 inbox_leased: the run failed (exit 4) after printing both, saying nothing of them.
  const server = await cluster(t);
  if (server === undefined) return;
  const database = await server.createDatabase();
  const admin = postgres(database, { max: 1, onnotice: () => {} });
  t.after(() => admin.end());
  const broker = await brokerPool(t)({ args: ["--database-url", database, "--verbose"] });
  const ids = await sentIds(broker.url);
  const { io, writing, release, out, err } = heldStdout();
  t.after(release);
  const polling = run(["--agent", "openclaw", "--json", "--url", broker.url], io);
  await Promise.race([writing, polling]);
  // Ended as time would end it; another reader then leases the inbox and shows what the run printed.
  await admin`UPDATE interop_inboxes SET lease_until = now() - interval '1 second' WHERE agent = 'openclaw'`;
  const shown = await fetch(`${broker.url}/poll?agent=openclaw&peek=1&lease=60&limit=1`);
  assert.equal(shown.status, 200);
  const lease = shown.headers.get("interop-lease");
  assert.deepEqual((await shown.json()).map((message: { interop: { id: number } }) => message.interop.id), [ids[0]]);
  release();
  await waitFor(() => /GET \/poll agent=openclaw → 409/.test(broker.log()), 20_000, "the run's take to be refused while the other lease holds");
  const taken = await fetch(`${broker.url}/poll?agent=openclaw&up_to=${ids[0]}&lease_id=${lease}`);
  assert.equal((await taken.json()).length, 1);
  assert.equal(await polling, 10);
  assert.deepEqual(out.map((line) => JSON.parse(line).interop.id), ids);
  assert.deepEqual(err.map((line) => JSON.parse(line)), [{ warning: "not_taken", ids: [ids[0]], lease_lost: true }]);
  const left = await fetch(`${broker.url}/poll?agent=openclaw&peek=1`);
  assert.deepEqual(await left.json(), [], "the run took the one left");
});

test("interop poll's take refused for load (429) is asked again when the broker says, not left for the next run to print again", async (t) => {
  // It failed with exit 3 ("nothing was done") after printing both, leaving them pending: printed again next time.
  const broker = await brokerPool(t)({ args: ["--max-requests-per-agent", "1", "--verbose"] });
  const ids = await sentIds(broker.url);
  const { io, writing, release, out, err } = heldStdout();
  const hangUp = new AbortController();
  // Whatever happens, the run and the wait end with the test.
  t.after(() => {
    release();
    hangUp.abort();
  });
  const polling = run(["--agent", "openclaw", "--url", broker.url], io);
  await Promise.race([writing, polling]);
  // The agent's one request in progress: a wait, which waits for the run's lease to end. Asked again when it came
  // while a probe below held that one request (refused 429 too): then nothing held it, and the probes never saw 429.
  const holdRequest = async () => {
    for (;;) {
      const answer = await fetch(`${broker.url}/wait?agent=openclaw&timeout=60`, { signal: hangUp.signal });
      await answer.body?.cancel();
      if (answer.status !== 429) return;
    }
  };
  const waiting = holdRequest().catch(() => undefined);
  const probe = async () => {
    const answer = await fetch(`${broker.url}/poll?agent=openclaw&peek=1`);
    await answer.body?.cancel();
    return answer.status === 429;
  };
  await waitFor(probe, 10_000, "the wait to hold the agent's one request");
  release();
  // The probe's refusal was the first.
  const refusals = () => broker.log().split("GET /poll agent=openclaw → 429").length - 1;
  await waitFor(() => refusals() === 2, 20_000, "the run's take to be refused");
  hangUp.abort();
  await waiting;
  assert.equal(await polling, 0, err.join(""));
  assert.deepEqual(out.map((line) => JSON.parse(line).interop.id), ids);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json(), [], "the run took both");
});

test("interop poll stopped (Ctrl-C) while another run holds the inbox's lease exits 130 at once, having printed and taken nothing", async (t) => {
  // Its next retry came at once, was refused (409 inbox_leased), and the run failed with exit 4 as if refused.
  const broker = await brokerPool(t)({ args: ["--verbose"] });
  const ids = await sentIds(broker.url);
  const holder = heldStdout();
  t.after(holder.release);
  const holding = run(["--agent", "openclaw", "--url", broker.url], holder.io);
  await Promise.race([holder.writing, holding]);
  const waiter = heldStdout();
  const interrupt = new AbortController();
  const waiting = run(["--agent", "openclaw", "--url", broker.url], { ...waiter.io, shutdown: interrupt.signal });
  const refusals = () => broker.log().split("GET /poll agent=openclaw → 409").length - 1;
  await waitFor(() => refusals() >= 1, 20_000, "the second run to find the inbox leased");
  interrupt.abort();
  assert.equal(await waiting, 130, waiter.err.join(""));
  assert.match(waiter.err.join(""), /Interrupted while waiting for another reader's lease on openclaw's inbox; nothing was printed or taken/);
  assert.deepEqual(waiter.out, []);
  holder.release();
  assert.equal(await holding, 0, holder.err.join(""));
  assert.deepEqual(holder.out.map((line) => JSON.parse(line).interop.id), ids);
});
