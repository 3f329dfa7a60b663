/** The PostgreSQL store's tables, created and migrated by the broker under an advisory lock. */
import type { Sql } from "postgres";
import { InteropError } from "../errors.ts";

/** The first key of every advisory lock interop takes ("intp"), so it cannot meet another application's locks. */
export const LOCK_SPACE = 0x696e7470;
/** Held for a transaction while migrating: brokers that start together migrate one after the other. */
const MIGRATION_LOCK = 1;

/** Append only: a migration, once released, is never edited; a change is a new version. */
const MIGRATIONS: Array<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: "messages, inboxes, dead letters and the broker's claim",
    sql: `
CREATE TABLE interop_messages (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recipient text NOT NULL,
  sender text NOT NULL,
  created_at bigint NOT NULL,
  -- the payload's JSON text as published (jsonb would reorder its keys)
  payload text NOT NULL,
  polled boolean NOT NULL DEFAULT false,
  reply_to bigint,
  conversation bigint,
  hops integer,
  idempotency_key text
);
CREATE INDEX interop_messages_by_inbox ON interop_messages (recipient, id);
CREATE INDEX interop_messages_by_key ON interop_messages (sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE interop_inboxes (
  agent text PRIMARY KEY,
  delivered_id bigint NOT NULL DEFAULT 0,
  purged_id bigint NOT NULL DEFAULT 0,
  last_seen bigint,
  expired bigint NOT NULL DEFAULT 0
);
CREATE TABLE interop_dead_letters (
  agent text NOT NULL,
  message_id bigint NOT NULL,
  reason text NOT NULL,
  parked_at bigint NOT NULL,
  PRIMARY KEY (agent, message_id)
);
-- The broker that holds the database: every write checks its token (and leaves its marker, so a COMMIT whose
-- answer was lost can be looked up), a refused broker reads who it is.
CREATE TABLE interop_broker (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  token text NOT NULL,
  last_commit text,
  lock_pid integer NOT NULL,
  pid integer NOT NULL,
  host text NOT NULL,
  listening text,
  version text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 2,
    name: "inbox heads and the prev_id chain (writers of one inbox in commit order), the broker registry",
    sql: `
-- Written only by publishers: a publish locks its recipients' heads before it takes ids, and its COMMIT releases
-- them, so the ids of one inbox become visible in the order they were handed out (a reader never skips one).
CREATE TABLE interop_inbox_heads (
  agent text PRIMARY KEY,
  last_id bigint NOT NULL DEFAULT 0,
  published bigint NOT NULL DEFAULT 0
);
INSERT INTO interop_inbox_heads (agent, last_id, published)
  SELECT recipient, max(id), count(*) FROM interop_messages GROUP BY recipient;
-- The inbox's previous message when this one was written: the chain a reader can check.
ALTER TABLE interop_messages ADD COLUMN prev_id bigint;
-- Every broker on the database: heartbeats for the cluster view, and the marker its last write transaction
-- wrote, which settles a COMMIT whose answer was lost.
CREATE TABLE interop_brokers (
  id uuid PRIMARY KEY,
  pid integer NOT NULL,
  host text NOT NULL,
  listening text,
  version text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopped_at timestamptz,
  last_commit uuid
);
DROP TABLE interop_broker;
`,
  },
  {
    version: 3,
    name: "each inbox's stream and the version every take and claim changes (compare-and-set across brokers)",
    sql: `
ALTER TABLE interop_inboxes
  ADD COLUMN version bigint NOT NULL DEFAULT 0,
  ADD COLUMN stream_broker uuid,
  ADD COLUMN stream_session uuid,
  ADD COLUMN stream_opened_at timestamptz;
`,
  },
  {
    version: 4,
    name: "messages withdrawn before delivery (A2A CancelTask), and replies found by the message they answer",
    sql: `
