/**
 * Moves a SQLite data dir's store into PostgreSQL in one transaction, or, when the database already holds it,
 * checks that it does (a second run copies nothing twice, and another store's rows are refused). The messages go a
 * page at a time, so a store of any size moves in bounded memory.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import postgres, { type Sql, type TransactionSql } from "postgres";
import { TokenFile } from "../auth/token_file.ts";
import type { TokenRecord } from "../auth/token_list.ts";
import { InteropError } from "../errors.ts";
import { changed, insertTokens } from "./postgres_tokens.ts";
import { CLIENT_OPTIONS, HEARTBEAT_MS } from "./postgres_registry.ts";
import { redactUrl } from "../url_redaction.ts";
import { INT8_AS_NUMBER, isUnreachable } from "./postgres_client.ts";
import { LOCK_SPACE, migrate } from "./postgres_schema.ts";
import { DATABASE_FILE } from "./sqlite_open.ts";
import { markMoved, MOVED_FILE, movedTo } from "./moved_store.ts";
import { MESSAGE_COLUMNS, storedReason } from "./message_row.ts";
import { hasColumn, SQLITE_MESSAGE_COLUMNS } from "./sqlite_schema.ts";
import { BoundedRows } from "./sqlite_bounded_rows.ts";

/** Held for the migration's transaction, so two runs into one database go one after the other. */
const MIGRATE_LOCK = 2;
/** Messages a page at most: one statement's unnest arrays stay well below PostgreSQL's message limits. */
const PAGE_ROWS = 5000;
/**
 * Payload characters a page holds at most (one message at least), as a stream's read of the store is bounded: 5,000
 * messages of 1 MiB read at once held 5 GiB.
 */
export const PAGE_CHARS = 16 * 1024 * 1024;

/** Told after each page of messages copied or checked, with how many of the store's are done. */
export type MigrationProgress = (action: "copying" | "checking", done: number, total: number) => void;

/** What was copied or checked: the SQLite store's counts. */
export interface MigrationCounts {
  action: "copied" | "checked";
  messages: number;
  inboxes: number;
  dead_letters: number;
  keys: number;
  withdrawn: number;
  highest_id: number;
  /** The data dir's tokens (tokens.json), and how many of them this run copied. */
  tokens: number;
  tokens_copied: number;
}

interface Message {
  id: number;
  recipient: string;
  sender: string;
  created_at: number;
  payload: string;
  polled: number;
  reply_to: number | null;
  conversation: number | null;
  hops: number | null;
  idempotency_key: string | null;
}
interface Inbox { agent: string; delivered_id: number; purged_id: number; last_seen: number | null; expired: number }
interface DeadLetterRow { agent: string; message_id: number; reason: string; parked_at: number; acknowledged_at: number | null }
interface WithdrawnRow { message_id: number; withdrawn_at: number }

interface SqliteContents {
  /** How many messages the store holds, and how many of them carry an idempotency key. */
  messages: number;
  keys: number;
  /** The messages in id order, a page at a time, read as each page is asked for (in the read's transaction). */
  pages(): Generator<Message[]>;
  inboxes: Inbox[];
  deadLetters: DeadLetterRow[];
  withdrawn: WithdrawnRow[];
  /** The highest id ever handed out (retention may have deleted it): no new message may get it again. */
  highestId: number;
  /** The store's identity (`MessageStore.id`); undefined in a file from before it had one. */
  id: string | undefined;
}

