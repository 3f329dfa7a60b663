/** The storage interface the broker depends on; each backend (SQLite, PostgreSQL) implements it. */
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope, Payload, Thread } from "../message.ts";

/**
 * `strict`: every acknowledged message survives a power cut (SQLite: `synchronous=FULL`; PostgreSQL: the broker
 * refuses a server running with `fsync` or `synchronous_commit` off).
 * `relaxed`: SQLite `synchronous=NORMAL`, survives a crash of the broker but not of the machine; PostgreSQL: the
 * server's settings are only warned about.
 */
export type Durability = "strict" | "relaxed";

/** What is known of one agent's inbox. */
export interface InboxRecord {
  agent: AgentName;
  /** Every message up to this id has been handed to the agent (stream write or poll). */
  deliveredId: number;
  /**
   * Delivered messages a resume replays (those not taken by a poll, a wait or a withdrawal) up to this id may have been
   * deleted by retention; resuming from before it is refused. Never past `deliveredId`: expired messages (never
   * delivered) do not move it (see `expire`), nor do taken ones: a resume from before them lacks nothing.
   */
  purgedId: number;
  /** Messages with an id above `deliveredId`. */
  pending: number;
  /** Milliseconds since the epoch of the agent's last request, or null if never seen. */
  lastSeen: number | null;
  /** Messages a push delivery gave up on (the receiver refused them for good), but those acknowledged. */
  deadLetters: number;
  /** Undelivered messages removed because they waited longer than the pending TTL. */
  expired: number;
}

/** A message a push delivery could not hand over, with the receiver's reason. */
export interface DeadLetter {
  messageId: number;
  reason: string;
  /** Milliseconds since the epoch. */
  parkedAt: number;
  /** Milliseconds since the epoch at which an operator acknowledged it (`acknowledgeDeadLetters`); unset before. */
  acknowledgedAt?: number;
}

export interface NewMessage {
  from: AgentName;
  to: AgentName;
  payload: Payload;
  /** Milliseconds since the epoch. */
  createdAt: number;
  thread?: Thread;
  /**
   * The publisher's Idempotency-Key: a retried publish with the same sender and key finds these messages. A store
   * other brokers share refuses a write whose key (with its sender) one of them committed: `duplicate_key`.
   */
  idempotencyKey?: string;
  /**
   * On a store other brokers share: the sender awaits the reply to this message (`publishQuestion`), recorded with the
   * message in its commit, as `SharedInboxes.awaitReply` records it, under `id` for `ms`. A reply cannot then be read
   * anywhere before the record holds, however soon it commits. A store one broker owns ignores it.
   */
  awaited?: AwaitedReply;
}

/** A wait for the reply to a message, recorded with the message (`NewMessage.awaited`). */
export interface AwaitedReply {
  /** The record's id, for `SharedInboxes.endAwait`. */
  id: string;
  /** How long the record holds from the commit, in ms. */
  ms: number;
}

/**
 * A change to one inbox. With `create` it creates the inbox if it does not exist; without, a store other brokers
 * share changes only an inbox that exists: a note (a cursor, a last-seen time) queued before another broker removed
 * the inbox must not bring it back. A store one broker owns creates it either way (that broker drops the notes of
 * agents it removed before they commit).
 */
export interface InboxUpdate {
  agent: AgentName;
  /** A genuine creation (the inbox's first use, `agent add`): the only update that may create a missing inbox. */
  create?: boolean;
  deliveredId?: number;
  lastSeen?: number;
  /**
   * Marks the messages in each range (after, upTo] as taken by a poll or a wait, so a stream resume never replays
   * them. Ranges, not one span: two takes merged into one commit may leave pending messages between them.
   */
  polled?: Array<{ after: number; upTo: number }>;
  /**
   * Undelivered messages their sender withdrew (an A2A CancelTask), each with the time (ms): from this commit on,
   * no read hands them out, and `outcome` reports them withdrawn.
   */
  withdrawn?: Array<{ id: number; at: number }>;
  /**
   * Where a resume without an id is to start (see recent_writes.ts), kept so that it survives a restart; null: none.
   * Only a store one broker owns keeps it (`loadReplayPoints`): on a shared one the window stays in each broker's memory.
   */
  replay?: ReplayPoint | null;
}

