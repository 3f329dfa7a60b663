/** Tells a waiting SendMessage or an open task stream when its task may have changed state. */
import type { Broker } from "../broker/broker.ts";
import type { Envelope } from "../message.ts";

/**
 * The hub's own changes to tasks, which the broker does not report (a CancelTask), and the broker's: this broker's
 * deliveries, replies and dead letters as they happen; on a store brokers share, another broker's commits for the
 * task's parties as it notifies them, and anything else (a take, a dead letter, a withdrawal there) at the broker's
 * periodic re-read (every 5 s).
 */
export class TaskChanges {
  #listeners = new Set<(messageId: number) => void>();

  /** Says that the task of message `messageId` changed. */
  changed(messageId: number): void {
    for (const listener of this.#listeners) listener(messageId);
  }

  /**
   * Calls `onChange` whenever something happens to `envelope` that may change its task: delivered, answered by
   * its recipient, dead-lettered, withdrawn, expired (any of its recipient's), deleted with its recipient, or on a shared store whenever another broker may have done one of those.
   * Returns the function that stops watching.
   */
  watch(broker: Broker, envelope: Envelope, onChange: () => void): () => void {
    const id = envelope.id;
    const mine = (messageId: number) => messageId === id && onChange();
    this.#listeners.add(mine);
    const detach = broker.observe({
      delivered: (delivered) => delivered.id === id && onChange(),
      published: (envelopes) => envelopes.some((published) => published.thread?.replyTo === id) && onChange(),
      deadLettered: (_agent, messageId) => mine(messageId),
      // Expired undelivered (--pending-ttl): gone, so its task is; a blocking call waited out --a2a-wait to say so.
      expired: (agent) => agent === envelope.to && onChange(),
      // Its recipient removed (agent remove): deleted with the inbox, as an expired one.
      removed: (agent) => agent === envelope.to && onChange(),
      woken: (agents) => (agents === undefined || agents.includes(envelope.from) || agents.includes(envelope.to)) && onChange(),
    });
    return () => {
      this.#listeners.delete(mine);
      detach();
    };
  }
}
