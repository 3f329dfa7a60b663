/**
 * A data dir whose store `interop migrate` moved into PostgreSQL is marked so (`moved.json`): a SQLite broker
 * started on it again would hand out ids the database hands out too, and take messages the database's brokers
 * deliver again, and a token changed in its `tokens.json` would reach no broker. Both refuse it, naming the database.
 */
import { lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { InteropError } from "../errors.ts";
import { writePrivateFileAtomically } from "../private_files.ts";

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
  try {
    const moved: Moved = { to: location, at: new Date().toISOString() };
    writePrivateFileAtomically(path, JSON.stringify(moved) + "\n");
  } catch (cause) {
    throw new InteropError("storage_failed", `Cannot mark ${dataDir} as moved (${path}): ${(cause as Error).message}`, { cause });
  }
}

/**
 * Where `dataDir`'s store was moved, if it was: the marker's presence says so (any file, a symlink even dangling),
 * its content where to (`to` undefined when it cannot be read: edited, or not a file).
 */
export function movedTo(dataDir: string): Partial<Moved> | undefined {
  const path = join(dataDir, MOVED_FILE);
  try {
    lstatSync(path);
  } catch {
    return undefined;
  }
  let moved: Partial<Record<keyof Moved, unknown>> = {};
  try {
    moved = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    // Unreadable or edited: the file's presence says enough.
  }
  return { to: typeof moved.to === "string" ? moved.to : undefined, at: typeof moved.at === "string" ? moved.at : undefined };
}

/**
 * Refuses to use `dataDir`'s SQLite store or tokens (`what`: "serve a SQLite store", …) once it was moved; nothing
 * when it was not.
 */
export function refuseIfMoved(dataDir: string, what: string): void {
  const moved = movedTo(dataDir);
  if (moved === undefined) return;
  const path = join(dataDir, MOVED_FILE);
  const to = moved.to ?? "PostgreSQL";
  const at = moved.at === undefined ? "" : ` at ${moved.at}`;
  throw new InteropError(
    "store_moved",
    `Cannot ${what} in ${dataDir}: interop migrate moved its store to ${to}${at}, whose brokers hold it now; use ` +
      `--database-url ${to} (to take the SQLite store back, without what was stored since, remove ${path})`,
  );
}
