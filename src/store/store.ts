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
  /** Messages up to this id may have been deleted by retention; resuming from before it is refused. */
  purgedId: number;
  /** Messages with an id above `deliveredId`. */
  pending: number;
  /** Milliseconds since the epoch of the agent's last request, or null if never seen. */
  lastSeen: number | null;
  /** Messages a push delivery gave up on (the receiver refused them for good). */
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
}

export interface NewMessage {
  from: AgentName;
  to: AgentName;
  payload: Payload;
  /** Milliseconds since the epoch. */
  createdAt: number;
  thread?: Thread;
  /** The publisher's Idempotency-Key: a retried publish with the same sender and key finds these messages. */
  idempotencyKey?: string;
}

/** A change to one inbox; creates the inbox if it does not exist. */
export interface InboxUpdate {
  agent: AgentName;
  deliveredId?: number;
  lastSeen?: number;
  /** Marks the messages in (after, upTo] as taken by a poll, so a stream resume never replays them. */
  polled?: { after: number; upTo: number };
}

/** Everything one commit writes, atomically. */
export interface WriteBatch {
  messages: NewMessage[];
  inboxes: InboxUpdate[];
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
  loadInboxes(): Promise<InboxRecord[]>;
  /** The highest id ever assigned (ids are never reused), 0 for a new store. */
  lastId(): Promise<number>;
  /** Commits the batch; resolves with the stored messages in the order given. */
  write(batch: WriteBatch): Promise<Envelope[]>;
  /** Up to `limit` messages for `agent` with id > `afterId`, oldest first, leaving out those taken by a poll. */
  readAfter(agent: AgentName, afterId: number, limit: number): Promise<Envelope[]>;
  /** The last `limit` messages for `agent`, delivered or not, oldest first, leaving out those taken by a poll. */
  readLatest(agent: AgentName, limit: number): Promise<Envelope[]>;
  /** Parks a message the agent's push receiver refused for good; false if it was parked already. */
  addDeadLetter(agent: AgentName, letter: DeadLetter): Promise<boolean>;
  deadLetters(agent: AgentName): Promise<DeadLetter[]>;
  /** The messages `sender` published with `key`, oldest first ([] when none, or retention removed them). */
  findByKey(sender: AgentName, key: string): Promise<Envelope[]>;
  /** The message with this id, whoever it was for, or undefined if retention removed it. */
  find(id: number): Promise<Envelope | undefined>;
  /** The highest id for `agent` created before `time` (ms), or 0: where a read "since a time" starts. */
  idBefore(agent: AgentName, time: number): Promise<number>;
  /** Deletes delivered messages created before `cutoff` (ms); resolves with each inbox's new `purgedId`. */
  prune(cutoff: number): Promise<Map<AgentName, number>>;
  /**
   * Removes the undelivered messages of each inbox in `cutoffs` created before its cutoff (ms), above the inbox's
   * cursor (or `delivered`, the broker's newer one); counts them in the inbox's `expired`. Resolves with each
   * changed inbox's count and the highest id removed.
   */
  expire(
    cutoffs: Map<AgentName, number>,
    delivered: Map<AgentName, number>,
  ): Promise<Map<AgentName, { count: number; upTo: number }>>;
  close(): Promise<void>;
}