/** Where a resume without an id starts after a restart (`InboxUpdate.replay`). */
export interface ReplayPoint {
  after: number;
  /**
   * What follows `after`, from each first id on, and when (wall-clock ms) it was written or last sent again, oldest id
   * first: what a restart restores ages from those times. Absent in a point an older interop kept (dated at the restart).
   */
  writes?: Array<[firstId: number, at: number]>;
}

/** What holds an inbox back from a removal that is not forced, as a store other brokers share finds it. */
export interface InboxHolds {
  /** Its undelivered messages, whichever broker stored them. */
  pending: number;
  /** Whether its stream is open on another broker that is alive. */
  streamElsewhere: boolean;
}

/** A sender, a recipient, or both, that messages must have. */
export interface Parties {
  sender?: AgentName;
  recipient?: AgentName;
}

/** What became of a message after it was stored. */
export interface MessageOutcome {
  /** Taken out of the inbox's order: by a poll or a wait, or withdrawn. */
  taken: boolean;
  /** When its sender withdrew it before delivery (ms), or undefined. */
  withdrawnAt: number | undefined;
  /** The first reply to it from its recipient, or undefined. */
  reply: Envelope | undefined;
  /** Its dead letter (its recipient's receiver refused it for good), or undefined. */
  deadLetter: DeadLetter | undefined;
}

/**
 * Everything one commit writes, atomically. A store other brokers share refuses (`unknown_agent`) a message whose
 * recipient has no inbox, in the store or among `inboxes`: another broker removed it.
 */
export interface WriteBatch {
  messages: NewMessage[];
  inboxes: InboxUpdate[];
}

/**
 * The `storage_full` error of a write `what` that left nothing behind. A publish's says its message was not stored;
 * any other write (a removal, a dead letter, retention) says what it could not do, not a message it never had.
 */
export function storageFull(location: string, what: string, reason: string, cause: unknown): InteropError {
  // A commit is a group's: publishes and the takes of other readers together.
  const outcome = what === "commit" ? "nothing was stored or taken" : `could not ${what}, nothing was changed`;
  return new InteropError("storage_full", `Storage full: no space left for ${location} (${reason}); ${outcome}, free some disk space and retry`, {
    cause,
  });
}

/** The refusal of a lease or a take while another reader holds `agent`'s inbox, for `seconds` more at most. */
export function inboxLeased(agent: AgentName, seconds: number): InteropError {
  return new InteropError(
    "inbox_leased",
    `Another reader is polling ${agent}'s inbox (it holds it for ${seconds} s more at most); try again then`,
    { retryAfter: seconds },
  );
}

/**
 * The refusal of a read by a client that had `agent`'s inbox (it says so, or holds a lease on it) once the operator
 * removed the agent: reading would create the inbox again.
 */
export function agentRemoved(agent: AgentName): InteropError {
  return new InteropError("agent_removed", `${agent} was removed by the operator; its inbox is not created again for a client that had it`);
}

/** A park (`addDeadLetter`) of a message whose inbox the agent's removal deleted, the message with it. */
export function parkedWithoutInbox(agent: AgentName, messageId: number): InteropError {
  return new InteropError("unknown_message", `Cannot park message ${messageId} for ${agent}: ${agent}'s inbox was removed with it`);
}

/** Whether `error` is a take's or a lease's refusal for another reader's lease (`inboxLeased`). */
export function isInboxLeased(error: unknown): boolean {
  return error instanceof InteropError && error.code === "inbox_leased";
}

/**
 * A write whose COMMIT got no answer (a networked store's connection broke): it may have committed. `outcome`
 * settles once the store knows: what the write resolves with (`write`: the stored messages), or undefined when
 * nothing was kept. Until then the store refuses every other call (`storage_unavailable`), so nothing commits
 * after it.
 */
export class CommitInDoubt<T = Envelope[]> extends InteropError {
  readonly outcome: Promise<T | undefined>;

  constructor(unavailable: InteropError, outcome: Promise<T | undefined>) {
    super("storage_unavailable", unavailable.message, { cause: unavailable, retryAfter: unavailable.retryAfter });
    this.outcome = outcome;
  }
}

/** Pages of a read that stopped for its `maxChars` before its `limit`, with messages after them (`cutShort`). */
const cutPages = new WeakSet<readonly unknown[]>();

/** Marks `page` as a read cut short by its `maxChars`: fewer than its limit, yet not the end of what it reads. */
export function cutShort<T>(page: T[]): T[] {
  cutPages.add(page);
  return page;
}

/** Whether a read stopped for its `maxChars` with more after `page` (`cutShort`). */
export function wasCut(page: readonly unknown[]): boolean {
  return cutPages.has(page);
}

