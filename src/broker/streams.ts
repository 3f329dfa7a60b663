/** The broker's open streams, one per agent (the newest wins), and how a new one is validated and started. */
import { Buffer } from "node:buffer";
import { InteropError, isStorageUnavailable } from "../errors.ts";
import { type AgentName, type Envelope, messageKey } from "../message.ts";
import type { StreamSink } from "../runtime/types.ts";
import { cutShort, type InboxRecord, type MessageStore, readsOn, type ReplayPoint, type SharedInboxes } from "../store/store.ts";
import type { StreamEnd, StreamFormat } from "./stream_format.ts";
import { HeartbeatSlots } from "./heartbeat_slots.ts";
import { READ_CHARS } from "./read_pages.ts";
import { RecentWrites } from "./recent_writes.ts";
import { tryUntilLanded } from "./store_retry.ts";
import { StreamSession } from "./stream_session.ts";
import { resolveStart, type StreamStart } from "./stream_start.ts";

/** Messages read from the store per page while a stream catches up, at most (and a MiB of them: `StreamSession`). */
const PAGE_SIZE = 500;
/** Messages read at a time when a resume skips what lies between the cursor and its id, at most (and READ_CHARS). */
const SKIP_PAGE = 1000;
/**
 * How long a stream's closing in a shared store waits to be tried again after it failed, doubling with each failure
 * up to the cap: in an outage each try fails fast, and every stream that ended would otherwise ask four times a second.
 */
const CLOSE_RETRY = { firstMs: 250, maxMs: 4000 };

/** A prepared stream: validated, ready to be attached to the response once its headers are out. */
export type StreamStarter = (sink: StreamSink) => void;

/**
 * A stream ready to start: `open` starts it; `resumedAfter` is the id it resumes after when it took the client's id
 * as one of this store's, though the client named another store (one `interop migrate` moved here): the client's
 * saved id stands.
 */
export interface PreparedStream {
  open: StreamStarter;
  resumedAfter?: number;
}

/** What the streams need of the broker. */
export interface StreamsDeps {
  store: MessageStore;
  /** The store's `readAfter` as an in-order reader reads it: stopping before an awaited reply (`AwaitedReplies`). */
  readInOrder(agent: AgentName, afterId: number, limit: number, maxChars?: number): Promise<Envelope[]>;
  /** The agent's inbox, created on first use; records a request by it. */
  inboxFor(agent: AgentName): Promise<InboxRecord>;
  /**
   * Throws `agent_removed` when a client that read the agent's inbox on this store (`hadInboxOn`) would create it
   * again; else resolves with the function that ends the read (see `AgentInboxes.readAsHolder`).
   */
  readAsHolder(agent: AgentName, hadInboxOn: string | undefined): Promise<() => void>;
  /** The agent's inbox record as it is now, if it has one (nothing created). */
  currentInbox(agent: AgentName): InboxRecord | undefined;
  /** The highest id this broker knows of. */
  lastId(): number;
  /** An id seen in the store (another broker may have handed it out). */
  sawId(id: number): void;
  /** Whether a message was taken out of order by a wait (streams skip it until the store says so). */
  isTaken(id: number): boolean;
  /** Messages written to a stream. */
  delivered(inbox: InboxRecord, envelopes: Envelope[]): void;
  /** A stream of `agent` ended. */
  ended(agent: AgentName): void;
  /** Where a resume of `agent` without an id now starts (undefined: from the cursor), to keep across a restart. */
  replayPoint(agent: AgentName, replay: ReplayPoint | undefined): void;
  secondStream: "replace" | "refuse";
  writeTimeoutMs: number;
  resumeWindowMs: number;
  heartbeatMs: number;
}

/** How a removed agent's stream ends. */
const REMOVED = (agent: AgentName): StreamEnd => ({ event: "error", message: `${agent} was removed by the operator`, code: "agent_removed" });

export class Streams {
  #deps: StreamsDeps;
  #sessions = new Map<AgentName, StreamSession>();
  #recentWrites: RecentWrites;
  #heartbeats: HeartbeatSlots<StreamSession>;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  /** Aborted when the broker stops: a stream's closing is then tried once (its broker's row then says it is gone). */
  #stopping = new AbortController();

