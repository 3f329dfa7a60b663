/** Requests blocked until a message arrives for an agent (`/wait`), or a reply to a given message (`/ask`). */
import type { AgentName, Envelope } from "../message.ts";

interface Waiter {
  /** Only a reply to this id will do; undefined takes any message. */
  replyTo: number | undefined;
  resolve(envelope: Envelope | undefined): void;
  /** Being handed a message taken from the store: its timeout and abort wait for the outcome. */
  reserved: boolean;
  /** Its timeout or abort came while it was reserved. */
  late: boolean;
}

/** Ends a reservation: with the message taken for the waiter, or undefined to put it back (or end it, if late). */
export type Hand = (envelope: Envelope | undefined) => void;

export class Waiters {
  #byAgent = new Map<AgentName, Set<Waiter>>();

  /** Resolves with the message handed over by `claim`, or undefined after `timeoutMs` or when `signal` aborts. */
  wait(agent: AgentName, replyTo: number | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Envelope | undefined> {
    // A client that already left takes nothing.
    if (signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiters = this.#byAgent.get(agent) ?? new Set();
      this.#byAgent.set(agent, waiters);
      const finish = (envelope: Envelope | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", giveUp);
        waiters.delete(waiter);
        if (waiters.size === 0) this.#byAgent.delete(agent);
        resolve(envelope);
      };
      const giveUp = () => {
        if (waiter.reserved) waiter.late = true;
        else finish(undefined);
      };
      const waiter: Waiter = { replyTo, resolve: finish, reserved: false, late: false };
      const timer = setTimeout(giveUp, timeoutMs);
      signal?.addEventListener("abort", giveUp, { once: true });
      waiters.add(waiter);
    });
  }

  /**
   * Hands a just-committed message to a waiter that wants it (a reply waiter first); true if one took it. With
   * `inOrder` false (the message is held back from in-order readers: `AwaitedReplies.heldBack`), only a reply waiter.
   */
  claim(envelope: Envelope, inOrder: boolean): boolean {
    const waiters = this.#byAgent.get(envelope.to);
    if (waiters === undefined) return false;
    const candidates = [...waiters].filter((candidate) => !candidate.reserved);
    const replyTo = envelope.thread?.replyTo;
    const waiter = candidates.find((candidate) => candidate.replyTo !== undefined && candidate.replyTo === replyTo) ??
      (inOrder ? candidates.find((candidate) => candidate.replyTo === undefined) : undefined);
    if (waiter === undefined) return false;
    waiter.resolve(envelope);
    return true;
  }

  /**
   * Reserves a waiter of `agent` for a message taken from the store asynchronously (on a store several brokers
   * share; on a broker of its own, once a reply held from in-order readers is released): the one waiting for a reply
   * to `replyTo`, or with `replyTo` undefined one that takes any message.
   * Undefined when there is none free.
   */
  reserve(agent: AgentName, replyTo: number | undefined): Hand | undefined {
    const waiter = [...this.#byAgent.get(agent) ?? []].find((candidate) => !candidate.reserved && candidate.replyTo === replyTo);
    if (waiter === undefined) return undefined;
    waiter.reserved = true;
    return (envelope) => {
      waiter.reserved = false;
      if (envelope !== undefined || waiter.late) waiter.resolve(envelope);
    };
  }

  /** The replies `agent`'s waiters wait for: each question's id, and how many wait for a reply to it. */
  awaitedReplies(agent: AgentName): Map<number, number> {
    const awaited = new Map<number, number>();
    for (const { replyTo } of this.#byAgent.get(agent) ?? []) {
      if (replyTo !== undefined) awaited.set(replyTo, (awaited.get(replyTo) ?? 0) + 1);
    }
    return awaited;
  }

  /** The agents someone waits for. */
  agents(): AgentName[] {
    return [...this.#byAgent.keys()];
  }

  /** Requests waiting for `agent`'s messages or replies. */
  count(agent: AgentName): number {
    return this.#byAgent.get(agent)?.size ?? 0;
  }

  /** Ends every wait (the broker is stopping). */
  close(): void {
    for (const waiters of this.#byAgent.values()) for (const waiter of [...waiters]) waiter.resolve(undefined);
  }
}
