/**
 * A data dir whose store `interop migrate` moved into PostgreSQL is marked so (`moved.json`): a SQLite broker
 * started on it again would hand out ids the database hands out too, and take messages the database's brokers
 * deliver again, and a token changed in its `tokens.json` would reach no broker. Both refuse it, naming the database.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InteropError } from "../errors.ts";
import { PRIVATE_FILE_MODE } from "../private_files.ts";

/** The marker's file in the data dir: removing it takes the SQLite store back (without what was stored since). */
export const MOVED_FILE = "moved.json";

/** Where a data dir's store went, and when. */
interface Moved {
  to: string;
  at: string;
}

/** Marks `dataDir`'s store as moved to `location` (a database's URL without its password). */
export function markMoved(dataDir: string, location: string): void {
  const path = join(dataDir, MOVED_FILE);
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, JSON.stringify({ to: location, at: new Date().toISOString() } satisfies Moved) + "\n", { mode: PRIVATE_FILE_MODE });
    renameSync(temporary, path);
  } catch (cause) {
    rmSync(temporary, { force: true });
    throw new InteropError("storage_failed", `Cannot mark ${dataDir} as moved (${path}): ${(cause as Error).message}`, { cause });
  }
}

/**
 * Refuses to use `dataDir`'s SQLite store or tokens (`what`: "serve a SQLite store", …) once it was moved; nothing
 * when it was not.
 */
export function refuseIfMoved(dataDir: string, what: string): void {
  const path = join(dataDir, MOVED_FILE);
  if (!existsSync(path)) return;
  let moved: Partial<Moved> = {};
  try {
    moved = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    // Unreadable or edited: the file's presence says enough.
  }
  const to = typeof moved.to === "string" ? moved.to : "PostgreSQL";
  const at = typeof moved.at === "string" ? ` at ${moved.at}` : "";
  throw new InteropError(
    "store_moved",
    `Cannot ${what} in ${dataDir}: interop migrate moved its store to ${to}${at}, whose brokers hold it now; use ` +
      `--database-url ${to} (to take the SQLite store back, without what was stored since, remove ${path})`,
  );
}
