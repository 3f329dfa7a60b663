/**
 * Where `interop serve` keeps messages and tokens: the data dir's SQLite store and tokens.json, or, with
 * --database-url, PostgreSQL for both.
 */
import { hostname } from "node:os";
import { TokenFile } from "../auth/token_file.ts";
import type { TokenList } from "../auth/token_list.ts";
import { InteropError } from "../errors.ts";
import { PostgresStore } from "../store/postgres.ts";
import { surviveStrayConnectionFailures } from "../store/postgres_stray_errors.ts";
import { PostgresTokens } from "../store/postgres_tokens.ts";
import { SqliteStore } from "../store/sqlite.ts";
import type { Durability, MessageStore } from "../store/store.ts";
import { VERSION } from "../version.ts";
import { readOwner } from "./data_dir.ts";

/** Opens the message store: the data dir's, or with `databaseUrl` the database, registering this broker there. */
export async function openMessageStore(
  dataDir: string,
  durability: Durability,
  databaseUrl: string | undefined,
  warn: (message: string) => void,
  /** With `databaseUrl`: how long a store call may wait for the server (`PostgresStoreOptions.callBoundMs`). */
  callBoundMs?: number,
): Promise<MessageStore> {
  if (databaseUrl === undefined) return openDataDirStore(dataDir, durability, warn);
  surviveStrayConnectionFailures(warn);
  return await PostgresStore.open({
    url: databaseUrl,
    durability,
    claimant: { pid: process.pid, host: hostname(), version: VERSION },
    warn,
    callBoundMs,
  });
}

/** The tokens the broker checks requests against: the data dir's file, or with `databaseUrl` the database's. */
export async function openTokens(dataDir: string, databaseUrl: string | undefined): Promise<TokenList> {
  return databaseUrl === undefined ? new TokenFile(dataDir) : await databaseTokens(databaseUrl, dataDir);
}

/**
 * The database's tokens. A data dir's tokens.json is not read with a database: while the database never had a
 * token, one there means tokens the operator expects to be on, so the broker refuses to start rather than serve
 * every inbox without them.
 */
async function databaseTokens(url: string, dataDir: string): Promise<TokenList> {
  const tokens = await PostgresTokens.open(url);
  const file = new TokenFile(dataDir);
  try {
    if (await tokens.version() === 0 && await file.version() > 0) {
      throw new InteropError(
        "storage_failed",
        `${file.path} has tokens, but with --database-url the brokers read them from the database, which has none: ` +
          `copy them with 'interop migrate --from ${dataDir} --to URL' (or remove the file to serve without tokens)`,
      );
    }
  } catch (error) {
    await tokens.close();
    throw error;
  }
  return tokens;
}

/** Opens the store; when another broker holds the data dir, names it from its owner file. */
function openDataDirStore(dataDir: string, durability: Durability, warn: (message: string) => void): SqliteStore {
  try {
    return new SqliteStore(dataDir, durability, warn);
  } catch (error) {
    if (!(error instanceof InteropError) || error.code !== "data_dir_locked") throw error;
    // No owner file yet: the other broker is still starting.
    const holder = readOwner(dataDir);
    const owner = holder === undefined ? "" : ` (pid ${holder.pid}, listening on ${holder.host}:${holder.port})`;
    throw new InteropError(
      "data_dir_locked",
      `Data dir ${dataDir} is in use by another interop broker${owner}; stop it, or pass a different --data-dir`,
      { cause: error },
    );
  }
}
