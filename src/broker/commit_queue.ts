/** Groups the writes that arrive in one turn of the event loop into one store transaction. */
import { clearTimeout, setImmediate, setTimeout } from "node:timers";
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope } from "../message.ts";
import { CommitInDoubt, type InboxUpdate, type MessageStore, type NewMessage, type WriteBatch } from "../store/store.ts";

/**
 * Event-loop turns a commit waits for company. A publish answered by the last commit comes back while the other
 * answers are still being written, so it lands in the next poll phase, not this one; two more turns (no timer:
 * microseconds when the broker is idle) let it join. Measured with 16 publishers, strict: 10 → 15 messages per
 * commit, +19 % throughput and −13 % CPU per message; latency at 500 msg/s unchanged.
 */
const GATHER_TURNS = 3;

/**
 * How long an advisory inbox change (a stream's cursor, a last-seen time) may wait for a commit to ride. Each stream
 * write moves a cursor, so a broadcast to N streams made a second commit of N cursor upserts after every publish;
 * now they join the next commit (the next publish's, under load) or one of their own this long after. Measured
 * (fan-out, 100 streams, paired runs): −2 to −4 % server CPU per delivery on Node, −5 to −9 % on Deno; held a
 * whole second they saved no more.
 * A `kill -9` loses at most the changes still waiting: a client resuming without an id then sees those messages
 * again (as it may anyway: see recent_writes.ts), so the wait is short.
 */
const ADVISORY_DELAY_MS = 100;

/** What a store refuses one publish for, saying nothing against the others in its commit (see `#write`). */
const ISOLATED = new Set(["invalid_body", "duplicate_key", "unknown_agent"]);

interface Waiter {
  messages: NewMessage[];
  resolve(stored: Envelope[]): void;
  reject(error: unknown): void;
}

interface InboxWaiter {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Concurrent publishes share one commit (one fsync), so strict durability does not cost throughput.
 * Commits run one at a time, in arrival order.
 */
export class CommitQueue {
  #store: MessageStore;
  #waiters: Waiter[] = [];
  #inboxes = new Map<string, InboxUpdate>();
  #inboxWaiters: InboxWaiter[] = [];
  #advisory = new Map<string, InboxUpdate>();
  #advisoryTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * When the first advisory change still waiting was noted (ms, on the monotonic clock: after a wall clock set back
   * an hour, an idle broker held them an hour): its commit is due `ADVISORY_DELAY_MS` after.
   */
  #advisorySince = 0;
  #scheduled = false;
  #running: Promise<void> = Promise.resolve();
  /** Settles when the commit that takes what is queued now has run: what `drain()` waits for. */
  #nextCommit: PromiseWithResolvers<void> | undefined;
  #onCommit: (stored: Envelope[]) => void;
  #known: (agent: AgentName) => boolean;

  /**
   * `onCommit` hears of each successful transaction with the messages it stored, in id order, before any
   * `append` resolves: the broker hands a whole commit to its streams at once. An inbox change for an agent
   * `known` denies (removed meanwhile: a cursor noted by a read that started before) is dropped: a store one broker
   * owns would create its inbox again (a shared one changes only an inbox that exists: `InboxUpdate.create`).
   */
  constructor(store: MessageStore, onCommit: (stored: Envelope[]) => void = () => {}, known: (agent: AgentName) => boolean = () => true) {
    this.#store = store;
    this.#onCommit = onCommit;
    this.#known = known;
  }

