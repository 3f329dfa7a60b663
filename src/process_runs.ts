/** Whether a process a file names (a broker's owner file, a lock's holder) still runs on this host. */
import { readFileSync } from "node:fs";
import process from "node:process";

/** This boot's id (Linux; undefined elsewhere): a pid written down in an earlier boot names none of this one's processes. */
export const BOOT_ID: string | undefined = readBootId();

function readBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 checks without sending anything; EPERM means it runs, as another user. */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
