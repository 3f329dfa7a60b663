/** Requests blocked until a message arrives for an agent (`/wait`), or a reply to a given message (`/ask`). */
import type { AgentName, Envelope } from "../message.ts";

interface Waiter {
  /** Only a reply to this id will do; undefined takes any message. */
  replyTo: number | undefined;
  resolve(envelope: Envelope | undefined): void;
}

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
      const giveUp = () => finish(undefined);
      const waiter: Waiter = { replyTo, resolve: finish };
      const timer = setTimeout(giveUp, timeoutMs);
      signal?.addEventListener("abort", giveUp, { once: true });
      waiters.add(waiter);
    });
  }

  /** Hands a just-committed message to a waiter that wants it (a reply waiter first); true if one took it. */
  claim(envelope: Envelope): boolean {
    const waiters = this.#byAgent.get(envelope.to);
    if (waiters === undefined) return false;
    const candidates = [...waiters];
    const waiter = candidates.find((candidate) => candidate.replyTo !== undefined && candidate.replyTo === envelope.thread?.replyTo) ??
      candidates.find((candidate) => candidate.replyTo === undefined);
    if (waiter === undefined) return false;
    waiter.resolve(envelope);
    return true;
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