/** `mapped`, made from the read `page` item for item, cut short as `page` was (`cutShort`). */
export function cutAs<T>(page: readonly unknown[], mapped: T[]): T[] {
  return wasCut(page) ? cutShort(mapped) : mapped;
}

/** Whether more may follow `page`, read with `limit`: it is full, or it was cut short by its characters. */
export function readsOn(page: readonly unknown[], limit: number): boolean {
  return page.length >= limit || wasCut(page);
}

/** Wakes the readers of these inboxes (every inbox when undefined) to read the store from their cursor. */
export type Wake = (agents: AgentName[] | undefined) => void;

/**
 * What a claim found: its messages are its own, or another reader moved first, or a newer stream took over, or the
 * inbox is gone (removed on another broker).
 */
export type Claim = "claimed" | "moved" | "replaced" | "removed";

/**
 * What a store several brokers write to adds: each inbox's cursor and its one stream live in the store, and every
 * reader takes messages there with compare-and-set, so a poll, a wait and a stream on different brokers never hand
 * out one message twice. A store only one broker opens has none: the broker's memory is the authority.
 */
export interface SharedInboxes {
  /**
   * The inbox's cursor, creating the inbox at `deliveredId` if it does not exist; an inbox another broker created
   * keeps its cursor (this broker's newest id may be past messages still pending there).
   */
  createInbox(agent: AgentName, deliveredId: number): Promise<number>;
  /**
   * Takes up to `limit` messages above the inbox's cursor (none above `upTo`), moving it: a poll or a wait. Refused
   * (`inboxLeased`) while a reader other than `lease`'s holder leases the inbox; `lease`, the caller's own, ends with
   * the take (also one of no message: the reader showed none); a `lease` no longer held (expired) is told to
   * `leaseLost`, and the take goes on.
   */
  take(agent: AgentName, limit: number, upTo: number | undefined, lease?: string, leaseLost?: () => void): Promise<Envelope[]>;
  /**
   * Leases the inbox to one reader for `seconds` (see `InboxLeases`), once the takes in progress committed, so what
   * the reader peeks next is what no one else takes; `renewing` the caller's own lease, still held, extends it from
   * now. Resolves with the lease's id; refused (`inboxLeased`) while another reader holds one. A lease granted anew
   * gets `id`: the caller can end one whose grant committed with its answer lost, which no client was told of.
   */
  lease(agent: AgentName, seconds: number, renewing: string | undefined, id?: string): Promise<string>;
  /** Ends lease `id` on the inbox, if it is the one held. */
  endLease(agent: AgentName, id: string): Promise<void>;
  /** How long the inbox's lease has left (ms, by the store's clock), or undefined when none is held. */
  leaseLeft(agent: AgentName): Promise<number | undefined>;
  /**
   * Takes message `id` out of order; false when another reader had it. Refused (`inboxLeased`), taking nothing,
   * while a reader leases the inbox: that reader may have shown it, and takes it with its page (an ask's reply; a
   * withdrawal by its sender, which would leave the reader having shown a message its sender cancelled). With
   * `lease`, the caller's own, it is taken under that lease, which ends with the take (also one that took nothing):
   * what a leased reply wait showed (`/poll?take=ID&lease_id=`); a `lease` no longer held is told to `leaseLost`, as
   * `take` tells it.
   */
  takeOne(agent: AgentName, id: number, lease?: string, leaseLost?: () => void): Promise<boolean>;
  /**
   * Records that a waiter on this broker awaits the reply to `questionId` in `agent`'s inbox, for `ms` at most:
   * meanwhile every in-order read of the inbox (`MessageStore.readAfter`, `take` without the caller's lease, on
   * any broker) stops before that reply, so the waiter takes it wherever it was published. Resolves with the
   * record's id (`id` when given), for `endAwait`. A broker that stops or crashes holds up no one once it counts as gone.
   */
  awaitReply(agent: AgentName, questionId: number, ms: number, id?: string): Promise<string>;
  /** The wait of record `id` ended: a reply it left is an ordinary message again, and every broker's readers read on. */
  endAwait(agent: AgentName, id: string): Promise<void>;
  /**
   * Untaken messages above the inbox's cursor that reply to `agent`'s questions, oldest first: the oldest
   * `wanted.get(question)` to each question in `wanted` (its waiters), `limit` in all. No more than are needed: a
   * question with hundreds of big replies has only its first read for its one waiter. With `maxChars`, bounded as
   * `MessageStore.readAfter` is.
   */
  pendingReplies(agent: AgentName, wanted: ReadonlyMap<number, number>, limit: number, maxChars?: number): Promise<Envelope[]>;
  /**
   * Makes `session` the agent's one stream, on this broker; the broker holding the one it replaces hears of it.
   * Resolves with the inbox's cursor.
   */
  openStream(agent: AgentName, session: string): Promise<number>;
  /** The agent's stream `session` ended (no-op if a newer one took over). */
  closeStream(agent: AgentName, session: string): Promise<void>;
  /**
   * The inbox's version (changed by every take and claim) and cursor, read before a stream or an ntfy poll reads a
   * page.
   */
  version(agent: AgentName): Promise<{ version: number; deliveredId: number }>;
  /**
   * Moves the cursor up to `upTo` if the inbox is still at `version` and, for stream `session`, still its stream
   * (without one: an ntfy poll). An ntfy poll's claim gives `polledAfter`, the cursor read with `version`: what it took,
   * after that id up to `upTo`, is marked taken as a `/poll`'s take marks it, so that no stream replays it (red team 63).
   */
  claim(agent: AgentName, session: string | undefined, version: number, upTo: number, polledAfter?: number): Promise<Claim>;
  /**
   * Calls `wake` after other brokers' commits (at most a hint: a reader woken reads from its cursor, and one never
   * woken re-reads on its own now and then), `replaced` when a stream of this broker was replaced on another, and
   * `removed` when another broker removed an inbox (a hint too: the cluster view says what is left).
   */
  watch(wake: Wake, replaced: (agent: AgentName, session: string) => void, removed: (agent: AgentName) => void): Promise<void>;
  /**
   * The brokers registered on the store and where each agent's stream is, for the cluster view; with `counting`, each
   * inbox's pending count too (it reads the undelivered messages of each inbox written since the last count: 0.25 s
   * for 1,000,000 in one, where the rest of the read takes 1 ms, so the broker asks for it once a second, not for each
   * request that must see the view as it is now).
   */
  cluster(counting?: boolean): Promise<ClusterView>;
}