  constructor(deps: StreamsDeps) {
    this.#deps = deps;
    this.#recentWrites = new RecentWrites(deps.resumeWindowMs, deps.heartbeatMs);
    this.#heartbeats = new HeartbeatSlots(deps.heartbeatMs, performance.now());
    this.#heartbeatIn(this.#heartbeats.tickMs);
  }

  /** The replay points the store kept from before a restart (see `RecentWrites.restore`). */
  restore(points: Map<AgentName, ReplayPoint>): void {
    const now = performance.now();
    const wallNow = Date.now();
    for (const [agent, { after, writes }] of points) {
      // Each write's wall-clock time as this process's: one from the future (a clock stepped back) is now. A point an
      // older interop kept, without them, is dated now, as that interop did.
      const kept = writes?.map(([firstId, at]) => ({ firstId, at: now - Math.max(0, wallNow - at) })) ?? [{ firstId: after + 1, at: now }];
      // Without a window the point goes: kept, it would replay what this run delivers once a window is set again.
      if (!this.#recentWrites.restore(agent, kept, now)) this.#deps.replayPoint(agent, undefined);
    }
  }

  /** What the store keeps for `agent` at `now` (`RecentWrites.keptWrites`), its times on the wall clock. */
  #keptPoint(agent: AgentName, now: number): ReplayPoint | undefined {
    const writes = this.#recentWrites.keptWrites(agent, now);
    if (writes === undefined) return undefined;
    const wallNow = Date.now();
    return { after: writes[0].firstId - 1, writes: writes.map(({ firstId, at }) => [firstId, Math.round(wallNow - (now - at))]) };
  }

  has(agent: AgentName): boolean {
    return this.#sessions.has(agent);
  }

  /** A commit's messages for `agent`, in id order, handed to its stream (none on a shared store: see `wake`). */
  offer(agent: AgentName, envelopes: Envelope[]): void {
    this.#sessions.get(agent)?.offer(envelopes);
  }

