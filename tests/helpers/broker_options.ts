/** What a test's in-process broker (no server: its router or the Broker itself) starts with. */
import type { BrokerOptions } from "../../src/broker/broker_options.ts";
import { uniform } from "../../src/broker/per_agent.ts";
import type { AgentName } from "../../src/message.ts";
import type { MessageStore } from "../../src/store/store.ts";

/**
 * Inboxes for hermes and openclaw, five pending messages each at most, a day's retention, heartbeats and write
 * deadlines out of the way; `overrides` says what the test is about.
 */
export function testBrokerOptions(store: MessageStore, dataDir: string, overrides: Partial<BrokerOptions> = {}): BrokerOptions {
  return {
    store,
    dataDir,
    agents: ["hermes", "openclaw"] as AgentName[],
    maxPending: uniform(5),
    retentionMs: 86_400_000,
    heartbeatMs: 60_000,
    writeTimeoutMs: 60_000,
    maxHops: 3,
    ...overrides,
  };
}