/** Migrates `dataDir`'s store into the database at `url`; throws `data_dir_locked`, `database_in_use` or `store_mismatch`. */
export async function migrateSqliteToPostgres(dataDir: string, url: string, progress?: MigrationProgress): Promise<MigrationCounts> {
  const location = redactUrl(url);
  const file = join(dataDir, DATABASE_FILE);
  if (!existsSync(file)) throw new InteropError("usage", `No interop store in ${dataDir} (${file} does not exist)`);
  // Moved into one database, its brokers handed out ids and delivered messages there: a copy into another would fork it.
  const moved = movedTo(dataDir);
  if (moved !== undefined && moved.to !== location) {
    throw new InteropError(
      "store_mismatch",
      `Data dir ${dataDir} was moved to ${moved.to ?? "another database"}${moved.at === undefined ? "" : ` at ${moved.at}`}, not ${location}: ` +
        `its brokers serve it there, and a second copy would hand out its ids again and deliver its messages twice ` +
        `(to move it anyway, remove ${join(dataDir, MOVED_FILE)})`,
    );
  }
  const db = new DatabaseSync(file, { timeout: 0 });
  let sql: Sql | undefined;
  try {
    try {
      // Held until the copy is committed: a broker started on the data dir meanwhile is refused.
      db.exec("BEGIN IMMEDIATE");
    } catch (cause) {
      if (!/locked|busy/i.test((cause as Error).message)) throw cause;
      throw new InteropError("data_dir_locked", `Data dir ${dataDir} is in use by an interop broker: stop it first`, { cause });
    }
    const contents = readSqlite(db, file);
    const tokenFile = new TokenFile(dataDir);
    sql = postgres(url, {
      ...CLIENT_OPTIONS,
      max: 1,
      connection: { synchronous_commit: "on", application_name: "interop migrate" },
      types: { int8: INT8_AS_NUMBER },
    });
    try {
      await migrate(sql);
    } catch (cause) {
      if (cause instanceof InteropError) throw cause;
      // Unreachable now is worth a retry (exit 3); a refusal (no such database, a wrong password) is not.
      const code = isUnreachable(cause) ? "storage_unavailable" : "storage_failed";
      throw new InteropError(code, `Cannot migrate the schema of ${location}: ${(cause as Error).message}`, { cause });
    }
    const database = sql;
    // Held from the read until the copy commits: a token revoked in the data dir after the read would be copied, and
    // work on the database's brokers; the revoke waits for the copy instead.
    const counts = await tokenFile.hold(() => database.begin(async (tx) => {
      const tokens = (await tokenFile.version()) === 0 ? undefined : await tokenFile.list();
      await tx`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${MIGRATE_LOCK})`;
      // No publish may take an id while the copy runs (a broker started meanwhile waits here).
      await tx`LOCK TABLE interop_inbox_heads, interop_messages IN SHARE ROW EXCLUSIVE MODE`;
      await refuseLiveBrokers(tx, location);
      const counts = {
        messages: contents.messages,
        inboxes: contents.inboxes.length,
        dead_letters: contents.deadLetters.length,
        keys: contents.keys,
        withdrawn: contents.withdrawn.length,
        highest_id: contents.highestId,
        tokens: tokens?.length ?? 0,
        tokens_copied: await moveTokens(tx, tokens, { dataDir, location }),
      };
      // Inboxes alone are no store's data: a broker that started once on the database made those it was told
      // (--agents), and handed out no id. Taken for a store, the copy was "checked", and its ids handed out again.
      const [{ used }] = await tx<{ used: boolean }[]>`
        SELECT EXISTS (SELECT 1 FROM interop_messages) OR EXISTS (SELECT 1 FROM interop_dead_letters)
          OR EXISTS (SELECT 1 FROM interop_withdrawn) OR EXISTS (SELECT 1 FROM interop_store WHERE moved_from IS NOT NULL)
          OR pg_sequence_last_value(pg_get_serial_sequence('interop_messages', 'id')::regclass) IS NOT NULL AS used`;
      if (used) {
        await check(tx, contents, { dataDir, location }, progress);
        return { action: "checked" as const, ...counts };
      }
      await copy(tx, contents, progress);
      return { action: "copied" as const, ...counts };
    }));
    // While the data dir is still held: no SQLite broker starts on it between the commit and the mark.
    markMoved(dataDir, location);
    return counts;
  } catch (error) {
    if (error instanceof InteropError) throw error;
    throw new InteropError("storage_failed", `Cannot migrate ${dataDir} into ${location}: ${(error as Error).message}`, { cause: error });
  } finally {
    await sql?.end({ timeout: 1 });
    if (db.isTransaction) db.exec("ROLLBACK");
    db.close();
  }
}

