/** Where each inbox's cursor stood when: retention counts from delivery, and the store keeps no delivery times. */
import type { AgentName } from "../message.ts";
import type { InboxRecord } from "../store/store.ts";

/** Marks kept per inbox over one retention period: a message may be deleted up to a 64th of the period late. */
const MARKS_PER_PERIOD = 64;

interface Mark {
  at: number;
  deliveredId: number;
}

export class DeliveryMarks {
  #retentionMs: number;
  #shared: boolean;
  /** Per inbox, oldest first: every id up to `deliveredId` was delivered by `at`. */
  #marks = new Map<AgentName, Mark[]>();

  /** `shared`: other brokers deliver from the same store (see `deliveredBefore`). */
  constructor(retentionMs: number, shared: boolean) {
    this.#retentionMs = retentionMs;
    this.#shared = shared;
  }

  /**
   * Notes where each inbox's cursor stands at `now`; resolves, per inbox, with the highest id delivered at least the
   * retention period before `now`: how far retention may delete. The store does not say when a cursor first seen here
   * moved. On a store of its own (the broker started with the cursor) it counts as delivered long ago: holding it for
   * one more period after every start would keep a broker that restarts daily from ever deleting anything. On a
   * store other brokers share it counts as delivered now: another broker may have delivered it a moment ago (a
   * broker started beside a running one deleted, 2.7 s after their delivery, messages that had waited longer than
   * the period).
   */
  deliveredBefore(inboxes: Map<AgentName, InboxRecord>, now: number): Map<AgentName, number> {
    for (const agent of this.#marks.keys()) if (!inboxes.has(agent)) this.#marks.delete(agent);
    const cutoff = now - this.#retentionMs;
    const bounds = new Map<AgentName, number>();
    for (const [agent, inbox] of inboxes) {
      const marks = this.#marks.get(agent) ?? [];
      if (marks.length === 0) {
        marks.push({ at: this.#shared ? now : -Infinity, deliveredId: inbox.deliveredId });
        this.#marks.set(agent, marks);
      }
      const last = marks[marks.length - 1];
      if (inbox.deliveredId > last.deliveredId && now - last.at >= this.#retentionMs / MARKS_PER_PERIOD) {
        marks.push({ at: now, deliveredId: inbox.deliveredId });
      }
      while (marks.length > 1 && marks[1].at <= cutoff) marks.shift();
      bounds.set(agent, marks[0].at <= cutoff ? marks[0].deliveredId : 0);
    }
    return bounds;
  }
}
