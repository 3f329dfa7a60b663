/** Two in-process brokers on one PostgreSQL database, for tests of what brokers sharing a store do to each other. */
import process from "node:process";
import type { TestContext } from "node:test";
import postgres from "postgres";
import { agentAdmission } from "../../src/broker/agent_admission.ts";
import { Broker } from "../../src/broker/broker.ts";
import type { BrokerOptions } from "../../src/broker/broker_options.ts";
import type { AgentName } from "../../src/message.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { testBrokerOptions } from "./broker_options.ts";
import { testStops } from "./clean_up_all.ts";
import type { TestPostgres } from "./postgres.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/**
 * For a test of `cluster` (`sharedPostgres()`): brokers A and B on a new database, admitting agents as `interop
 * serve` does without tokens (a send never creates an inbox, a read does), with hermes's inbox and `overrides`, and
 * an admin connection to look at what the store holds of openclaw; all closed after the test; `prepare` sees each
 * store before its broker opens it. Undefined when the test is skipped (not root).
 */
export function twoBrokersOn(cluster: (t: TestContext) => Promise<TestPostgres | undefined>) {
  return async (t: TestContext, overrides: Partial<BrokerOptions> = {}, prepare?: (store: PostgresStore, host: "a" | "b") => void) => {
    const server = await cluster(t);
    if (server === undefined) return undefined;
    const url = await server.createDatabase();
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const stores: PostgresStore[] = [];
    const brokers: Broker[] = [];
    // A broker closes its store; one that failed to open leaves it to close. Among the test's stops: run even when
    // another stop threw, and before the PostgreSQL a test's own `startPostgres` started ahead of them.
    testStops(t)(async () => {
      await Promise.all(stores.map((store, n) => brokers[n] !== undefined ? brokers[n].close() : store.close()));
      await admin.end();
    });
    const admitAgent = agentAdmission({ tokensOn: () => false, hasToken: () => false, maxAgents: 100 });
    for (const host of ["a", "b"] as const) {
      const store = await PostgresStore.open({ url, durability: "strict", claimant: { pid: process.pid, host, version: "test" }, warn: () => {} });
      stores.push(store);
      prepare?.(store, host);
      brokers.push(await Broker.open(testBrokerOptions(store, "/nonexistent", { agents: [hermes], admitAgent, ...overrides })));
    }
    const [a, b] = brokers;
    const stored = async () => ({
      inboxes: (await admin<{ agent: string }[]>`SELECT agent FROM interop_inboxes WHERE agent = ${openclaw}`).length,
      messages: (await admin<{ id: number }[]>`SELECT id FROM interop_messages WHERE recipient = ${openclaw}`).length,
    });
    const streamClosed = async () =>
      (await admin<{ open: boolean }[]>`SELECT stream_session IS NOT NULL AS open FROM interop_inboxes WHERE agent = ${openclaw}`)[0]?.open === false;
    return { server, url, admin, a, b, storeA: stores[0], storeB: stores[1], stored, streamClosed };
  };
}
