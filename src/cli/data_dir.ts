/** The broker's data dir as the CLI sees it: made before anything opens it, and who serves it now. */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InteropError } from "../errors.ts";
import { makeDirectory } from "../paths.ts";
import { processGone, type ProcessMark } from "../process_runs.ts";
import { makePrivate, modeOf, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from "../private_files.ts";

/** What a running broker writes into its data dir, so others can name it. */
const OWNER_FILE = "broker.json";

/** The broker's process (its start too: a pid the kernel gave to another process since names no broker), and where it listens. */
export interface BrokerOwner extends ProcessMark {
  host: string;
  port: number;
  version: string;
}

/**
 * Creates the data dir (mode 700: it holds messages and tokens) before the store or the token file do: a
 * recursive mkdir spins forever on a path under /proc (see makeDirectory). Fails as the store does
 * (storage_failed, exit 1), at once.
 */
export function makeDataDir(dir: string): void {
  try {
    makeDirectory(dir, PRIVATE_DIR_MODE);
  } catch (cause) {
    throw new InteropError("storage_failed", `Cannot create data dir ${dir}: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Warns when other local users can enter the data dir. Its files are private (600) whatever its mode, but with
 * tokens the broker is a boundary between local users (without, any of them reads every inbox over HTTP anyway).
 * The operator may have chosen the dir open, so it is named with the fix, not changed.
 */
export function warnIfDataDirOpen(dir: string, warn: (message: string) => void): void {
  const mode = modeOf(dir);
  if (mode === undefined || (mode & 0o077) === 0) return;
  warn(`data dir ${dir} is open to other local users (mode ${mode.toString(8)}); make it private: chmod 700 ${dir}`);
}

export function writeOwner(dir: string, owner: BrokerOwner): void {
  const path = join(dir, OWNER_FILE);
  // The mode applies only to a file writeFileSync creates: one a killed broker left is made private first.
  makePrivate(path);
  writeFileSync(path, JSON.stringify(owner) + "\n", { mode: PRIVATE_FILE_MODE });
}

/**
 * Removes the owner file as the broker stops. One it cannot remove (the file system gone read-only) is said, not
 * thrown: the broker has stopped cleanly, and the next start reads a file whose process is gone as no owner.
 */
export function removeOwner(dir: string, warn: (message: string) => void): void {
  const path = join(dir, OWNER_FILE);
  try {
    rmSync(path, { force: true });
  } catch (error) {
    warn(`could not remove ${path} (${(error as Error).message}); the next start takes it for a broker that stopped`);
  }
}

/** The broker that wrote the data dir's owner file, if the file is there (its process may be gone: see `liveOwner`). */
export function readOwner(dir: string): BrokerOwner | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, OWNER_FILE), "utf8"));
  } catch {
    return undefined;
  }
}

/** The broker serving the data dir now: its owner file, if that process still runs (a `kill -9` leaves the file). */
export function liveOwner(dir: string): BrokerOwner | undefined {
  const owner = readOwner(dir);
  return owner !== undefined && !processGone(owner) ? owner : undefined;
}
