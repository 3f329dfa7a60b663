/** For a test of a take racing `interop poll`: a peek under a lease granted while the take's store read is in flight. */
import type { Broker } from "../../src/broker/broker.ts";
import type { AgentName, Envelope } from "../../src/message.ts";
import type { SqliteStore } from "../../src/store/sqlite.ts";

/**
 * Holds the next `store.readAfter` of `count` messages (any count when undefined) until `peekMidRead` below is
 * called: what that read finds, the peek finds too.
 */
export function holdNextRead(store: SqliteStore, count?: number): { peekMidRead(broker: Broker, agent: AgentName): Promise<{ lease: string; messages: Envelope[] }> } {
  const read = store.readAfter.bind(store);
  const entered = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  store.readAfter = async (...args) => {
    if (count !== undefined && args[2] !== count) return await read(...args);
    store.readAfter = read;
    entered.resolve();
    await gate.promise;
    return await read(...args);
  };
  return {
    /** Once the held read began: leases `agent`'s inbox and peeks, then lets the held read go on. */
    async peekMidRead(broker, agent) {
      await entered.promise;
      const peeked = (async () => {
        const lease = await broker.leases.acquire(agent, 30);
        return { lease, messages: await broker.peek(agent, 10) };
      })();
      await new Promise((resolve) => setImmediate(resolve));
      gate.resolve();
      return await peeked;
    },
  };
}