function readSqlite(db: DatabaseSync, file: string): SqliteContents {
  const { user_version: version } = db.prepare("PRAGMA user_version").get() as { user_version: number };
  // Schema 2 only changed how messages are indexed, and 3 added each inbox's replay point, left behind (on a
  // shared store the resume window is each broker's memory): the columns read here are the same. Recorded removals
  // (`removed_agents`) stay behind too: the database has an identity of its own, which no client names as the store
  // where it had an inbox (`MessageStore.wasRemoved`).
  if (version < 1 || version > 4) {
    throw new InteropError("storage_failed", `${file} is not an interop store this version can read (schema version ${version}, expected 1 to 4)`);
  }
  // 4 stores a broadcast's payload once: read through the columns the SQLite store reads wherever its table is (an
  // older interop that served the file since set its version back, not the payloads).
  const sharesPayloads = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shared_payloads'").get() !== undefined;
  const columns = sharesPayloads ? SQLITE_MESSAGE_COLUMNS : MESSAGE_COLUMNS;
  const page = db.prepare(`SELECT ${columns}, polled, idempotency_key FROM messages WHERE id > ? ORDER BY id LIMIT ${PAGE_ROWS}`);
  const { messages, keys, last } = db.prepare("SELECT count(*) AS messages, count(idempotency_key) AS keys, max(id) AS last FROM messages")
    .get() as { messages: number; keys: number; last: number | null };
  const sequence = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").get() as { seq: number } | undefined;
  const hasIdentity = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_identity'").get() !== undefined;
  const identity = hasIdentity ? db.prepare("SELECT id FROM store_identity").get() as { id: string } | undefined : undefined;
  return {
    messages,
    keys,
    *pages() {
      for (let after = 0;;) {
        const read = new BoundedRows<Message>(PAGE_CHARS, (message) => message.payload?.length ?? 0);
        read.read(page, after);
        if (read.rows.length === 0) return;
        yield read.rows;
        after = read.rows.at(-1)!.id;
      }
    },
    inboxes: db.prepare("SELECT agent, delivered_id, purged_id, last_seen, expired FROM inboxes ORDER BY agent").all() as unknown as Inbox[],
    // Acknowledgements came without a new schema version: a file this interop never opened has none.
    deadLetters: db.prepare(
      `SELECT agent, message_id, reason, parked_at, ${hasColumn(db, "dead_letters", "acknowledged_at") ? "" : "NULL AS "}acknowledged_at
       FROM dead_letters ORDER BY agent, message_id`,
    ).all() as unknown as DeadLetterRow[],
    withdrawn: db.prepare("SELECT message_id, withdrawn_at FROM withdrawn ORDER BY message_id").all() as unknown as WithdrawnRow[],
    highestId: Math.max(sequence?.seq ?? 0, last ?? 0),
    id: identity?.id,
  };
}

async function refuseLiveBrokers(tx: TransactionSql, location: string): Promise<void> {
  const alive = await tx<{ pid: number; host: string; listening: string | null }[]>`
    SELECT pid, host, listening FROM interop_brokers
    WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => ${(3 * HEARTBEAT_MS) / 1000})
    ORDER BY started_at`;
  if (alive.length === 0) return;
  const names = alive.map((b) => `pid ${b.pid} on ${b.host}${b.listening === null ? "" : ` (${b.listening})`}`).join(", ");
  throw new InteropError(
    "database_in_use",
    `Database ${location} is in use by ${alive.length === 1 ? "an interop broker" : `${alive.length} interop brokers`}: ${names}; ` +
      `stop ${alive.length === 1 ? "it" : "them"} first (one killed counts as alive until its heartbeat is ${(3 * HEARTBEAT_MS) / 1000} s old)`,
  );
}

/**
 * Copies the data dir's tokens (ids, hashes, admin flags, times) while the database never had any, turning tokens
 * on for it even when the file was emptied; resolves with how many it copied. Once the database has had tokens,
 * a token of the file missing there was revoked there, and stays so: it only checks that the others match.
 */
