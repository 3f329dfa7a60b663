/** Opening the SQLite store's file in a data dir: created private, locked against a second broker, migrated. */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { InteropError } from "../errors.ts";
import { makeDirectory } from "../paths.ts";
import { createPrivateFile, makePrivate, PRIVATE_DIR_MODE } from "../private_files.ts";
import { refuseIfMoved } from "./moved_store.ts";
import { migrate } from "./sqlite_schema.ts";
import type { Durability } from "./store.ts";

/** The store's file in its data dir. */
export const DATABASE_FILE = "interop.db";

/** A store file opened: its database, where it is, and what it holds. */
export interface OpenedDatabase {
  db: DatabaseSync;
  location: string;
  /** The store's identity (`MessageStore.id`). */
  id: string;
  /** The newest message's id (0 when none): every message up to it is in the per-recipient index, as migrated. */
  lastId: number;
}

/**
 * Opens (creating if needed) the store in `dataDir`; throws `data_dir_locked` if another broker has it. `warn`
 * hears of a database file left readable by other users that could not be made private.
 */
export function openDatabase(dataDir: string, durability: Durability, warn: (message: string) => void): OpenedDatabase {
  refuseIfMoved(dataDir, "serve the SQLite store");
  try {
    makeDirectory(dataDir, PRIVATE_DIR_MODE);
  } catch (cause) {
    throw new InteropError("storage_failed", `Cannot create data dir ${dataDir}: ${(cause as Error).message}`, { cause });
  }
  try {
    // SQLite would only say "disk I/O error" when it cannot create its WAL files next to the database.
    // access(W_OK) is not enough: root passes it, and Deno's answer ignores a read-only mount.
    const probe = join(dataDir, `.write-test-${process.pid}`);
    writeFileSync(probe, "");
    rmSync(probe);
  } catch (cause) {
    throw new InteropError("storage_failed", `Data dir ${dataDir} is not writable: ${(cause as Error).message}`, { cause });
  }
  const location = join(dataDir, DATABASE_FILE);
  _keepPrivate(location, warn);
  let db: DatabaseSync;
  try {
    createPrivateFile(location);
    db = new DatabaseSync(location, { timeout: 0 });
  } catch (cause) {
    throw new InteropError("storage_failed", `Cannot open database ${location}: ${(cause as Error).message}`, {
      cause,
    });
  }
  try {
    // EXCLUSIVE locking holds SQLite's file lock for as long as this process lives: the kernel frees it
    // on any exit (even kill -9), so a second broker on this data dir is refused and a stale lock cannot exist.
    db.exec(`PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL;
      PRAGMA synchronous = ${durability === "strict" ? "FULL" : "NORMAL"};
      PRAGMA temp_store = MEMORY;`);
    db.exec("BEGIN IMMEDIATE");
    migrate(db);
    db.exec("COMMIT");
    const lastId = (db.prepare("SELECT coalesce(max(id), 0) AS id FROM messages").get() as { id: number }).id;
    const id = (db.prepare("SELECT id FROM store_identity").get() as { id: string }).id;
    return { db, location, id, lastId };
  } catch (cause) {
    db.close();
    if (/locked|busy/i.test((cause as Error).message)) {
      throw new InteropError("data_dir_locked", `Data dir ${dataDir} is in use by another interop broker`, { cause });
    }
    throw new InteropError("storage_failed", `Cannot open database ${location}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/**
 * The database and SQLite's files beside it hold every message: made private when an older interop (or a umask)
 * left them readable by other users. A new database is created 600 (createPrivateFile) and SQLite gives its -wal
 * and -shm the database file's mode.
 */
function _keepPrivate(location: string, warn: (message: string) => void): void {
  for (const path of [location, `${location}-wal`, `${location}-shm`]) {
    try {
      makePrivate(path);
    } catch (error) {
      warn(`Cannot make ${path} private (mode 600): ${(error as Error).message}; other local users may read its messages`);
    }
  }
}