  /** Streams of these agents (all when undefined) read the store from where they are. */
  wake(agents: AgentName[] | undefined): void {
    if (agents === undefined) for (const session of this.#sessions.values()) session.wake();
    else for (const agent of agents) this.#sessions.get(agent)?.wake();
  }

  /** A newer stream for `agent` opened on another broker: this broker's `session` ends. */
  replaced(agent: AgentName, session: string): void {
    const current = this.#sessions.get(agent);
    if (current?.id === session) current.close({ event: "replaced", message: `a newer stream for ${agent} took over on another broker` });
  }

  /**
   * A timer only for the ticks with heartbeats due: an idle broker, or one with few streams, is woken less.
   */
  #heartbeatIn(ms: number): void {
    clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = setTimeout(() => {
      const { due, waitMs } = this.#heartbeats.next(performance.now());
      for (const session of due) session.heartbeat();
      if (!this.#stopping.signal.aborted) this.#heartbeatIn(waitMs);
    }, ms);
    (this.#heartbeatTimer as { unref?: () => void }).unref?.();
  }

  /** The agent's inbox is gone (removed by the operator): its stream ends and nothing of it is replayed. */
  removed(agent: AgentName): void {
    this.#sessions.get(agent)?.close(REMOVED(agent));
    this.#recentWrites.forget(agent);
  }

  /** Ends every stream (the broker stops) and hands on each agent's replay point as of now, to be kept. */
  closeAll(end: StreamEnd): void {
    for (const session of [...this.#sessions.values()]) session.close(end);
    this.#stopping.abort();
    clearTimeout(this.#heartbeatTimer);
    const now = performance.now();
    for (const agent of this.#recentWrites.agents()) this.#deps.replayPoint(agent, this.#keptPoint(agent, now));
  }

  /**
   * A resume by an id past the inbox's cursor: the client has the messages up to it (the cursor was not yet committed
   * when the broker stopped, or the client peeked), so they count as delivered, and the pending count drops.
   */
  async #skip(inbox: InboxRecord, upTo: number): Promise<void> {
    for (let after = inbox.deliveredId; after < upTo;) {
      const page = await this.#deps.store.readAfter(inbox.agent, after, SKIP_PAGE, READ_CHARS);
      // The cursor read after the await: a poll or a stream may have moved it meanwhile.
      const skipped = page.filter((envelope) => envelope.id > inbox.deliveredId && envelope.id <= upTo && !this.#deps.isTaken(envelope.id));
      if (skipped.length > 0) this.#deps.delivered(inbox, skipped);
      if (!readsOn(page, SKIP_PAGE)) return;
      after = page[page.length - 1].id;
    }
  }

  /**
   * Where a read of `agent`'s inbox from `start` begins (the id it reads after), for a stream and for ntfy's poll
   * alike, with the start as taken: an id of another store reads from the cursor, and one of this store past the
   * cursor counts what it skips as delivered. `opening` runs once the inbox is known, before the start is resolved.
   */
  async begin(
    agent: AgentName,
    start: StreamStart,
    opening?: (inbox: InboxRecord) => Promise<void>,
  ): Promise<{ inbox: InboxRecord; start: StreamStart; after: number }> {
    const { store } = this.#deps;
    // Another broker on the store may have handed out the id.
    if (start.from === "id" && start.afterId > this.#deps.lastId()) this.#deps.sawId(await store.lastId());
    // An ntfy id names its message (id and creation time): this store's message of that id for this agent is it;
    // any other (another store's, another agent's) says nothing of what this agent has. Retention may have removed
    // it: then the id is taken as it stands, unless this store never assigned it (another store's, newer).
    if (start.from === "id" && start.key !== undefined) {
      const named = await store.find(start.afterId);
      if (named !== undefined) {
        start = named.to === agent && messageKey(named) === start.key ? { ...start, store: store.id } : { from: "cursor" };
      } else if (start.afterId > this.#deps.lastId()) start = { from: "cursor" };
    }
    // A client that saw this agent's inbox on this store, finding none, would create it again by reading.
    const endRead = start.from === "id" ? await this.#deps.readAsHolder(agent, start.hadInboxOn) : undefined;
    // A SQLite store moved here (`interop migrate`) kept its ids: one it handed out before the move is this store's.
    const moved = store.movedFrom;
    if (start.from === "id" && moved !== undefined && start.store === moved.id && start.afterId <= moved.upTo) {
      start = { ...start, store: store.id };
    }
    // An id another store assigned (the client's previous broker kept other data) says nothing of what the agent
    // has of this one: resuming after it could skip messages pending here, so what is pending is read instead.
    if (start.from === "id" && start.store !== undefined && start.store !== store.id) start = { from: "cursor" };
    const inbox = await this.#deps.inboxFor(agent).finally(endRead);
    // This agent's streams carry only its messages: an id of this store past the cursor that names another agent's
    // message comes from some other reader's state, and a read after it would skip (and count delivered) this
    // agent's messages below it, sent to nobody. (An ntfy id's message was looked up above.)
    if (start.from === "id" && start.key === undefined && start.store === store.id && start.afterId > inbox.deliveredId) {
      const named = await store.find(start.afterId);
      if (named !== undefined && named.to !== agent) start = { from: "cursor" };
    }
    await opening?.(inbox);
    const after = await resolveStart(store, inbox, start, this.#deps.lastId());
    // A shared store's cursor moves with each claim, never late; this broker's lags its writes (see commit_queue.ts).
    // Only for an id the client says is this store's (listen sends it; an ntfy id shows it): an id of another store
    // that names none would mark as delivered what nobody was sent.
    if (start.from === "id" && start.store === store.id && store.shared === undefined) await this.#skip(inbox, after);
    return { inbox, start, after };
  }

  /**
   * Validates a subscription and returns the function that starts it. Reading from the cursor gives what is
   * pending; from an id, exactly what came after it (the client says what it has). A newer stream for the same
   * agent replaces the older one, on whichever broker of a shared store it is.
   */
  async prepare(agent: AgentName, start: StreamStart, format: StreamFormat): Promise<PreparedStream> {
    const { store } = this.#deps;
    // Refused before anything moves (a cursor, a replay point, the stream's owner on a shared store).
    // Per broker: on a shared store a stream on another broker is replaced all the same.
    if (this.#deps.secondStream === "refuse" && this.#sessions.has(agent)) {
      throw new InteropError(
        "stream_open",
        `${agent} already has an open stream; close it first (this broker runs with --second-stream refuse)`,
      );
    }
    const shared = store.shared;
    // A stream starts by reading the store: without it, say so now rather than with a stream that ends at once.
    if (store.outage !== undefined) throw store.outage;
    // A UUID (PostgreSQL keeps it in a uuid column and gives it back in this form), copied flat: Node builds
    // crypto.randomUUID() by concatenating 16 pieces, and each open stream kept that rope (~540 bytes of heap).
    const id = Buffer.from(crypto.randomUUID(), "latin1").toString("latin1");
    // On a shared store the cursor is the store's, and the stream this one replaces may be on another broker.
    const opening = shared === undefined ? undefined : async (inbox: InboxRecord) => {
      inbox.deliveredId = Math.max(inbox.deliveredId, await shared.openStream(agent, id));
    };
    const begun = await this.begin(agent, start, opening);
    const { inbox } = begun;
    let startAfter = begun.after;
    if (begun.start.from !== "cursor") {
      if (this.#recentWrites.forget(agent)) this.#deps.replayPoint(agent, undefined);
    } else {
      // Without an id the client cannot say what it has: what the last stream wrote lately comes again.
      const unconfirmed = this.#recentWrites.replayAfter(agent, performance.now(), true);
      if (unconfirmed !== undefined) startAfter = Math.max(inbox.purgedId, Math.min(startAfter, unconfirmed));
    }
    // What the stream sends again, delivered before (a replay the client asked for, or the window's).
    const resentAfter = startAfter < inbox.deliveredId ? startAfter : undefined;
    // The inbox's version before each page read: a claim succeeds only if no other reader took anything since.
    let version = 0;
    const replayedUpTo = inbox.deliveredId;
    // And up to what a claim that met an outage took: it may have committed (see `claim` below).
    let readAgainUpTo = replayedUpTo;
    const movedHere = start.from === "id" && start.store !== undefined && start.store !== store.id &&
      begun.start.from === "id" && begun.start.store === store.id;
    const open: StreamStarter = (sink) => {
      // Removed since it was prepared: the record is no longer the agent's (a new one would take its messages too).
      if (this.#deps.currentInbox(agent) !== inbox) {
        sink.write(format.ending(agent, REMOVED(agent)));
        sink.close();
        return;
      }
      this.#sessions.get(agent)?.close({ event: "replaced", message: `a newer stream for ${agent} took over` });
      const session = new StreamSession(agent, startAfter, sink, {
        id,
        readAfter: shared === undefined
          ? (name, after, limit, maxChars) => this.#deps.readInOrder(name, after, limit, maxChars)
          : async (name, after, limit, maxChars) => {
            const read = await shared.version(name);
            version = read.version;
            // Up to the cursor as it was at the opening (or as far as a claim in doubt took), what the stream reads is
            // a replay the client asked for (or its own). Past it, what is at or below the cursor now another reader
            // claimed (an ntfy poll=1 moves the cursor without marking messages taken): it is theirs. The claim's
            // compare-and-set on `version` covers what they claim after this read.
            if (after >= readAgainUpTo) return await store.readAfter(name, Math.max(after, read.deliveredId), limit, maxChars);
            const page = await store.readAfter(name, after, limit, maxChars);
            const replay = page.filter((envelope) => envelope.id <= readAgainUpTo);
            if (replay.length === page.length) return page;
            // What follows the replay comes in the next page, read from the cursor: read into this one, the page
            // would hold up to twice maxChars.
            if (replay.length > 0) return cutShort(replay);
            return await store.readAfter(name, Math.max(readAgainUpTo, read.deliveredId), limit, maxChars);
          },
        claim: shared === undefined ? undefined : async (envelopes) => {
          const upTo = envelopes[envelopes.length - 1].id;
          let outcome;
          try {
            outcome = await shared.claim(agent, id, version, upTo);
          } catch (error) {
            // The claim may have committed with its answer lost (the connection broke): the cursor is then past
            // messages this stream never wrote, which a read on from the cursor would skip for good. Read on from its
            // last id, they are a replay of its own, as for a client resuming from there.
            if (isStorageUnavailable(error)) readAgainUpTo = Math.max(readAgainUpTo, upTo);
            throw error;
          }
          // Even before its notification arrives: the newer stream owns the inbox now.
          if (outcome === "replaced") this.replaced(agent, id);
          // Removed on another broker (this one hears of it a moment later): the stream ends as on a removal here.
          const current = this.#sessions.get(agent);
          if (outcome === "removed" && current?.id === id) current.close(REMOVED(agent));
          return outcome === "claimed";
        },
        // Also what another reader (a poll, a wait) took since the stream opened: a read of the store made before
        // that take committed still has it, and the stream would send it again (above the cursor at the opening, at
        // or below the cursor now, the stream's own writes being at or below where it reads from).
        isTaken: (envelope) =>
          this.#deps.isTaken(envelope.id) || (envelope.id > readAgainUpTo && envelope.id <= inbox.deliveredId),
        isDelivered: (envelope) => envelope.id <= inbox.deliveredId || this.#deps.isTaken(envelope.id),
        delivered: (_name, envelopes) => {
          this.#deps.sawId(envelopes[envelopes.length - 1].id);
          const now = performance.now();
          // What it sends again is logged as it opens (`resentAfter`): a replay written later is no new write.
          const firstSent = firstAfter(envelopes, replayedUpTo);
          if (firstSent !== undefined && this.#recentWrites.wrote(agent, firstSent.id, now)) {
            this.#deps.replayPoint(agent, this.#keptPoint(agent, now));
          }
          this.#deps.delivered(inbox, envelopes);
        },
        ended: (ended) => {
          this.#heartbeats.delete(ended);
          if (this.#sessions.get(agent) === ended) {
            this.#sessions.delete(agent);
            this.#recentWrites.ended(agent, performance.now());
            if (shared !== undefined) this.#closeInStore(shared, agent, id);
          }
          this.#deps.ended(agent);
        },
        format,
        writeTimeoutMs: this.#deps.writeTimeoutMs,
        pageSize: PAGE_SIZE,
      });
      this.#sessions.set(agent, session);
      const sooner = this.#heartbeats.add(session, performance.now());
      if (sooner !== undefined) this.#heartbeatIn(sooner);
      const now = performance.now();
      this.#recentWrites.opened(agent, now, resentAfter);
      // Kept now, not at the next new write: a crash before it would lose what this stream sends again.
      if (resentAfter !== undefined) this.#deps.replayPoint(agent, this.#keptPoint(agent, now));
      session.start();
    };
    return movedHere ? { open, resumedAfter: begun.after } : { open };
  }

  /**
   * Clears the stream's entry in the shared store, trying again until it lands: a stale entry (a failure as the
   * stream ended: a broken connection, an outage) reads as a stream still open on this live broker, which keeps a
   * replaced `listen` waiting for it to close and makes a removal on another broker refuse. The entry is cleared
   * only while it names this session: a newer stream of the agent is left alone.
   */
  #closeInStore(shared: SharedInboxes, agent: AgentName, id: string): void {
    void tryUntilLanded(() => shared.closeStream(agent, id), () => true, this.#stopping.signal, CLOSE_RETRY);
  }
}

/** The first of `envelopes` (in id order) with an id above `id`; a loop, not `find`: it runs per stream per commit. */
function firstAfter(envelopes: Envelope[], id: number): Envelope | undefined {
  for (let index = 0; index < envelopes.length; index++) if (envelopes[index].id > id) return envelopes[index];
  return undefined;
}