export interface ClusterView {
  brokers: BrokerRecord[];
  /** The broker (its id) holding each agent's stream. */
  streams: Map<AgentName, string>;
  /** Every inbox's cursor: inboxes other brokers created show up here. */
  cursors: Map<AgentName, number>;
  /** Every inbox's undelivered messages (untaken, above its cursor), whichever broker stored them, when counted. */
  pending?: Map<AgentName, number>;
  /** Every inbox's dead letters not acknowledged, whichever broker parked or acknowledged them, when counted. */
  deadLetters?: Map<AgentName, number>;
}

/**
 * One retention transaction's bound (`prune`, `expire`; see `prune`). SQLite's run on the event loop: a prune of
 * 1,000,000 delivered messages (4 inboxes) in one held it 1.8-2.7 s, no answer and no stream written meanwhile; in
 * steps of 10,000 it took 100 steps of 27 ms on average (77 at most), 2.7 s in all as before (Node 24). On
 * PostgreSQL a step holds its inboxes' rows as long as it runs.
 */
export const RETENTION_BATCH = 10_000;

/** What one retention transaction changed, and whether it stopped at its bound with more to delete. */
export interface RetentionStep {
  /** Each changed inbox's new purge mark (`prune`) or how many of its messages expired (`expire`). */
  changed: Map<AgentName, number>;
  more: boolean;
}

/** What the broker knows that its store may not yet, and the bound of one step (`MessageStore.expire`). */
export interface ExpiryOptions {
  /** Each inbox's cursor where the broker's is further than the stored one (committed with its next batch). */
  delivered?: Map<AgentName, number>;
  /**
   * Messages handed to a reader (or withdrawn) whose take is still committing, so they neither expire nor go: a broker
   * of its own hands them out before the commit marks them (`Deliveries.committing`).
   */
  taking?: readonly number[];
  /**
   * A store that keeps inbox leases (one other brokers share) uses an inbox's cutoff here instead while a reader
   * leases it (none here: nothing of it expires); a broker that keeps them picked the cutoff already.
   */
  leasedCutoffs?: Map<AgentName, number>;
  /** RETENTION_BATCH unless said. */
  limit?: number;
}

