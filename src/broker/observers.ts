/** What the broker reports as it works, for metrics and the live feed. Each call is synchronous and cheap. */
import type { AgentName, Envelope } from "../message.ts";

export interface BrokerObserver {
  /** Messages committed by one publish, and how long the commit took in ms. */
  published?(envelopes: Envelope[], commitMs: number): void;
  /** A message handed to its agent (stream write, poll, wait). */
  delivered?(envelope: Envelope): void;
  /** Messages written to a stream again: a resume from before them (a replay is at least once for its client). */
  redelivered?(agent: AgentName, count: number): void;
  expired?(agent: AgentName, count: number): void;
  deadLettered?(agent: AgentName, messageId: number): void;
  /** An inbox deleted for good (`interop agent remove`), with its messages. */
  removed?(agent: AgentName): void;
  /** One store transaction and the messages in it. */
  committed?(messages: number): void;
  /**
   * On a store brokers share: another broker committed messages for these agents (`undefined`: for any, as the
   * periodic re-read assumes), or anything else may have changed there (a take, a dead letter, a withdrawal). On a
   * broker of its own: a reply held from these agents' in-order readers was released (`AwaitedReplies`).
   */
  woken?(agents: AgentName[] | undefined): void;
}

/** The observers attached to a broker; calling a method calls it on each of them. */
export class Observers implements Required<BrokerObserver> {
  #observers = new Set<BrokerObserver>();

  /** Attaches an observer; returns the function that detaches it. */
  add(observer: BrokerObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  published(envelopes: Envelope[], commitMs: number): void {
    for (const observer of this.#observers) observer.published?.(envelopes, commitMs);
  }

  delivered(envelope: Envelope): void {
    for (const observer of this.#observers) observer.delivered?.(envelope);
  }

  redelivered(agent: AgentName, count: number): void {
    for (const observer of this.#observers) observer.redelivered?.(agent, count);
  }

  expired(agent: AgentName, count: number): void {
    for (const observer of this.#observers) observer.expired?.(agent, count);
  }

  deadLettered(agent: AgentName, messageId: number): void {
    for (const observer of this.#observers) observer.deadLettered?.(agent, messageId);
  }

  removed(agent: AgentName): void {
    for (const observer of this.#observers) observer.removed?.(agent);
  }

  committed(messages: number): void {
    for (const observer of this.#observers) observer.committed?.(messages);
  }

  woken(agents: AgentName[] | undefined): void {
    for (const observer of this.#observers) observer.woken?.(agents);
  }
}
