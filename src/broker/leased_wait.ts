/**
 * A long poll that takes nothing (`/wait?peek=1&lease=S`): the agent's oldest pending message once there is one,
 * shown under a lease on the inbox, for the client to take with `/poll?up_to=ID&lease_id=` once its answer reached
 * whoever it is for (`interop mcp`'s wait, whose call a cancel may end while a message is on its way: taken, it
 * would be answered to no one; shown, it stays at the head of the inbox). With `reply_to=Q`, the reply to the
 * agent's message Q instead, for the client to take alone with `/poll?take=ID&lease_id=` (`interop mcp`'s ask).
 */
import type { AgentName, Envelope } from "../message.ts";
import { isInboxLeased } from "../store/store.ts";
import type { BrokerObserver } from "./observers.ts";
import type { Leases } from "./inbox_leases.ts";
import type { MessageAnswer } from "./message_answer.ts";

/** What a leased wait needs of the broker. */
export interface LeasedWaitBroker {
  readonly leases: Leases;
  /** Aborted once the broker stops: the wait ends then, showing nothing, as a /wait ends (204). */
  readonly stopping: AbortSignal;
  peek(agent: AgentName, limit: number, answer?: MessageAnswer): Promise<Envelope[]>;
  peekReply(agent: AgentName, questionId: number, answer?: MessageAnswer): Promise<Envelope | undefined>;
  /**
   * Runs `work` with the reply to `questionId` held from in-order readers (an awaited reply); on a broker of its own,
   * held on until what `keep` returns for `work`'s result resolves.
   */
  awaitingReply<T>(
    agent: AgentName,
    questionId: number,
    timeoutMs: number,
    work: () => Promise<T>,
    keep?: (result: T) => Promise<void> | undefined,
  ): Promise<T>;
  observe(observer: BrokerObserver): () => void;
  /** Counts a wait for `agent` (in /status) until the returned function is called. */
  countWaiting(agent: AgentName): () => void;
}

/** What a leased wait shows: the message, and the lease on the inbox it was shown under. */
export type Shown = { message: Envelope; lease: string };

/** What a leased wait shows, beyond the oldest pending message. */
export interface LeasedWaitOptions {
  /** The message shown is encoded into it (and held to its memory for answers, as a peek's are). */
  answer?: MessageAnswer;
  /**
   * The reply to the agent's message with this id is shown instead, wherever it is in the inbox; it is held as
   * awaited meanwhile, so no in-order reader (a stream, a poll, another wait; on a shared store, on any broker) takes
   * it first. On a broker of its own the hold lasts until the lease it was shown under ends, so it is still there for
   * the client's take; a shared store's record ends with the wait.
   */
  replyTo?: number;
}

/**
 * The oldest pending message for `agent` and the lease (`leaseSeconds`) it was shown under, waiting up to
 * `timeoutMs` for one to arrive; undefined after that, or once `until` aborts or the broker stops. Another reader's
 * lease is waited out first, as a taking wait does: what that reader showed is its to take.
 */
export function leasedWait(
  broker: LeasedWaitBroker,
  agent: AgentName,
  leaseSeconds: number,
  timeoutMs: number,
  until: AbortSignal,
  { answer, replyTo }: LeasedWaitOptions = {},
): Promise<Shown | undefined> {
  return counted(broker, agent, timeoutMs, until, (done) => {
    if (replyTo === undefined) return showNext(broker, agent, leaseSeconds, done, async () => (await broker.peek(agent, 1, answer))[0]);
    return broker.awaitingReply(
      agent,
      replyTo,
      timeoutMs,
      () => showNext(broker, agent, leaseSeconds, done, () => broker.peekReply(agent, replyTo, answer)),
      (shown) => shown === undefined ? undefined : broker.leases.whenFree(agent, broker.stopping),
    );
  });
}

/** Runs a leased wait (`wait`, until `done` aborts: after `timeoutMs`, `until`, or the broker's stop), counted in /status. */
async function counted<T>(
  broker: LeasedWaitBroker,
  agent: AgentName,
  timeoutMs: number,
  until: AbortSignal,
  wait: (done: AbortSignal) => Promise<T>,
): Promise<T> {
  const done = AbortSignal.any([until, broker.stopping, AbortSignal.timeout(timeoutMs)]);
  const uncount = broker.countWaiting(agent);
  try {
    return await wait(done);
  } finally {
    uncount();
  }
}

/** The look-and-wait loop of a leased wait, until `done` aborts: `look` finds what to show under the lease. */
async function showNext(
  broker: LeasedWaitBroker,
  agent: AgentName,
  leaseSeconds: number,
  done: AbortSignal,
  look: () => Promise<Envelope | undefined>,
): Promise<Shown | undefined> {
  while (!done.aborted) {
    // Listened for before the look: a message committed between the two wakes the next look.
    const arrived = arrival(broker, agent, done);
    try {
      await broker.leases.whenFree(agent, done);
      if (done.aborted) return undefined;
      const lease = await broker.leases.acquire(agent, leaseSeconds).catch((error) => {
        if (isInboxLeased(error)) return undefined; // Another reader leased it first: wait for that one again.
        throw error;
      });
      if (lease !== undefined) {
        const message = await look().catch((error) => {
          broker.leases.end(agent, lease);
          throw error;
        });
        if (message !== undefined) return { message, lease };
        // Nothing to show: the lease would only hold the others off.
        broker.leases.end(agent, lease);
        await arrived.promise;
      }
    } finally {
      arrived.stop();
    }
  }
  return undefined;
}

/**
 * Resolves once a message for `agent` may have arrived (committed here, or woken for by another broker on a shared
 * store, whose periodic re-read wakes every agent), or `done` aborts.
 */
function arrival(broker: LeasedWaitBroker, agent: AgentName, done: AbortSignal): { promise: Promise<void>; stop(): void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  const detach = broker.observe({
    published: (envelopes) => {
      if (envelopes.some((envelope) => envelope.to === agent)) resolve();
    },
    woken: (agents) => {
      if (agents === undefined || agents.includes(agent)) resolve();
    },
  });
  const aborted = () => resolve();
  done.addEventListener("abort", aborted, { once: true });
  return {
    promise,
    stop: () => {
      detach();
      done.removeEventListener("abort", aborted);
    },
  };
}