  /** Stores messages; resolves once they are committed. */
  append(messages: NewMessage[]): Promise<Envelope[]> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ messages, resolve, reject });
      this.#schedule();
    });
  }

  /** Records an inbox change with the next commit; resolves once it is committed. */
  update(update: InboxUpdate): Promise<void> {
    merge(this.#inboxes, update);
    this.#schedule();
    return new Promise((resolve, reject) => this.#inboxWaiters.push({ resolve, reject }));
  }

  /**
   * Records an advisory inbox change (a stream's cursor, a last-seen time) with the next commit, or one of its own
   * within `ADVISORY_DELAY_MS`, without waiting for it: a failed commit surfaces on the next publish or poll, and
   * these run per message. The queue keeps `update` (each caller passes a literal of its own): an agent's first
   * change is held as it is, not copied (a broadcast's delivery notes one per recipient).
   */
  note(update: InboxUpdate): void {
    if (this.#advisory.size === 0) this.#advisorySince = performance.now();
    if (this.#advisory.has(update.agent)) merge(this.#advisory, update);
    else this.#advisory.set(update.agent, update);
    this.#advisoryTimer ??= setTimeout(this.#advisoryDue, ADVISORY_DELAY_MS);
  }

  /**
   * The advisory timer runs on past the commits that take what it was set for (each commit cleared it, and the next
   * delivery set it again: a timer set and cleared per commit cost Deno 2-3.5 µs, its `node:timers` being JavaScript
   * over ops, Node 0.2), and looks again when it fires: it commits what has waited its time, or waits for the rest.
   */
  readonly #advisoryDue = () => {
    this.#advisoryTimer = undefined;
    if (this.#advisory.size === 0) return;
    const left = this.#advisorySince + ADVISORY_DELAY_MS - performance.now();
    if (left > 0) this.#advisoryTimer = setTimeout(this.#advisoryDue, left);
    else this.#schedule();
  };

  /**
   * Resolves when what is queued at the call, advisory changes included, is committed (or has failed), and with it
   * the advisory changes made while it waited: a commit hands its messages to streams, which note their cursors
   * (lost if the store closes before they ride a commit: an id-less resume would repeat those messages). So once
   * the commit taking what was queued has run, one more takes what is queued then, and the drain ends there: on a
   * busy broker (an agent removed while others publish) each commit brings the cursors of the next, and the
   * publishes queued meanwhile are answered by their own commit.
   */
  async drain(): Promise<void> {
    // A commit running at the call delivers its messages as well.
    if (!this.#queued()) await this.#running;
    for (let round = 0; round < 2 && this.#queued(); round++) {
      this.#schedule();
      this.#nextCommit ??= Promise.withResolvers();
      await this.#nextCommit.promise;
    }
    // Nothing left for the advisory timer to look for: it would hold a closing broker's event loop open.
    if (this.#advisory.size === 0) {
      clearTimeout(this.#advisoryTimer);
      this.#advisoryTimer = undefined;
    }
  }

  #queued(): boolean {
    return this.#waiters.length > 0 || this.#inboxes.size > 0 || this.#advisory.size > 0;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    let turns = GATHER_TURNS;
    const gather = () => {
      if (--turns > 0) return void setImmediate(gather);
      this.#running = this.#running.then(() => this.#commit());
    };
    setImmediate(gather);
  }

  async #commit(): Promise<void> {
    this.#scheduled = false;
    const drained = this.#nextCommit;
    this.#nextCommit = undefined;
    // With no other change queued (a fan-out's commits), the advisory ones are the commit's as they are.
    if (this.#inboxes.size === 0) this.#inboxes = this.#advisory;
    else for (const update of this.#advisory.values()) merge(this.#inboxes, update);
    this.#advisory = new Map();
    const waiters = this.#waiters;
    const inboxWaiters = this.#inboxWaiters;
    const inboxes = [...this.#inboxes.values()].filter((update) => this.#known(update.agent));
    this.#waiters = [];
    this.#inboxWaiters = [];
    this.#inboxes = new Map();
    try {
      if (waiters.length > 0 || inboxes.length > 0) await this.#write(waiters, inboxes, inboxWaiters);
      else for (const waiter of inboxWaiters) waiter.resolve();
    } finally {
      drained?.resolve();
    }
  }

  /**
   * Commits a group. A store refuses a message it cannot store as such with `invalid_body` (or a publish whose
   * Idempotency-Key another broker committed meanwhile with `duplicate_key`, or whose recipient's inbox another
   * broker removed with `unknown_agent`), which says nothing against the others: the group is then split in two, each
   * half committed on its own (the inbox updates go apart from the last message), until the bad publisher alone is
   * refused. Any other failure (a full disk, a
   * broken database) fails the whole group, as it would fail each part.
   */
  async #write(waiters: Waiter[], inboxes: InboxUpdate[], inboxWaiters: InboxWaiter[]): Promise<void> {
    let stored: Envelope[];
    try {
      stored = await this.#store.write({ messages: waiters.flatMap((waiter) => waiter.messages), inboxes });
    } catch (error) {
      if (error instanceof CommitInDoubt) {
        // Its writers wait for the truth; the commits after it go on (and fail fast until the store knows).
        error.outcome.then(
          (kept) => kept === undefined ? this.#failed(waiters, inboxWaiters, error) : this.#succeeded(waiters, inboxWaiters, kept),
          (cause) => this.#failed(waiters, inboxWaiters, cause),
        );
        return;
      }
      const isolate = error instanceof InteropError && ISOLATED.has(error.code) &&
        (waiters.length > 1 || (waiters.length === 1 && inboxes.length > 0));
      if (!isolate) {
        this.#failed(waiters, inboxWaiters, error);
        return;
      }
      const half = Math.floor(waiters.length / 2);
      await this.#write(waiters.slice(0, half), inboxes, inboxWaiters);
      await this.#write(waiters.slice(half), [], []);
      return;
    }
    this.#succeeded(waiters, inboxWaiters, stored);
  }

  #succeeded(waiters: Waiter[], inboxWaiters: InboxWaiter[], stored: Envelope[]): void {
    this.#onCommit(stored);
    let offset = 0;
    for (const waiter of waiters) {
      waiter.resolve(stored.slice(offset, offset + waiter.messages.length));
      offset += waiter.messages.length;
    }
    for (const waiter of inboxWaiters) waiter.resolve();
  }

  #failed(waiters: Waiter[], inboxWaiters: InboxWaiter[], error: unknown): void {
    for (const waiter of [...waiters, ...inboxWaiters]) waiter.reject(error);
  }
}

/** Adds `update` to the agent's pending one: merged into the queue's own copy, as this runs per delivered message. */
function merge(updates: Map<string, InboxUpdate>, update: InboxUpdate): void {
  const merged = updates.get(update.agent);
  if (merged === undefined) return void updates.set(update.agent, { ...update });
  if (update.create) merged.create = true;
  merged.deliveredId = maxDefined(merged.deliveredId, update.deliveredId);
  merged.lastSeen = maxDefined(merged.lastSeen, update.lastSeen);
  // New arrays: the first update's are its caller's.
  if (update.polled) merged.polled = merged.polled ? [...merged.polled, ...update.polled] : update.polled;
  if (update.withdrawn) merged.withdrawn = merged.withdrawn ? [...merged.withdrawn, ...update.withdrawn] : update.withdrawn;
  // The newer replay point replaces the older: it can move back (a replay), or be cleared.
  if (update.replay !== undefined) merged.replay = update.replay;
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}