CREATE TABLE interop_withdrawn (
  message_id bigint PRIMARY KEY,
  withdrawn_at bigint NOT NULL
);
CREATE INDEX interop_messages_by_reply ON interop_messages (reply_to) WHERE reply_to IS NOT NULL;
`,
  },
  {
    version: 5,
    name: "the store's identity, shared by every broker on the database",
    sql: `
CREATE TABLE interop_store (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  id uuid NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO interop_store DEFAULT VALUES;
`,
  },
  {
    version: 6,
    name: "tokens, shared by every broker on the database",
    sql: `
CREATE TABLE interop_tokens (
  id text PRIMARY KEY,
  agent text NOT NULL,
  -- SHA-256 of the token, hex: the token itself is shown once and never stored
  hash text NOT NULL UNIQUE,
  admin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL
);
-- Bumped by every change to interop_tokens, never reset: above 0, every request needs a token, even after the
-- last one is revoked (as a data dir's tokens.json, emptied, keeps tokens on).
ALTER TABLE interop_store ADD COLUMN tokens_version bigint NOT NULL DEFAULT 0;
`,
  },
  {
    version: 7,
    name: "agents whose inbox the operator removed, until it is created again",
    sql: `
CREATE TABLE interop_removed_agents (
  agent text PRIMARY KEY,
  removed_at bigint NOT NULL
);
`,
  },
  {
    version: 8,
    name: "each inbox's lease (a reader that peeks, shows, then takes), held across brokers",
    sql: `
-- Text, not uuid: a client's lease_id is compared as given, whatever it is.
ALTER TABLE interop_inboxes
  ADD COLUMN lease_id text,
  ADD COLUMN lease_until timestamptz;
`,
  },
  {
    version: 9,
    name: "replies an /ask, a /wait?reply_to= or a blocking A2A call waits for: in-order readers stop before them",
    sql: `
-- One row per waiting request (a question may have several), written by the broker that holds it. While it holds
-- (until its wait ends, and while its broker is alive), every in-order reader of the inbox stops before the reply,
-- so the waiter takes it wherever it was published; then the reply is an ordinary message again.
CREATE TABLE interop_awaited_replies (
  id uuid PRIMARY KEY,
  agent text NOT NULL REFERENCES interop_inboxes (agent) ON DELETE CASCADE,
  question_id bigint NOT NULL,
  broker uuid NOT NULL,
  until timestamptz NOT NULL
);
CREATE INDEX interop_awaited_replies_by_agent ON interop_awaited_replies (agent);
`,
  },
  {
    version: 10,
    name: "the SQLite store interop migrate moved into the database, and the ids it had handed out",
    sql: `
-- Its ids were kept: a client resuming by one of them (listen names the store it came from) resumes here by it.
ALTER TABLE interop_store
  ADD COLUMN moved_from text,
  ADD COLUMN moved_up_to bigint;
`,
  },
  {
    version: 11,
    name: "dead letters an operator acknowledged: kept, no longer counted",
    sql: `
ALTER TABLE interop_dead_letters ADD COLUMN acknowledged_at bigint;
`,
  },
];

/** The schema version this interop writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/**
 * Brings the schema to `SCHEMA_VERSION` in one transaction, each missing migration recorded in
 * `interop_migrations`; resolves with the versions it applied ([] when there was nothing to do).
 */
export async function migrate(sql: Sql): Promise<number[]> {
  return await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS interop_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set((await tx<{ version: number }[]>`SELECT version FROM interop_migrations`).map((row) => row.version));
    const newest = Math.max(0, ...done);
    if (newest > SCHEMA_VERSION) {
      throw new InteropError(
        "storage_failed",
        `The database's schema is version ${newest}, newer than this interop's (${SCHEMA_VERSION}): run a newer interop`,
      );
    }
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (done.has(migration.version)) continue;
      await tx.unsafe(migration.sql);
      await tx`INSERT INTO interop_migrations (version, name) VALUES (${migration.version}, ${migration.name})`;
      applied.push(migration.version);
    }
    return applied;
  });
}
