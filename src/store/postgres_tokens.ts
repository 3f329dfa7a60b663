/**
 * The tokens of every broker on a PostgreSQL database: `interop_tokens` (hashes only), and `tokens_version` in
 * `interop_store`, bumped by each change and never reset, which keeps tokens on once the database had one.
 */
import postgres, { type TransactionSql } from "postgres";
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import { mintToken, type TokenList, type TokenRecord } from "../auth/token_list.ts";
import { redactUrl } from "../url_redaction.ts";
import { INT8_AS_NUMBER, isUnreachable } from "./postgres_client.ts";
import { CLIENT_OPTIONS } from "./postgres_registry.ts";
import { migrate } from "./postgres_schema.ts";
import { CONNECT_TIMEOUT_S, NoAnswer, RenewingClient } from "./renewing_client.ts";

/** Notified by every change, so that each broker re-reads the tokens at once (its periodic check is the backstop). */
const CHANGED = "interop_tokens";

interface TokenRow {
  id: string;
  agent: AgentName;
  hash: string;
  admin: boolean;
  created_at: Date;
}

export class PostgresTokens implements TokenList {
  readonly where: string;
  /** Every query bounded: a request waits on the token re-read, so one that never settled would hang them all. */
  #client: RenewingClient;

  private constructor(client: RenewingClient, where: string) {
    this.#client = client;
    this.where = where;
  }

  /** Connects and creates or migrates the schema (the CLI may be the first to use the database). */
  static async open(url: string): Promise<PostgresTokens> {
    const where = redactUrl(url);
    const options = { ...CLIENT_OPTIONS, max: 1, types: { int8: INT8_AS_NUMBER } };
    // Unbounded, on a client of its own: a migration may wait for another broker's, or take its time.
    const migrating = postgres(url, options);
    try {
      await migrate(migrating);
    } catch (cause) {
      throw failure(where, "prepare the schema", cause);
    } finally {
      await migrating.end({ timeout: 1 });
    }
    const client = new RenewingClient(() =>
      postgres(url, {
        ...options,
        connect_timeout: CONNECT_TIMEOUT_S,
        connection: { synchronous_commit: "on", application_name: "interop tokens" },
      })
    );
    return new PostgresTokens(client, where);
  }

  list(): Promise<TokenRecord[]> {
    return this.#run("read the tokens", async () =>
      (await this.#client.query((sql) => sql<TokenRow[]>`SELECT id, agent, hash, admin, created_at FROM interop_tokens ORDER BY created_at, id`))
        .map(toRecord));
  }

  version(): Promise<number> {
    return this.#run("read the tokens", async () => {
      const [row] = await this.#client.query((sql) => sql<{ tokens_version: number }[]>`SELECT tokens_version FROM interop_store`);
      return row.tokens_version;
    });
  }

  async create(agent: AgentName, admin = false): Promise<{ record: TokenRecord; token: string }> {
    const created = mintToken(agent, admin);
    await this.add([created.record]);
    return created;
  }

  add(records: TokenRecord[]): Promise<number> {
    return this.#run("add tokens", () =>
      this.#client.query((sql) =>
        sql.begin(async (tx) => {
          const added = await insertTokens(tx, records);
          if (added > 0) await changed(tx);
          return added;
        }) as Promise<number>
      ));
  }

  revoke(match: { id?: string; agent?: string }): Promise<TokenRecord[]> {
    return this.#run("revoke tokens", () =>
      this.#client.query((sql) =>
        sql.begin(async (tx) => {
          const removed = await tx<TokenRow[]>`
            DELETE FROM interop_tokens WHERE id = ${match.id ?? null} OR agent = ${match.agent ?? null}
            RETURNING id, agent, hash, admin, created_at`;
          if (removed.length > 0) await changed(tx);
          return removed.map(toRecord).sort((a, b) => a.created_at < b.created_at ? -1 : 1);
        }) as Promise<TokenRecord[]>
      ));
  }

  /** Its changes are announced (NOTIFY, `watch`): asking the database on every request would cost a query each. */
  changedSinceVersion(): boolean {
    return false;
  }

  async watch(change: () => void): Promise<void> {
    // Also on every (re)connection of the listening connection: a change made while it was down is read then.
    await this.#run("listen for token changes", () => this.#client.onEveryClient((sql) => sql.listen(CHANGED, change, change)));
  }

  async close(): Promise<void> {
    await this.#client.end();
  }

  async #run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (cause) {
      throw failure(this.where, what, cause);
    }
  }
}

function failure(where: string, what: string, cause: unknown): InteropError {
  if (cause instanceof InteropError) return cause;
  const reason = (cause as Error)?.message ?? String(cause);
  if (isUnreachable(cause) || cause instanceof NoAnswer) {
    return new InteropError(
      "storage_unavailable",
      `Storage unavailable: PostgreSQL at ${where} cannot be reached to ${what} (${reason}); retry shortly`,
      { cause, retryAfter: 1 },
    );
  }
  return new InteropError("storage_failed", `Storage failed to ${what} in ${where}: ${reason}`, { cause });
}

/** Adds token records as they are (ids, hashes, times kept); a record whose id is there already is left alone. */
export async function insertTokens(tx: TransactionSql, records: TokenRecord[]): Promise<number> {
  const inserted = await tx`
    INSERT INTO interop_tokens (id, agent, hash, admin, created_at)
    SELECT id, agent, hash, admin <> 0, created_at
    FROM unnest(${records.map((r) => r.id)}::text[], ${records.map((r) => r.agent)}::text[],
      ${records.map((r) => r.hash)}::text[], ${records.map((r) => r.admin === true ? 1 : 0)}::int4[],
      ${records.map((r) => r.created_at)}::timestamptz[]) AS u (id, agent, hash, admin, created_at)
    -- an array of booleans does not pass through the client (postgres 3.4.9): 0 or 1
    ON CONFLICT (id) DO NOTHING`;
  return inserted.count;
}

/** Bumps the version (tokens on from now on) and wakes every broker's authenticator when the transaction commits. */
export async function changed(tx: TransactionSql): Promise<void> {
  await tx`UPDATE interop_store SET tokens_version = tokens_version + 1`;
  await tx`SELECT pg_notify(${CHANGED}, '')`;
}

function toRecord(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    agent: row.agent,
    hash: row.hash,
    created_at: row.created_at.toISOString(),
    ...(row.admin ? { admin: true } : {}),
  };
}
