/** Retention: deletes delivered messages past their replay window, and expires undelivered ones past the pending TTL. */
import type { AgentName } from "../message.ts";
import type { InboxRecord, MessageStore } from "../store/store.ts";

export interface RetentionPolicy {
  /** How long delivered messages stay for replay, in ms. */
  retentionMs: number;
  /** How long an undelivered message may wait, in ms (0: until delivered). */
  pendingTtlMs: number;
  onExpired?(agent: AgentName, count: number): void;
}

const PRUNE_EVERY_MS = 60_000;

/** How often to apply retention: every minute, or often enough for a pending TTL to expire messages on time. */
export function retentionInterval(pendingTtlMs: number): number {
  return pendingTtlMs > 0 ? Math.min(PRUNE_EVERY_MS, Math.max(250, pendingTtlMs / 2)) : PRUNE_EVERY_MS;
}

/** Applies the policy to the store and updates the broker's inbox records to match. */
export async function applyRetention(
  store: MessageStore,
  inboxes: Map<AgentName, InboxRecord>,
  policy: RetentionPolicy,
  now: number,
): Promise<void> {
  for (const [agent, upTo] of await store.prune(now - policy.retentionMs)) {
    const inbox = inboxes.get(agent);
    if (inbox) inbox.purgedId = Math.max(inbox.purgedId, upTo);
  }
  if (policy.pendingTtlMs === 0) return;
  // The broker's cursors can be ahead of the stored ones (they are committed with the next batch).
  const cursors = new Map([...inboxes].map(([agent, inbox]) => [agent, inbox.deliveredId]));
  for (const [agent, { count, upTo }] of await store.expire(now - policy.pendingTtlMs, cursors)) {
    const inbox = inboxes.get(agent)!;
    inbox.pending -= count;
    inbox.expired += count;
    inbox.purgedId = Math.max(inbox.purgedId, upTo);
    policy.onExpired?.(agent, count);
  }
}