async function moveTokens(
  tx: TransactionSql,
  tokens: TokenRecord[] | undefined,
  names: { dataDir: string; location: string },
): Promise<number> {
  if (tokens === undefined) return 0;
  const [{ tokens_version: version }] = await tx<{ tokens_version: number }[]>`SELECT tokens_version FROM interop_store`;
  if (version === 0) {
    const copied = await insertTokens(tx, tokens);
    await changed(tx);
    return copied;
  }
  const there = new Map((await tx<{ id: string; hash: string }[]>`SELECT id, hash FROM interop_tokens`).map((row) => [row.id, row.hash]));
  const other = tokens.find((record) => there.has(record.id) && there.get(record.id) !== record.hash);
  if (other !== undefined) {
    throw new InteropError(
      "store_mismatch",
      `Database ${names.location} has another token ${other.id} than data dir ${names.dataDir}: it holds another broker's tokens`,
    );
  }
  return 0;
}

/** Writes what the store's own publish path would have: each message's inbox predecessor, the heads, the sequence. */
async function copy(tx: TransactionSql, contents: SqliteContents, progress?: MigrationProgress): Promise<void> {
  // prev_id: the inbox's previous message; before an inbox's first kept message, the last one retention removed.
  const purged = new Map(contents.inboxes.map((inbox) => [inbox.agent, inbox.purged_id]));
  const previous = new Map<string, number>();
  let done = 0;
  for (const rows of contents.pages()) {
    const prevIds = rows.map((m) => {
      const before = previous.get(m.recipient) ?? Math.min(purged.get(m.recipient) ?? 0, m.id - 1);
      previous.set(m.recipient, m.id);
      return before;
    });
    const column = <T>(pick: (m: Message) => T) => rows.map(pick);
    await tx`
      INSERT INTO interop_messages (id, recipient, sender, created_at, payload, polled, reply_to, conversation, hops,
        idempotency_key, prev_id)
      OVERRIDING SYSTEM VALUE
      SELECT id, recipient, sender, created_at, payload, polled <> 0, reply_to, conversation, hops, idempotency_key, prev_id
      FROM unnest(${column((m) => m.id)}::int8[], ${column((m) => m.recipient)}::text[], ${column((m) => m.sender)}::text[],
        ${column((m) => m.created_at)}::int8[], ${column((m) => m.payload)}::text[], ${column((m) => m.polled)}::int4[],
        ${column((m) => m.reply_to)}::int8[], ${column((m) => m.conversation)}::int8[], ${column((m) => m.hops)}::int4[],
        ${column((m) => m.idempotency_key)}::text[], ${prevIds}::int8[])
        AS u (id, recipient, sender, created_at, payload, polled, reply_to, conversation, hops, idempotency_key, prev_id)`;
    done += rows.length;
    progress?.("copying", done, contents.messages);
  }
  // As migration 2 fills them from existing messages: the newest id and how many each inbox holds.
  // An inbox may be there already, empty (see `used`): the store's own takes its place.
  await tx`
    INSERT INTO interop_inbox_heads (agent, last_id, published)
    SELECT recipient, max(id), count(*) FROM interop_messages GROUP BY recipient
    ON CONFLICT (agent) DO UPDATE SET last_id = excluded.last_id, published = excluded.published`;
  const { inboxes, deadLetters, withdrawn } = contents;
  if (inboxes.length > 0) {
    await tx`
      INSERT INTO interop_inboxes (agent, delivered_id, purged_id, last_seen, expired)
      SELECT * FROM unnest(${inboxes.map((i) => i.agent)}::text[], ${inboxes.map((i) => i.delivered_id)}::int8[],
        ${inboxes.map((i) => i.purged_id)}::int8[], ${inboxes.map((i) => i.last_seen)}::int8[], ${inboxes.map((i) => i.expired)}::int8[])
      ON CONFLICT (agent) DO UPDATE SET delivered_id = excluded.delivered_id, purged_id = excluded.purged_id,
        last_seen = excluded.last_seen, expired = excluded.expired`;
  }
  if (deadLetters.length > 0) {
    await tx`
      INSERT INTO interop_dead_letters (agent, message_id, reason, parked_at, acknowledged_at)
      SELECT * FROM unnest(${deadLetters.map((d) => d.agent)}::text[], ${deadLetters.map((d) => d.message_id)}::int8[],
        ${deadLetters.map((d) => storedReason(d.reason))}::text[], ${deadLetters.map((d) => d.parked_at)}::int8[],
        ${deadLetters.map((d) => d.acknowledged_at)}::int8[])`;
  }
  if (withdrawn.length > 0) {
    await tx`
      INSERT INTO interop_withdrawn (message_id, withdrawn_at)
      SELECT * FROM unnest(${withdrawn.map((w) => w.message_id)}::int8[], ${withdrawn.map((w) => w.withdrawn_at)}::int8[])`;
  }
  // Past every id the SQLite broker handed out, retention's deleted ones included: none is handed out again.
  if (contents.highestId > 0) {
    await tx`SELECT setval(pg_get_serial_sequence('interop_messages', 'id'), ${contents.highestId})`;
  }
  // Its ids name the same messages here: a client resuming by one (listen, which names the store) resumes here.
  if (contents.id !== undefined) {
    await tx`UPDATE interop_store SET moved_from = ${contents.id}, moved_up_to = ${contents.highestId}`;
  }
}

