/**
 * PostgreSQL SIGKILLed under load must not take a broker down. The `postgres` client 3.4.9 could: a small write
 * buffered for a setImmediate ran after its connection closed and threw from the timer (porsager/postgres#1154,
 * #1208), an uncaught TypeError that no caller can catch. scripts/patch_postgres.ts patches it at install.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { brokerPool, publish, type RunningBroker, waitFor } from "../helpers/broker.ts";
import { Ledger, Publisher } from "../helpers/ledger.ts";
import { startPostgres } from "../helpers/postgres.ts";

const KILLS = 4;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`a broker under publish load stays up while PostgreSQL is SIGKILLed and restarted ${KILLS} times`, async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const brokers: RunningBroker[] = [];
  // Stopped among the test's stops, with PostgreSQL's: before it, and even when one of them throws.
  const start = brokerPool(t);
  for (let n = 0; n < 2; n++) brokers.push(await start({ args: ["--database-url", url, "--agents", "alpha,beta"] }));
  // Publishers on both brokers keep every pooled connection busy with small writes when the server dies.
  const deadline = Date.now() + KILLS * 1500 + 1000;
  const load = Promise.all(brokers.flatMap((broker, index) =>
    Array.from({ length: 4 }, (_, p) => new Publisher(new Ledger(), `p${index}${p}`, () => broker.url, "alpha", "beta").publishUntil(deadline))
  ));
  const exited = (broker: RunningBroker) => broker.child.exitCode !== null || broker.child.signalCode !== null;
  for (let kill = 0; kill < KILLS && !brokers.some(exited); kill++) {
    await pause(1000);
    await server.kill();
    await pause(300);
    await server.start();
  }
  await load;
  assert.deepEqual(brokers.filter(exited).map((broker) => broker.log().slice(-1500)), [], "no broker exited");
  // It failed about 1 run in 3 on the binary while a registry connection that never connected again kept its
  // broker at 503 for good; the registry now gives up a query after ATTEMPT_MS with a fresh client.
  await t.test("and each broker takes a publish again once PostgreSQL is back", async () => {
    for (const broker of brokers) {
      let answer = "";
      await waitFor(async () => {
        const response = await publish(broker.url, "alpha", "beta", { text: "after the restarts" });
        answer = `${response.status} ${await response.text()}`;
        return response.status === 200;
      }, 30_000, "a publish").catch((error) => assert.fail(`${error.message}: last answer ${answer}\n${broker.log().slice(-3000)}`));
    }
  });
});
