/**
 * The ledger chaos test on PostgreSQL: three brokers on one database, each inbox's listener on one broker and its
 * publishers on the two others, brokers SIGKILLed and restarted at random and PostgreSQL SIGKILLed once; every
 * acknowledged message reaches its listener once, in order. Bounded in the suite; `npm run soak` runs it longer.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { cleanUpAll, testStops } from "../helpers/clean_up_all.ts";
import { tempDir } from "../helpers/cli.ts";
import { allAckedDelivered, checkLedger, Ledger, Publisher, readDeliveriesFile } from "../helpers/ledger.ts";
import { startListen, stopListen } from "../helpers/listener.ts";
import { startPostgres } from "../helpers/postgres.ts";

/** How long faults are injected: short in the suite, long for the soak run (npm run soak). */
const CHAOS_SECONDS = Number(process.env.INTEROP_CHAOS_SECONDS ?? 30);
const AGENTS = ["alpha", "beta", "gamma"];
const BROKERS = 3;

interface Inbox {
  agent: string;
  dir: string;
  ledger: Ledger;
  listener: ChildProcess;
  /** The broker its listener reads from. */
  home: number;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`three brokers on one PostgreSQL under ${CHAOS_SECONDS} s of broker SIGKILLs and one of PostgreSQL: every acknowledged message once, in order per inbox`, async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const dir = tempDir();
  const brokers: RunningBroker[] = [];
  const inboxes: Inbox[] = [];
  // Among the test's stops, with PostgreSQL's: before it, and even when its stop throws.
  testStops(t)(() =>
    cleanUpAll(
      ...inboxes.map((inbox) => () => stopListen(inbox.listener, "SIGKILL")),
      ...brokers.map((broker) => () => broker.cleanup()),
      dir.cleanup,
    )
  );
  const start = (port = 0) => startBroker({ port, args: ["--database-url", url, "--agents", AGENTS.join(",")] });
  for (let n = 0; n < BROKERS; n++) brokers.push(await start());
  for (const [index, agent] of AGENTS.entries()) {
    const inboxDir = join(dir.path, agent);
    mkdirSync(inboxDir);
    const home = index % BROKERS;
    inboxes.push({ agent, dir: inboxDir, ledger: new Ledger(), listener: startListen(brokers[home].url, agent, inboxDir), home });
  }
  const faults = { broker: 0, postgres: 0 };
  /** A broker must exit only when the test kills it (the postgres client's crash is patched: scripts/patch_postgres.ts). */
  const assertAlive = (index: number) => {
    const { child } = brokers[index];
    assert.ok(child.exitCode === null && child.signalCode === null, `broker ${index} exited:\n${brokers[index].log()}`);
  };
  const deadline = Date.now() + CHAOS_SECONDS * 1000;
  // Two publishers per inbox, each on one of the brokers its listener is not on: every message crosses brokers.
  const publishing = Promise.all(inboxes.flatMap((inbox) =>
    [1, 2].map((offset) => {
      const on = (inbox.home + offset) % BROKERS;
      return new Publisher(inbox.ledger, `p${offset}-${inbox.agent}`, () => brokers[on].url, `p${offset}${inbox.agent}`, inbox.agent)
        .publishUntil(deadline);
    })
  ));
  const postgresKillAt = Date.now() + (CHAOS_SECONDS * 1000) / 2;
  // A restart runs in the background (a start takes 2–9 s on this loaded machine); one broker is down at a time.
  const restarting = new Map<number, Promise<void>>();
  const restart = (index: number) => {
    const { port } = brokers[index];
    restarting.set(index, start(port).then((broker) => {
      brokers[index] = broker;
      restarting.delete(index);
    }));
  };
  while (Date.now() < deadline) {
    await pause(1000 + Math.random() * 1000);
    if (faults.postgres === 0 && Date.now() >= postgresKillAt) {
      // No broker starts while the server is down: a broker that cannot reach it at start exits.
      await Promise.all(restarting.values());
      await server.kill();
      faults.postgres++;
      await pause(500);
      await server.start();
      continue;
    }
    const victim = Math.floor(Math.random() * BROKERS);
    if (restarting.size > 0) continue;
    for (let index = 0; index < BROKERS; index++) assertAlive(index);
    // cleanup, not stop: the restarted broker takes this one's place in `brokers`, so the hook above never sees it,
    // and its data dir (empty: the messages are in PostgreSQL) was left in the temporary directory.
    await brokers[victim].cleanup();
    faults.broker++;
    restart(victim);
  }
  await Promise.all(restarting.values());
  for (let index = 0; index < BROKERS; index++) assertAlive(index);
  await publishing;

  let checked = 0;
  let unanswered = 0;
  for (const inbox of inboxes) {
    const out = join(inbox.dir, "out.jsonl");
    await waitFor(() => allAckedDelivered(inbox.ledger, readDeliveriesFile(out)), 30_000, `${inbox.agent} to catch up`).catch(() => {});
    const counts = checkLedger(inbox.ledger, readDeliveriesFile(out));
    assert.ok(counts.acked > 0, `${inbox.agent} got messages`);
    checked += counts.delivered;
    unanswered += counts.unanswered;
  }
  const acked = inboxes.reduce((sum, inbox) => sum + inbox.ledger.acked.size, 0);
  t.diagnostic(
    `postgres chaos ${CHAOS_SECONDS} s: brokers SIGKILLed ${faults.broker}×, PostgreSQL SIGKILLed ${faults.postgres}×; ` +
      `${acked} acknowledged, ${unanswered} sent without an answer, ${checked} deliveries checked against the ledgers: ` +
      "none missing, repeated or out of order",
  );
});
