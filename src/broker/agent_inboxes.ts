/** The agents a broker knows, one inbox record each: created on first use or by the operator, removed for good. */
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import { agentRemoved, type ClusterView, type InboxHolds, type InboxRecord, type MessageStore, type SharedInboxes } from "../store/store.ts";
import type { AdmitAgent, AgentUse } from "./agent_admission.ts";
import type { CommitQueue } from "./commit_queue.ts";
import { HolderReads } from "./holder_reads.ts";
import { Holds } from "./holds.ts";
import { counted } from "../counted.ts";

/**
 * A count of pending messages is read again no sooner than this many times as long as the last one took after it
 * ended: it reads the undelivered messages of each inbox written since the last count (0.25 s for 1,000,000), and
 * each broker asks every second; this keeps a broker's counts to a tenth of the time at most.
 */
const COUNT_SPACING = 10;
/**
 * Nor later than this (ms): a count that waited (a lock DDL held, a stalled connection, up to the 30 s bound of a
 * call) did not cost the database that long, and its figures would stand ten times as long.
 */
const MAX_COUNT_GAP_MS = 10_000;

export interface AgentInboxesDeps {
  store: MessageStore;
  commits: CommitQueue;
  /** The broker's inbox records: the publish and delivery paths read and move them in place. */
  records: Map<AgentName, InboxRecord>;
  admitAgent: AdmitAgent | undefined;
  /** The newest id the broker has seen: a new inbox starts there (nothing before it is for the new agent). */
  lastId(): number;
  /** Whether the agent has a stream open (a removal is refused while it has, unless forced). */
  streaming(agent: AgentName): boolean;
  /** Ends what the broker keeps for a removed agent: its stream, its counts, its leases and its questions' reply holds. */
  forget(agent: AgentName): void;
  now(): number;
  /** A clock in ms that the wall clock's jumps do not move (`performance.now` unless a test sets one). */
  monotonic?: () => number;
}

export class AgentInboxes {
  #deps: AgentInboxesDeps;
  #records: Map<AgentName, InboxRecord>;
  /** Other brokers create inboxes too: their records join this one's from the cluster view. */
  #shared: SharedInboxes | undefined;
  #cluster: ClusterView | undefined;
  /** Removals under way: the store still holds the inbox until each settles. */
  #removals = new Map<AgentName, Promise<unknown>>();
  /** Reads of the cluster view started so far, and the newest one applied (one that answers late is older news). */
  #reads = 0;
  #applied = 0;
  /** The read of the view in progress, and the one that starts once it ends, shared by whoever asks meanwhile. */
  #looking: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  /**
   * Inboxes this broker created: the number of view reads started when each creation committed (Infinity while it
   * runs). A read started no later than that may not list the inbox yet, and must not drop it.
   */
  #created = new Map<AgentName, number>();
  /** Whether a read of the view with the pending counts is under way (one at a time), and when the next may start. */
  #counting = false;
  #nextCount = 0;
  #monotonic: () => number;
  /** Who waits on each agent's messages or replies, to be told once the operator removes it (`watchRemoval`). */
  #removalWatches = new Map<AgentName, Set<() => void>>();
  /** The messages each inbox counts pending that a publish of this broker is still committing (see `#count`). */
  #committing = new Holds<InboxRecord>();
  #holderReads = new HolderReads();

  constructor(deps: AgentInboxesDeps) {
    this.#deps = deps;
    this.#records = deps.records;
    this.#shared = deps.store.shared;
    this.#monotonic = deps.monotonic ?? (() => performance.now());
  }

  /** The brokers on the shared store and where the streams are, as last read (undefined on a store of its own). */
  get cluster(): ClusterView | undefined {
    return this.#cluster;
  }

  /** `agent`'s inbox record, if it has one; nothing is created or touched. */
  get(agent: AgentName): InboxRecord | undefined {
    return this.#records.get(agent);
  }