/** Every SQLite message is in the database as it was (or removed there by retention), every inbox exists. */
async function check(
  tx: TransactionSql,
  contents: SqliteContents,
  names: { dataDir: string; location: string },
  progress?: MigrationProgress,
): Promise<void> {
  const refuse = (what: string) =>
    new InteropError(
      "store_mismatch",
      `Database ${names.location} holds another store than data dir ${names.dataDir}: ${what}; migrate into an empty database`,
    );
  const [moved] = await tx<{ moved_from: string | null; moved_up_to: number | null }[]>`
    SELECT moved_from, moved_up_to FROM interop_store`;
  if (moved.moved_from !== null && moved.moved_from !== contents.id) {
    throw refuse(`it holds the store interop migrate moved from another data dir (store ${moved.moved_from}, not ${contents.id ?? "one without an id"})`);
  }
  if (moved.moved_from !== null && contents.highestId > moved.moved_up_to!) {
    throw new InteropError(
      "store_mismatch",
      `Data dir ${names.dataDir} handed out ids up to ${contents.highestId} after its store was moved into ${names.location} ` +
        `(up to ${moved.moved_up_to}): a SQLite broker served it again since, and what it stored or took then is not in the database`,
    );
  }
  const inboxes = new Map((await tx<{ agent: string; purged_id: number }[]>`SELECT agent, purged_id FROM interop_inboxes`)
    .map((row) => [row.agent, row.purged_id]));
  // The store an earlier run moved here (by identity, and handing out no id since): what is missing there, its
  // brokers removed (retention, an inbox removed), which only its own messages' ids can tell from another store's.
  const sameStore = moved.moved_from !== null;
  for (const inbox of contents.inboxes) {
    if (!sameStore && !inboxes.has(inbox.agent)) throw refuse(`inbox ${inbox.agent} is missing there`);
  }
  const fields = ["recipient", "sender", "created_at", "payload"] as const;
  let done = 0;
  for (const rows of contents.pages()) {
    const stored = new Map((await tx<Message[]>`
      SELECT id, recipient, sender, created_at, payload FROM interop_messages WHERE id = ANY(${rows.map((m) => m.id)}::int8[])`)
      .map((row) => [row.id, row]));
    for (const message of rows) {
      const there = stored.get(message.id);
      if (there === undefined) {
        if (sameStore || message.id <= (inboxes.get(message.recipient) ?? 0)) continue;
        throw refuse(`message ${message.id} is missing there`);
      }
      const field = fields.find((name) => there[name] !== message[name]);
      if (field !== undefined) {
        throw refuse(`message ${message.id} has ${field} ${JSON.stringify(there[field])} there, ${JSON.stringify(message[field])} here`);
      }
    }
    done += rows.length;
    progress?.("checking", done, contents.messages);
  }
}