/** A broker on a shared store, as its registry row says. */
export interface BrokerRecord {
  id: string;
  pid: number;
  host: string;
  listening: string | null;
  version: string;
  startedAt: number;
  heartbeatAt: number;
  /** Not stopped, and its last heartbeat recent (by the database's clock). */
  alive: boolean;
  /** Whether it is this broker. */
  self: boolean;
}

/** A store `interop migrate` moved into another, as the one it moved into records it (`MessageStore.movedFrom`). */
export interface MovedStore {
  id: string;
  upTo: number;
}

/**
 * The broker's storage. Every method is one transaction, so a networked backend can implement it too.
 * Errors are `InteropError("storage_failed")` (or `storage_full`, or `storage_unavailable` while a networked store's
 * server cannot be reached); a failed write leaves nothing of the batch behind, and a transaction that cannot know
 * whether it committed (`write`, `addDeadLetter`, `prune`, `expire`) rejects with `CommitInDoubt`.
 * `write` refuses a message it cannot store as such (its payload cannot be encoded) with `invalid_body`, before
 * touching the storage: the commit queue then commits the other publishers' messages without it.
 */
export interface MessageStore {
  readonly kind: "sqlite" | "postgresql";
  /** Where the data lives, for `/status` and logs (never a password). */
  readonly location: string;
  /** While the store cannot be reached, the `storage_unavailable` error its calls fail with; undefined otherwise. */
  readonly outage: InteropError | undefined;
  /**
   * A local store: why its writes fail now (a full disk, a file system gone read-only), and since when; undefined
   * while its last write succeeded. Every publish is refused meanwhile, though the store answers reads.
   */
  readonly failingWrites?: string;
  /**
   * A networked store: how long its oldest call in flight has waited for the server, in ms (0: none is in flight).
   * One past the store's bound starts an outage.
   */
  oldestCallMs?(): number;
  /**
   * A random identity created with the store (brokers on one database share it): message ids mean something only
   * in the store that assigned them, so a client resuming with an id from another store is read from its cursor.
   */
  readonly id: string;
  /**
   * The SQLite store `interop migrate` moved into this one (its `id`), and the highest id it had handed out: the
   * ids up to there are the same messages here, so a client resuming by one of them resumes by it.
   */
  readonly movedFrom?: MovedStore;
  loadInboxes(): Promise<InboxRecord[]>;
  /** The highest id ever assigned (ids are never reused), 0 for a new store. */
  lastId(): Promise<number>;
  /** Commits the batch; resolves with the stored messages in the order given. */
  write(batch: WriteBatch): Promise<Envelope[]>;
  /**
   * Up to `limit` messages for `agent` with id > `afterId`, oldest first, leaving out those taken by a poll; a store
   * other brokers share stops before a reply a waiter awaits (`SharedInboxes.awaitReply`). With `maxChars`, no more
   * than the stored payloads' running total keeps within (at least one message): a page cut short so says `wasCut`.
   */
  readAfter(agent: AgentName, afterId: number, limit: number, maxChars?: number): Promise<Envelope[]>;
  /**
   * Up to `limit` replies to message `questionId` for `agent` with id > `afterId`, oldest first, leaving out those
   * taken by a poll: found by the question, however many other messages come before them in the inbox.
   */
  readReplies(agent: AgentName, questionId: number, afterId: number, limit: number): Promise<Envelope[]>;
  /**
   * The last `limit` messages for `agent` with an id below `beforeId` (default: any), delivered or not, oldest
   * first, leaving out those taken by a poll. With `maxChars`, only the newest of them whose stored payloads' running
   * total, counted from the newest, keeps within it (at least one): a page cut short so says `wasCut`.
   */
  readLatest(agent: AgentName, limit: number, beforeId?: number, maxChars?: number): Promise<Envelope[]>;
  /**
   * Parks a message the agent's push receiver refused for good; false if it was parked already. A shared store
   * refuses it (`unknown_message`) once the agent's inbox is gone: another broker's removal, which deletes the letters.
   */
  addDeadLetter(agent: AgentName, letter: DeadLetter): Promise<boolean>;
  /**
   * The agent's last `limit` dead letters (by message id) with a message id below `beforeId` (default: any), oldest
   * first, those acknowledged only `withAcknowledged`. With `maxChars`, bounded as `readLatest` is by the stored
   * payloads of their messages (none for a letter whose message retention removed).
   */
  deadLetters(agent: AgentName, limit: number, beforeId?: number, maxChars?: number, withAcknowledged?: boolean): Promise<DeadLetter[]>;
  /**
   * Marks the agent's dead letters of `messageIds` (every one when undefined) acknowledged at `at`. They are kept (a
   * question's outcome and an A2A task's state still tell of them) but leave `InboxRecord.deadLetters`. Resolves
   * with the ids it marked, ascending (not those acknowledged already, nor ids the agent has no letter of), and the
   * agent's letters left unacknowledged then, whichever broker parked them.
   */
  acknowledgeDeadLetters(agent: AgentName, messageIds: number[] | undefined, at: number): Promise<{ acknowledged: number[]; left: number }>;
  /** The messages `sender` published with `key`, oldest first ([] when none, or retention removed them). */
  findByKey(sender: AgentName, key: string): Promise<Envelope[]>;
  /**
   * Up to `limit` messages with an Idempotency-Key starting with `prefix`, from `sender` and to `recipient` where
   * given, with ids below `beforeId`, newest first.
   */
  findByKeyPrefix(prefix: string, parties: Parties, beforeId: number, limit: number): Promise<Envelope[]>;
  /** What became of message `id` (as far as retention kept it). */
  outcome(id: number): Promise<MessageOutcome>;
  /** The message with this id, whoever it was for, or undefined if retention removed it. */
  find(id: number): Promise<Envelope | undefined>;
  /** The highest id for `agent` created before `time` (ms), or 0: where a read "since a time" starts. */
  idBefore(agent: AgentName, time: number): Promise<number>;
  /**
   * Deletes delivered messages created before `cutoff` (ms), of each inbox in `deliveredBefore` up to its id there
   * (what was delivered a retention period ago; an inbox not in it keeps all); `changed` holds each inbox's new
   * `purgedId`, the last deleted message that was not taken (an inbox that lost only taken ones keeps its mark). One step's bound (`limit`, RETENTION_BATCH): each inbox's oldest `limit` at most, the inboxes in name
   * order, none after the one whose messages reach `limit` (fewer than twice `limit` in all); `more` says one was left.
   */
  prune(cutoff: number, deliveredBefore: Map<AgentName, number>, limit?: number): Promise<RetentionStep>;
  /**
   * Removes the undelivered messages of each inbox in `cutoffs` created before its cutoff (ms), above the inbox's
   * cursor (see `ExpiryOptions`); counts them in the inbox's `expired`; `changed` holds each changed inbox's count. The
   * messages taken out of order among them (polled, above the cursor) go with them, uncounted, as far as the last
   * expired one. One step's bound, as `prune`'s, is on the messages deleted, taken or not: a step may delete taken ones
   * alone, to reach an untaken one past them. The purge mark stays: those messages were sent to no reader,
   * so they are gone for every reader alike, and a resume by an id below them still has what was delivered after that
   * id to replay.
   */
  expire(cutoffs: Map<AgentName, number>, options?: ExpiryOptions): Promise<RetentionStep>;
  /**
   * Moves each inbox's cursor over the messages right above it that were taken out of order (a reply an ask took, a
   * message its sender withdrew), up to its first untaken one; resolves with each moved inbox's new cursor. Only an
   * in-order read moved the cursor past them, and `prune` deletes up to the cursor: an inbox that is only asked kept
   * every reply for good. From the stored cursor, or the one in `delivered` where the broker's is further.
   */
  passTaken(delivered: Map<AgentName, number>): Promise<Map<AgentName, number>>;
  /**
   * Deletes the agent's inbox for good (its messages, cursor and dead letters); resolves with the messages deleted.
   * A store other brokers share calls `refuse` (a removal not forced) within the removal's transaction with what holds
   * the inbox on every broker; what it throws rolls the removal back.
   */
  removeInbox(agent: AgentName, refuse?: (holds: InboxHolds) => void): Promise<number>;
  /**
   * Whether the operator removed `agent`'s inbox (`removeInbox` records it) and it was not created again since
   * (`InboxUpdate.create`, `SharedInboxes.createInbox`): an agent a store merely lacks (one restored from a backup
   * taken before the agent existed) was never removed.
   */
  wasRemoved(agent: AgentName): Promise<boolean>;
  /** Present when several brokers may open the store. */
  readonly shared?: SharedInboxes;
  /** The inboxes' replay points (`InboxUpdate.replay`) as last committed; a store that keeps none lacks it. */
  loadReplayPoints?(): Promise<Map<AgentName, ReplayPoint>>;
  close(): Promise<void>;
}
