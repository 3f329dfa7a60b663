/** How a broker is set up: its store, its agents, its limits and the rules for who gets an inbox. */
import type { AgentName } from "../message.ts";
import type { MessageStore } from "../store/store.ts";
import type { AdmitAgent } from "./agent_admission.ts";
import type { PerAgent } from "./per_agent.ts";

export interface BrokerOptions {
  store: MessageStore;
  dataDir: string;
  /** Agents whose inboxes exist from the start, so the first broadcast has somewhere to go. */
  agents: AgentName[];
  /** Undelivered messages one inbox may hold before publishes to it are refused. */
  maxPending: PerAgent<number>;
  /** How long delivered messages stay for replay, in ms. */
  retentionMs: number;
  /** How long an undelivered message may wait before it expires, in ms (0: it waits until delivered). */
  pendingTtlMs?: PerAgent<number>;
  /** Told of expired messages, so they are never dropped silently. */
  onExpired?(agent: AgentName, count: number): void;
  heartbeatMs: number;
  /** How long a stream's client may read nothing while data waits before it is cut off, in ms. */
  writeTimeoutMs: number;
  /** The deepest reply chain accepted; deeper replies are refused, which stops agents auto-replying in a loop. */
  maxHops: number;
  /** Messages per second one sender may publish (0: no limit), with bursts up to twice that. */
  rateLimit?: number;
  /**
   * Called before an inbox is created for an agent that is neither configured nor stored (a publish to it, or
   * its first read), with the agents that have one: throws to refuse it (`unknown_agent`, `too_many_agents`).
   * Without it, any name gets an inbox.
   */
  admitAgent?: AdmitAgent;
  /** What a second stream for an agent that has one does: take over (the old one gets `replaced`), or get 409. */
  secondStream?: "replace" | "refuse";
  /**
   * How far back before a stream ended its writes count as unconfirmed, in ms: a stream that resumes without an
   * id gets them again (0: only what is pending).
   */
  resumeWindowMs?: number;
  /** The most characters of messages one answer that takes them holds (`DEFAULT_ANSWER_BUDGET`; smaller in tests). */
  answerBudget?: number;
  /**
   * The largest message a publish may carry, in bytes (`serve --max-body-bytes`; `DEFAULT_MAX_BODY_BYTES` when unset):
   * a read of whole messages asks the store for no more of them than its memory holds at that size.
   */
  maxMessageBytes?: number;
  now?: () => number;
}