  /**
   * `agent`'s inbox record, if it has one, created nowhere: on a shared store another broker may have created it since
   * this one last looked (the view is re-read every second), so an unknown agent is looked for again first. A
   * removal under way settles first (one refused puts the record back).
   */
  async find(agent: AgentName): Promise<InboxRecord | undefined> {
    const removal = this.#removals.get(agent);
    if (removal !== undefined) await removal.catch(() => {});
    if (!this.#records.has(agent) && this.#shared !== undefined) await this.lookAgain();
    return this.#records.get(agent);
  }

  /**
   * The inbox for `agent`, created (and committed) on first use if `admitAgent` lets it; a read records a request
   * by it.
   */
  async inboxFor(agent: AgentName, use: AgentUse): Promise<InboxRecord> {
    // A removal under way settles first: until it commits, a shared store's view still lists the agent, and a
    // record taken from it would store messages under no inbox.
    const removal = this.#removals.get(agent);
    if (removal !== undefined) await removal.catch(() => {});
    // Looked for again on a shared store before the admission rule calls it unknown. Elsewhere without a turn: a
    // removal asked for in this one finds the inbox this request creates.
    let inbox = this.#records.get(agent);
    if (inbox === undefined && this.#shared !== undefined) inbox = await this.find(agent);
    if (inbox === undefined) {
      if (this.#holderReads.refusesCreation(agent)) throw agentRemoved(agent);
      this.#deps.admitAgent?.(agent, [...this.#records.keys()], use);
      inbox = await this.create(agent);
    }
    if (use === "read") this.touch(agent);
    return inbox;
  }

  /**
   * Refuses (`agent_removed`) a read that would create again an inbox the operator removed, when the client says it
   * read that inbox on this store (`hadInboxOn`: the store's id, from an earlier answer's `Interop-Store`). Another
   * store (a fresh data dir at the same URL) never had it: there the read creates it. So does this store restored
   * from a backup taken before the agent existed: only a recorded removal refuses (asked of the store last).
   */
  async refuseRemoved(agent: AgentName, hadInboxOn: string | undefined): Promise<void> {
    if (hadInboxOn !== this.#deps.store.id) return;
    const removal = this.#removals.get(agent);
    if (removal !== undefined) await removal.catch(() => {});
    // A record another broker on a shared store removed since this one last looked (it hears of a removal at once,
    // and looks every second) passes: the read creates nothing with it and finds nothing, and the next is refused.
    // Checking the store here would cost every read by a client that had the inbox a query.
    if (this.#records.has(agent)) return;
    // On a shared store another broker may have created it since this one last read the cluster view.
    if (this.#shared !== undefined) await this.lookAgain();
    if (this.#records.has(agent) || !(await this.#deps.store.wasRemoved(agent))) return;
    throw agentRemoved(agent);
  }

  /**
   * `refuseRemoved`, and until the returned function is called (the read ended), a removal of `agent` that lands
   * meanwhile keeps the read from creating its inbox again further in (`HolderReads`), when the client had it here.
   */
  async readAsHolder(agent: AgentName, hadInboxOn: string | undefined): Promise<() => void> {
    if (hadInboxOn !== this.#deps.store.id) return () => {};
    // Counted before the check: a removal that lands after the check found the inbox is one the count sees.
    const end = this.#holderReads.begin(agent);
    try {
      await this.refuseRemoved(agent, hadInboxOn);
    } catch (error) {
      end();
      throw error;
    }
    return end;
  }

  /**
   * Calls `onRemoved` once the operator removes `agent` (here, or on another broker of a shared store) while a wait
   * for its messages or replies is open, so that the wait ends as the agent's stream does; returns the function
   * that stops watching.
   */
  watchRemoval(agent: AgentName, onRemoved: () => void): () => void {
    const watches = this.#removalWatches.get(agent) ?? new Set();
    this.#removalWatches.set(agent, watches);
    watches.add(onRemoved);
    return () => {
      watches.delete(onRemoved);
      if (watches.size === 0 && this.#removalWatches.get(agent) === watches) this.#removalWatches.delete(agent);
    };
  }

  /** Creates `agent`'s inbox (committed before this resolves) unless it has one; no admission rule asked. */
  async create(agent: AgentName): Promise<InboxRecord> {
    // An inbox created while its removal runs would be deleted by it, and what is stored for it orphaned: the new
    // one comes after the removal, as a request made just after it would.
    const removal = this.#removals.get(agent);
    if (removal !== undefined) await removal.catch(() => {});
    // Another request may have created it while this one waited.
    const existing = this.#records.get(agent);
    if (existing !== undefined) return existing;
    const inbox = freshInbox(agent, this.#deps.lastId());
    this.#records.set(agent, inbox);
    if (this.#shared === undefined) await this.#deps.commits.update({ agent, deliveredId: inbox.deliveredId, create: true });
    else {
      this.#created.set(agent, Infinity);
      try {
        inbox.deliveredId = await this.#shared.createInbox(agent, inbox.deliveredId);
      } catch (error) {
        // Not created (PostgreSQL went away in between): a record kept would list the agent while the outage lasts and,
        // once it ends, send its publishes into no inbox (404 unknown_agent) until the next look dropped it. One whose
        // answer was lost after it committed comes back with that look.
        if (this.#records.get(agent) === inbox) this.#records.delete(agent);
        throw error;
      } finally {
        this.#created.set(agent, this.#reads);
      }
    }
    // Removed while it was being created (the operator's removal won): the publish or read that asked for it must
    // not store into, or count on, a record the broker no longer has. It gets the answer an unknown agent gets.
    if (this.#records.get(agent) !== inbox) {
      throw new InteropError("unknown_agent", `Unknown agent: ${agent} was removed while its inbox was being created; nothing was stored for it`);
    }
    return inbox;
  }

  /** Records that `agent` was seen now (committed with the next batch: a lost one only ages the figure). */
  touch(agent: AgentName): void {
    const inbox = this.#records.get(agent);
    if (inbox === undefined) return;
    inbox.lastSeen = this.#deps.now();
    this.#deps.commits.note({ agent, lastSeen: inbox.lastSeen });
  }

  /**
   * Reads the cluster view (on a shared store): inboxes another broker created join this one's, cursors move on,
   * and inboxes another broker removed go, as if removed here (a stream of theirs ends with the removal's error).
   * The store refuses a message for an inbox that is gone anyway; this makes the broker answer as one that never
   * knew the agent (admission decides), not with a record no store row backs. `counting` (the read every second):
   * the inboxes' pending counts too, which only the database has whole (see `SharedInboxes.cluster`), unless a count
   * is under way or the last one ended too recently (COUNT_SPACING).
   */
  look(counting = false): Promise<void> {
    const count = counting && !this.#counting && this.#monotonic() >= this.#nextCount;
    const looking = this.#read(count);
    this.#looking = looking;
    const settled = () => {
      if (this.#looking === looking) this.#looking = undefined;
    };
    looking.then(settled, settled);
    if (count) {
      const began = this.#monotonic();
      this.#counting = true;
      // A count that failed cost nothing to speak of: the next one comes on the next tick.
      const counted = (succeeded: boolean) => () => {
        this.#counting = false;
        const ended = this.#monotonic();
        this.#nextCount = succeeded ? ended + Math.min(COUNT_SPACING * (ended - began), MAX_COUNT_GAP_MS) : 0;
      };
      looking.then(counted(true), counted(false));
    }
    return looking;
  }

  /**
   * Reads the view as it is now (on a shared store): a read already under way started before the caller asked, and
   * may have missed what another broker did since; the next one, started once it ends, is shared by everyone who
   * asks meanwhile, so a burst of requests that must see the current view costs at most one read per round trip.
   */
  lookAgain(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const underWay = this.#looking;
    if (underWay === undefined) return this.look();
    const queued = underWay.catch(() => {}).then(() => {
      if (this.#queued === queued) this.#queued = undefined;
      return this.look();
    });
    this.#queued = queued;
    return queued;
  }

  async #read(counting: boolean): Promise<void> {
    const started = ++this.#reads;
    const before = counting
      ? new Map([...this.#records.values()].map((inbox) => [inbox, { ...inbox, pending: inbox.pending - this.#committing.count(inbox) }]))
      : undefined;
    const cluster = await this.#shared!.cluster(counting);
    // Counts apply whatever read came since: each is relative to its own start.
    if (before !== undefined) this.#count(before, cluster);
    if (started < this.#applied) return;
    this.#applied = started;
    this.#cluster = cluster;
    for (const [agent, deliveredId] of cluster.cursors) {
      const inbox = this.#records.get(agent);
      if (inbox !== undefined) inbox.deliveredId = Math.max(inbox.deliveredId, deliveredId);
      // Not one this broker is removing: the view was read before the removal committed.
      else if (!this.#removals.has(agent)) {
        const counted = { pending: cluster.pending?.get(agent) ?? 0, deadLetters: cluster.deadLetters?.get(agent) ?? 0 };
        this.#records.set(agent, { ...freshInbox(agent, deliveredId), ...counted });
      }
    }
    for (const agent of [...this.#records.keys()]) {
      const created = this.#created.get(agent) ?? 0;
      if (created >= started) continue;
      this.#created.delete(agent);
      if (cluster.cursors.has(agent)) continue;
      this.#records.delete(agent);
      this.#forget(agent);
    }
  }

  /**
   * Sets each inbox's pending count from the database's (`counted`), plus what this broker's own count moved by since
   * the read started (`before`: the counts then, less what its publishes were still committing). The broker counts
   * its own publishes and deliveries; those of the others only the database has: a publisher's count grew for good
   * with each message another broker's stream delivered, until --max-pending refused them all. What this broker
   * committed during the read may or may not be in the database's count: the figure can be that much too high (never
   * too low by a publish) until the next count. One that waited for a read with nothing of its own moving was never
   * taken under steady traffic. Dead letters alike: a broker counted only its own parks, so one acknowledged on
   * another broker kept `interop status --max-dead-letters` failing on this one until it restarted.
   */
  #count(before: Map<InboxRecord, InboxRecord>, { pending, deadLetters }: ClusterView): void {
    for (const inbox of this.#records.values()) {
      // One created since the read started (by this broker, or from a view another read brought) began at 0.
      const then = before.get(inbox);
      const counted = pending?.get(inbox.agent);
      if (counted !== undefined) inbox.pending = Math.max(0, counted + inbox.pending - (then?.pending ?? 0));
      const letters = deadLetters?.get(inbox.agent);
      if (letters !== undefined) inbox.deadLetters = Math.max(0, letters + inbox.deadLetters - (then?.deadLetters ?? 0));
    }
  }

  /** Notes `messages` counted pending in `inboxes` that a publish is committing, until the returned function is called. */
  committing(inboxes: InboxRecord[], messages: number): () => void {
    return this.#committing.hold(inboxes, messages);
  }

  /** Creates `agent`'s inbox if it has none (`interop agent add`); resolves with whether it was created. */
  async add(agent: AgentName): Promise<boolean> {
    // On a shared store another broker may have created or removed it, or others, since this one last looked: the
    // answer (created or not) and the admission rule's count go by the view as it is now.
    if (this.#shared !== undefined) await this.lookAgain();
    if (this.#records.has(agent)) return false;
    this.#deps.admitAgent?.(agent, [...this.#records.keys()], "add");
    await this.create(agent);
    return true;
  }

  /**
   * Deletes `agent`'s inbox for good (`interop agent remove`): its messages, cursor and dead letters; the agent is
   * unknown again. Refused while messages are pending or a stream is open, unless `force` (the stream then ends).
   * Resolves with the number of messages deleted.
   */
  async remove(agent: AgentName, force: boolean): Promise<number> {
    // One another broker on a shared store created since this one last looked is looked for again, not unknown (a
    // known one is removed in this turn: a request made after this call finds the removal under way).
    const inbox = this.#records.get(agent) ?? (this.#shared === undefined ? undefined : await this.find(agent));
    if (inbox === undefined) {
      throw new InteropError("unknown_agent", `Unknown agent: ${agent} has no inbox; the known agents are ${[...this.#records.keys()].sort().join(", ") || "none"}`);
    }
    // On a shared store the store counts what is pending (whichever broker stored it) and sees streams on other
    // brokers, in the removal's transaction; this broker's own stream is refused here, before it is ended.
    const refuse = (pending: number, stream: string | undefined) => {
      if (force || (pending === 0 && stream === undefined)) return;
      const holds = [
        ...(pending > 0 ? [counted(pending, "pending message")] : []),
        ...(stream !== undefined ? [`a stream open${stream} (its listener would create the inbox again on reconnecting: stop it first)`] : []),
      ];
      throw new InteropError("agent_busy", `Not removed: ${agent} has ${holds.join(" and ")}; pass --force (force=1) to delete it anyway`);
    };
    refuse(this.#shared === undefined ? inbox.pending : 0, this.#deps.streaming(agent) ? "" : undefined);
    const refuseFound = this.#shared === undefined || force ? undefined : (found: InboxHolds) =>
      refuse(found.pending, found.streamElsewhere ? " on another broker" : undefined);
    this.#records.delete(agent);
    // What the broker keeps for the agent (its reply holds, deliveries, streams) is forgotten once the store can no
    // longer refuse the removal: forgotten before a refusal (not forced, on a shared store), its `hold_reply` holds
    // were gone, and the reply went to its in-order readers. Its waits end at once either way (one refused, they go
    // on: see take_routes' untilEnded).
    const forgetLater = refuseFound !== undefined;
    if (!forgetLater) this.#deps.forget(agent);
    this.#endWaits(agent);
    const removal = (async () => {
      try {
        // Publishes to it that were already queued commit first, so the removal takes their messages too.
        await this.#deps.commits.drain();
        const removed = await this.#deps.store.removeInbox(agent, refuseFound);
        this.#holderReads.removed(agent);
        if (forgetLater) this.#deps.forget(agent);
        return removed;
      } catch (error) {
        if (!this.#records.has(agent)) this.#records.set(agent, inbox);
        throw error;
      }
    })();
    this.#removals.set(agent, removal);
    try {
      return await removal;
    } finally {
      if (this.#removals.get(agent) === removal) this.#removals.delete(agent);
    }
  }

  /** Another broker of the shared store removed `agent`. */
  #forget(agent: AgentName): void {
    this.#holderReads.removed(agent);
    this.#deps.forget(agent);
    this.#endWaits(agent);
  }

  /** Tells the waits for `agent`'s messages or replies that it is being removed (`watchRemoval`). */
  #endWaits(agent: AgentName): void {
    const watches = this.#removalWatches.get(agent);
    this.#removalWatches.delete(agent);
    for (const onRemoved of watches ?? []) onRemoved();
  }
}

/** The record of an inbox that holds nothing yet, its cursor at `deliveredId`. */
function freshInbox(agent: AgentName, deliveredId: number): InboxRecord {
  return { agent, deliveredId, purgedId: 0, pending: 0, lastSeen: null, deadLetters: 0, expired: 0 };
}
