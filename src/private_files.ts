/** Files that hold messages or secrets are their owner's alone, whoever creates them: dirs 700, files 600. */
import { chmodSync, closeSync, openSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import process from "node:process";

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `path` empty with mode 600 when it is missing (an existing file is left as it is), so that what then
 * writes it keeps that mode: SQLite opens a database file that is there as it is, and gives its -wal and -shm
 * the database file's mode.
 */
export function createPrivateFile(path: string): void {
  closeSync(openSync(path, "a", PRIVATE_FILE_MODE));
}

/**
 * Takes group and other access away from `path` if it has any (a file an older interop, or a umask, left open);
 * nothing when it is missing. Returns the mode it had when it changed it.
 */
export function makePrivate(path: string): number | undefined {
  const mode = modeOf(path);
  if (mode === undefined || (mode & 0o077) === 0) return undefined;
  chmodSync(path, mode & 0o700);
  return mode;
}

/** The permission bits of `path`, or undefined when it is missing. */
export function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Writes `text` to `path` whole or not at all, mode 600 (a temporary file renamed over it): a crash leaves the old
 * text or the new, never half a file. A temporary file a failed write made (a full disk) is not left behind. The
 * temporary file is made anew (`wx`), never opened through what is at its name: a symlink planted there (its name is
 * known) would have had the text written wherever it points.
 */
export function writePrivateFileAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    rmSync(temporary, { force: true });
    writeFileSync(temporary, text, { mode: PRIVATE_FILE_MODE, flag: "wx" });
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
