/** The broker's data dir as the CLI sees it: made usable before anything opens it, and who serves it now. */
import { accessSync, constants, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { InteropError } from "../errors.ts";
import { makeDirectory } from "../paths.ts";

/** What a running broker writes into its data dir, so others can name it. */
const OWNER_FILE = "broker.json";

export interface BrokerOwner {
  pid: number;
  host: string;
  port: number;
  version: string;
}

/**
 * Creates the data dir if needed; one it cannot create or write is a usage error (exit 2) at once, before the
 * store or the token file try (and, under /proc, before Node's recursive mkdir spins).
 */
export function prepareDataDir(dir: string): void {
  try {
    makeDirectory(dir);
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (cause) {
    throw new InteropError(
      "usage",
      `Unusable data dir ${dir}: ${(cause as Error).message}; pass a --data-dir this user can create and write`,
      { cause },
    );
  }
}

export function writeOwner(dir: string, owner: BrokerOwner): void {
  writeFileSync(join(dir, OWNER_FILE), JSON.stringify(owner) + "\n");
}

export function removeOwner(dir: string): void {
  rmSync(join(dir, OWNER_FILE), { force: true });
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
  if (owner === undefined) return undefined;
  try {
    process.kill(owner.pid, 0);
    return owner;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === "EPERM" ? owner : undefined;
  }
}
