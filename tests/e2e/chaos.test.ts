import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { allAckedDelivered, checkLedger, Ledger, Publisher, readDeliveriesFile } from "../helpers/ledger.ts";
import { startListen, stopListen } from "../helpers/listener.ts";

/** How long faults are injected: short in the suite, long for the soak run (npm run soak). */
const CHAOS_SECONDS = Number(process.env.INTEROP_CHAOS_SECONDS ?? 10);
const AGENTS = ["alpha", "beta", "gamma"];

interface Inbox {
  agent: string;
  dir: string;
  ledger: Ledger;
  listener: ChildProcess;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`${AGENTS.length} agents and ${AGENTS.length * 2} publishers under ${CHAOS_SECONDS} s of broker and listener kills: every acknowledged message once, in order per inbox`, async () => {
  const dir = tempDir();
  const dataDir = join(dir.path, "data");
  let broker: RunningBroker = await startBroker({ dataDir, args: ["--agents", AGENTS.join(",")] });
  const port = broker.port;
  const inboxes: Inbox[] = AGENTS.map((agent) => {
    const inboxDir = join(dir.path, agent);
    mkdirSync(inboxDir);
    return { agent, dir: inboxDir, ledger: new Ledger(), listener: startListen(broker.url, agent, inboxDir) };
  });
  const faults = { broker: 0, listenerKill: 0, listenerTerm: 0 };
  try {
    const deadline = Date.now() + CHAOS_SECONDS * 1000;
    // Two publishers per inbox, from different senders, for the whole run.
    const publishing = Promise.all(inboxes.flatMap((inbox) =>
      ["p", "q"].map((sender) =>
        new Publisher(inbox.ledger, `${sender}-${inbox.agent}`, () => broker.url, `${sender}${inbox.agent}`, inbox.agent).publishUntil(deadline)
      )
    ));
    while (Date.now() < deadline) {
      await pause(150 + Math.random() * 450);
      if (Math.random() < 0.3) {
        await broker.stop("SIGKILL");
        faults.broker++;
        broker = await startBroker({ port, dataDir, args: ["--agents", AGENTS.join(",")] });
      } else {
        const inbox = inboxes[Math.floor(Math.random() * inboxes.length)];
        const signal = Math.random() < 0.5 ? "SIGKILL" : "SIGTERM";
        await stopListen(inbox.listener, signal);
        signal === "SIGKILL" ? faults.listenerKill++ : faults.listenerTerm++;
        inbox.listener = startListen(broker.url, inbox.agent, inbox.dir);
      }
    }
    await publishing;
    let checked = 0;
    for (const inbox of inboxes) {
      const out = join(inbox.dir, "out.jsonl");
      await waitFor(() => allAckedDelivered(inbox.ledger, readDeliveriesFile(out)), 60_000, `${inbox.agent} to catch up`);
      const counts = checkLedger(inbox.ledger, readDeliveriesFile(out));
      checked += counts.delivered;
      assert.ok(counts.acked > 0, `${inbox.agent} got messages`);
    }
    console.log(
      `chaos ${CHAOS_SECONDS} s: broker SIGKILLed ${faults.broker}×, listeners SIGKILLed ${faults.listenerKill}× and ` +
        `SIGTERMed ${faults.listenerTerm}×; ${checked} deliveries checked against the ledgers, none missing, repeated or out of order`,
    );
  } finally {
    for (const inbox of inboxes) await stopListen(inbox.listener, "SIGKILL");
    await broker.cleanup();
    dir.cleanup();
  }
});
