/** Retention: deletes delivered messages past their replay window, and expires undelivered ones past the pending TTL. */
import type { AgentName } from "../message.ts";
import type { InboxRecord, MessageStore, RetentionStep } from "../store/store.ts";
import type { DeliveryMarks } from "./delivery_marks.ts";
import { EventLoopSlices } from "./event_loop_slices.ts";
import { limitFor, type PerAgent } from "./per_agent.ts";
import { settled } from "./shared_waiters.ts";

export interface RetentionPolicy {
  /** How long delivered messages stay for replay, in ms. */
  retentionMs: number;
  /** How long an undelivered message may wait, in ms (0: until delivered). */
  pendingTtlMs: PerAgent<number>;
  onExpired?(agent: AgentName, count: number): void;
  /**
   * Whether a reader holds a lease on the inbox (`/poll?peek=1&lease=S`): its messages expire one TTL later
   * meanwhile (LEASED_TTLS), as the reader was shown them and will take them. Asked in the turn that expires, so no
   * lease is granted in between. A store other brokers share asks its own leases (`MessageStore.expire`).
   */
  leased?(agent: AgentName): boolean;
  /** Messages handed to a reader whose take is still committing (`ExpiryOptions.taking`), asked at each step. */
  taking?(): readonly number[];
}

const PRUNE_EVERY_MS = 60_000;

/**
 * How many pending TTLs a message of an inbox under a lease may wait: one more than others, for the reader that was
 * shown it to take it, and no more, so that a lease renewed for ever (a reader stuck printing) does not hold the
 * inbox's expiry for ever.
 */
export const LEASED_TTLS = 2;

/** How often to apply retention: every minute, or often enough for the shortest pending TTL to expire messages on time. */
export function retentionInterval(pendingTtls: number[]): number {
  const shortest = Math.min(...pendingTtls.filter((ttl) => ttl > 0));
  return Number.isFinite(shortest) ? Math.min(PRUNE_EVERY_MS, Math.max(250, shortest / 2)) : PRUNE_EVERY_MS;
}

/**
 * Applies the policy to the store and updates the broker's inbox records to match. A delivered message stays for the
 * retention period after its delivery (`marks`), not after its creation: one that waited longer than the period would
 * otherwise be deleted as it is delivered, before a reader that was sent it and stopped could resume and have it.
 * Expiry comes first, and `expiryDone` hears when it is over (failed or not): a broker starting serves from then on,
 * with nothing past its pending TTL left to hand out, while the deletion of what was delivered, which no reader misses,
 * goes on in its steps (a backlog of 1,000,000 took 0.9 s, which a restart waited for). Between the two the cursors
 * move over what was taken out of order above them (`passTaken`), which an in-order read alone moved them past.
 */
export async function applyRetention(
  store: MessageStore,
  inboxes: Map<AgentName, InboxRecord>,
  marks: DeliveryMarks,
  policy: RetentionPolicy,
  now: number,
  expiryDone: () => void = () => {},
): Promise<void> {
  const deliveredBefore = marks.deliveredBefore(inboxes, now);
  try {
    await expireUndelivered(store, inboxes, policy, now);
  } finally {
    expiryDone();
  }
  await passTaken(store, inboxes);
  for await (const purged of steps(() => store.prune(now - policy.retentionMs, deliveredBefore))) {
    for (const [agent, upTo] of purged) {
      const inbox = inboxes.get(agent);
      if (inbox) inbox.purgedId = Math.max(inbox.purgedId, upTo);
    }
  }
}

/**
 * Expires what waited past its inbox's pending TTL. The purge mark stays where it is: a resume from an id below the
 * expired messages still replays what was delivered after that id, and one from the cursor is no different from a
 * read without an id.
 */
async function expireUndelivered(store: MessageStore, inboxes: Map<AgentName, InboxRecord>, policy: RetentionPolicy, now: number): Promise<void> {
  if (![...inboxes.keys()].some((agent) => limitFor(policy.pendingTtlMs, agent) > 0)) return;
  for await (const expired of steps(() => expireStep(store, inboxes, policy, now))) {
    for (const [agent, count] of expired) {
      const inbox = inboxes.get(agent);
      if (inbox === undefined) continue;
      // Not below 0: a count the broker never had (another broker's publishes) is not taken off it.
      inbox.pending = Math.max(0, inbox.pending - count);
      inbox.expired += count;
      policy.onExpired?.(agent, count);
    }
  }
}

/**
 * One step of expiry, its cutoffs, cursors and takes under way taken in the turn it starts: no lease is granted in
 * between (`leased`), the broker's cursors, which can be ahead of the stored ones (committed with the next batch),
 * moved on since the last step, and a take out of order (a reply wait's) marked taken meanwhile hands its message to
 * its reader before its commit says so.
 */
function expireStep(store: MessageStore, inboxes: Map<AgentName, InboxRecord>, policy: RetentionPolicy, now: number) {
  const cutoffs = new Map<AgentName, number>();
  const leasedCutoffs = new Map<AgentName, number>();
  for (const agent of inboxes.keys()) {
    const ttl = limitFor(policy.pendingTtlMs, agent);
    if (ttl <= 0) continue;
    cutoffs.set(agent, now - (policy.leased?.(agent) ? LEASED_TTLS : 1) * ttl);
    leasedCutoffs.set(agent, now - LEASED_TTLS * ttl);
  }
  return store.expire(cutoffs, { delivered: cursorsOf(inboxes), leasedCutoffs, taking: policy.taking?.() });
}

/**
 * Moves each inbox's cursor over the messages right above it taken out of order (`MessageStore.passTaken`). After
 * `deliveredBefore`: the next runs' marks count them delivered now, so they go a retention period later, as messages
 * delivered in order do.
 */
async function passTaken(store: MessageStore, inboxes: Map<AgentName, InboxRecord>): Promise<void> {
  for (const [agent, deliveredId] of await settled(store.passTaken(cursorsOf(inboxes)))) {
    const inbox = inboxes.get(agent);
    if (inbox) inbox.deliveredId = Math.max(inbox.deliveredId, deliveredId);
  }
}

/** Each inbox's cursor as the broker has it (further than the stored one until its next batch commits). */
function cursorsOf(inboxes: Map<AgentName, InboxRecord>): Map<AgentName, number> {
  return new Map([...inboxes].map(([agent, inbox]) => [agent, inbox.deliveredId]));
}

/**
 * Runs a retention transaction until it leaves nothing to do, yielding what each changed, with a turn of the event
 * loop between two (SQLite's run on it: each step holds it ~20 ms, where the whole of a large backlog held it for
 * seconds). A COMMIT whose answer PostgreSQL dropped is waited out (`settled`): what it deleted is counted once it
 * is known, as the next run finds nothing left to count (the pending counts of expired messages stayed up for good).
 */
async function* steps(step: () => Promise<RetentionStep>): AsyncGenerator<Map<AgentName, number>> {
  const turns = new EventLoopSlices(1);
  for (;;) {
    const { changed, more } = await settled(step());
    yield changed;
    if (!more) return;
    await turns.after(1);
  }
}
