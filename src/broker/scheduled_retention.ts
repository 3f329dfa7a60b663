/** Retention as the broker runs it: once at start, then on a timer, with the policy its options set. */
import type { AgentName } from "../message.ts";
import type { InboxRecord, MessageStore } from "../store/store.ts";
import type { BrokerOptions } from "./broker_options.ts";
import { DeliveryMarks } from "./delivery_marks.ts";
import { allValues, uniform } from "./per_agent.ts";
import { applyRetention, type RetentionPolicy, retentionInterval } from "./retention.ts";

export interface ScheduledRetentionDeps {
  options: BrokerOptions;
  /** The broker's inbox records, which retention updates to match the store. */
  inboxes: Map<AgentName, InboxRecord>;
  /** Whether other brokers share the store (see `DeliveryMarks`). */
  shared: boolean;
  /** Whether this broker holds a lease on the inbox (a shared store asks its own leases, in the expiry's transaction). */
  leased(agent: AgentName): boolean;
  /** Messages handed to a reader whose take is still committing (`Deliveries.committing`): they do not expire. */
  taking(): readonly number[];
  /** Called after `options.onExpired` with each inbox's expired messages. */
  expired(agent: AgentName, count: number): void;
  now(): number;
}

export class ScheduledRetention {
  #store: MessageStore;
  #inboxes: Map<AgentName, InboxRecord>;
  #marks: DeliveryMarks;
  #policy: RetentionPolicy;
  #now: () => number;
  #timer: ReturnType<typeof setInterval>;
  #running: { done: Promise<void>; expired: Promise<void> } | undefined;

  constructor(deps: ScheduledRetentionDeps) {
    const { options } = deps;
    this.#store = options.store;
    this.#inboxes = deps.inboxes;
    this.#marks = new DeliveryMarks(options.retentionMs, deps.shared);
    this.#now = deps.now;
    this.#policy = {
      ...options,
      pendingTtlMs: options.pendingTtlMs ?? uniform(0),
      leased: deps.leased,
      taking: deps.taking,
      onExpired: (agent, count) => {
        options.onExpired?.(agent, count);
        deps.expired(agent, count);
      },
    };
    this.#timer = setInterval(() => void this.run(), retentionInterval(allValues(this.#policy.pendingTtlMs)));
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /**
   * Applies retention now, or resolves with the run under way (a backlog's steps may outlast the interval: a second
   * run would only wait on the first's locks or step through the same rows); a store that cannot prune still serves,
   * and retention retries on the next tick.
   */
  run(): Promise<void> {
    return this.#start().done;
  }

  /**
   * Starts a run (or joins the one under way) and resolves once its expiry is over: what a broker starting waits for
   * before it serves (see `applyRetention`).
   */
  expireNow(): Promise<void> {
    return this.#start().expired;
  }

  #start(): { done: Promise<void>; expired: Promise<void> } {
    if (this.#running === undefined) {
      const expired = Promise.withResolvers<void>();
      const done = applyRetention(this.#store, this.#inboxes, this.#marks, this.#policy, this.#now(), expired.resolve)
        .catch(() => {
          // Retried on the next tick.
        })
        .finally(() => {
          expired.resolve();
          this.#running = undefined;
        });
      this.#running = { done, expired: expired.promise };
    }
    return this.#running;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
