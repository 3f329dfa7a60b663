/**
 * What the A2A layer asks of a message it shows as a task: the message and what became of it, whether it was
 * delivered, the ones sent under a key prefix, its reply, and its withdrawal when the task is cancelled.
 */
import type { AgentName, Envelope } from "../message.ts";
import type { InboxRecord, MessageOutcome, MessageStore, Parties } from "../store/store.ts";
import type { AgentInboxes } from "./agent_inboxes.ts";
import type { CommitQueue } from "./commit_queue.ts";
import type { Deliveries } from "./deliveries.ts";
import { setTimeout } from "node:timers";
import { messagesPerRead } from "./read_pages.ts";
import { settled } from "./shared_waiters.ts";

/**
 * Tasks' messages one read of the store asks for at most: each read holds its messages whole (fewer when
 * --max-body-bytes is large, see `messagesPerRead`). A page of 100 messages of 1 MiB was 100 MiB at once.
 */
const TASKS_PER_READ = 10;
/**
 * The longest a task listing reads before other requests get a turn. A turn per read of 10 was 10 tasks and their
 * replies at a time (30 MiB of 1 MiB messages): four ListTasks passing 200 such tasks by held /status 12.5 s (load 17-21).
 */
const SLICE_MS = 10;

export interface MessageTasksDeps {
  store: MessageStore;
  commits: CommitQueue;
  agents: AgentInboxes;
  /**
   * The broker's delivery bookkeeping: a withdrawal adds its message to `taken` (out of order, above the cursor) and
   * holds it from expiry while it commits.
   */
  deliveries: Deliveries;
  now(): number;
  /** The largest message a publish may make (`--max-body-bytes`): what one read may hold at most is counted in it. */
  maxMessageBytes?: number;
  /**
   * Runs `work` as a take of `agent`'s messages (`Leases.take`): refused (`inbox_leased`) while a reader leases the
   * inbox, and a lease asked for meanwhile is granted after it.
   */
  asTake<T>(agent: AgentName, work: () => Promise<T>): Promise<T>;
}

export class MessageTasks {
  #deps: MessageTasksDeps;

  constructor(deps: MessageTasksDeps) {
    this.#deps = deps;
  }

  /** The stored message with this id (whoever it is for), and what became of it; undefined once retention removed it. */
  async message(id: number): Promise<{ envelope: Envelope; outcome: MessageOutcome } | undefined> {
    const [envelope, outcome] = await Promise.all([this.#deps.store.find(id), this.#deps.store.outcome(id)]);
    return envelope === undefined ? undefined : { envelope, outcome };
  }

  /** What became of stored message `id` (as far as retention kept it): for a message the caller has in hand. */
  async outcome(id: number): Promise<MessageOutcome> {
    return await this.#deps.store.outcome(id);
  }

  /** Whether message `id` for `agent` was handed out (or withdrawn): above the cursor only a wait or a poll takes one. */
  async isDelivered(agent: AgentName, id: number, outcome: MessageOutcome): Promise<boolean> {
    const inbox = this.#deps.agents.get(agent);
    if ((inbox !== undefined && id <= inbox.deliveredId) || this.#deps.deliveries.taken.has(id) || outcome.taken) return true;
    // On a shared store a reader on another broker may have moved the cursor (or its broker created the inbox) since
    // this one last looked (once a second): the store's cursor says.
    const { shared } = this.#deps.store;
    return shared !== undefined && id <= (await shared.version(agent)).deliveredId;
  }

  /**
   * Messages with an Idempotency-Key starting with `prefix` (between `parties`), ids below `beforeId`, newest first,
   * read from the store a few at a time as they are asked for, with a turn of the event loop once SLICE_MS went by
   * since the last (what the caller did with those it was given counts): the store answers at once (SQLite), and a
   * listing that read its tasks and their replies without one (the dashboard's table of 50, or a ListTasks whose
   * filters pass 200 by) held every other request up until it was done.
   */
  async *sentWithKeyPrefix(prefix: string, parties: Parties, beforeId: number): AsyncGenerator<Envelope> {
    const limit = messagesPerRead(TASKS_PER_READ, this.#deps.maxMessageBytes);
    let sliceStart = performance.now();
    const turn = async () => {
      if (performance.now() - sliceStart < SLICE_MS) return;
      // A timer, not setImmediate: see EventLoopSlices (Deno polls no I/O while immediates queue more).
      await new Promise((resolve) => setTimeout(resolve, 0));
      sliceStart = performance.now();
    };
    for (let before = beforeId;;) {
      await turn();
      const page = await this.#deps.store.findByKeyPrefix(prefix, parties, before, limit);
      for (const envelope of page) {
        await turn();
        yield envelope;
      }
      if (page.length < limit) return;
      before = page[page.length - 1].id;
    }
  }

  /**
   * Admits `agent`'s inbox as a reader does (created if the admission rules let it): an A2A caller sends and then
   * waits for the reply, which needs somewhere to go, as an asker's does.
   */
  async admitReader(agent: AgentName): Promise<void> {
    await this.#deps.agents.inboxFor(agent, "read");
  }

  /**
   * Withdraws message `id` from `agent`'s inbox before it is delivered (its sender cancelled it): from now on no
   * stream, poll or wait hands it out, nor after a restart (committed before this resolves). False when it was
   * delivered (or taken) already. Refused (409 `inbox_leased`) while a reader leases the inbox, as a take is: that
   * reader may have shown it already, and takes it with its page.
   */
  async withdraw(agent: AgentName, id: number): Promise<boolean> {
    const inbox = await this.#deps.agents.inboxFor(agent, "send");
    return await this.#deps.asTake(agent, () => this.#withdrawFrom(inbox, id));
  }

  async #withdrawFrom(inbox: InboxRecord, id: number): Promise<boolean> {
    const { deliveries: { taken }, store } = this.#deps;
    const agent = inbox.agent;
    // Decided and marked in one turn: a delivery either came before (false) or skips it (taken). The id stays
    // in taken (one number per cancel): a second cancel must not count it out of `pending` again.
    if (id <= inbox.deliveredId || taken.has(id)) return false;
    // On a shared store the take is the store's (compare-and-set): a reader on another broker may have it already.
    if (store.shared !== undefined && !(await settled(store.shared.takeOne(agent, id)))) return false;
    taken.add(id);
    // Counted out of `pending` here: an expiry step before the commit must not count it out again.
    const release = this.#deps.deliveries.hold([id]);
    // Never below 0: on a shared store the count is the database's as last read, which may not have it yet.
    const counted = inbox.pending > 0;
    if (counted) inbox.pending--;
    try {
      await this.#deps.commits.update({ agent, withdrawn: [{ id, at: this.#deps.now() }] });
    } catch (error) {
      taken.delete(id);
      if (counted) inbox.pending++;
      throw error;
    } finally {
      release();
    }
    return true;
  }
}
