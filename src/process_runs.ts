/** Whether a process a file names (a broker's owner file, a lock's holder, a held file) still runs on this host. */
import { readFileSync } from "node:fs";
import process from "node:process";

/** This boot's id (Linux; undefined elsewhere): a pid written down in an earlier boot names none of this one's processes. */
const BOOT_ID: string | undefined = readBootId();

/**
 * A process as a file names it: its pid, and where the kernel tells (Linux) the boot and the moment in it the process
 * started, without which a pid the kernel gave to another process since names that one (a long-lived one keeps a
 * dead session's held messages, or a dead broker's data dir, taken for ever).
 */
export interface ProcessMark {
  pid: number;
  boot?: string;
  /** The process's start, in clock ticks since boot (`/proc/PID/stat`'s 22nd field), as text. */
  started?: string;
}

/** Process `pid` (this one by default), as a file names it. */
export function processMark(pid = process.pid): ProcessMark {
  return { pid, boot: BOOT_ID, started: processStart(pid) };
}

/**
 * Whether the process `mark` names is gone: not running, or written down in another boot, or its pid now another
 * process's (started at another moment). A mark without boot or start (an older version's file, another system)
 * is judged by its pid alone.
 */
export function processGone(mark: ProcessMark): boolean {
  if (mark.boot !== undefined && BOOT_ID !== undefined && mark.boot !== BOOT_ID) return true;
  if (!processRuns(mark.pid)) return true;
  const started = mark.started === undefined ? undefined : processStart(mark.pid);
  return started !== undefined && started !== mark.started;
}

/** Signal 0 checks without sending anything; EPERM means it runs, as another user. */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** When process `pid` started (Linux), undefined where it cannot be read. */
function processStart(pid: number): string | undefined {
  try {
    // The command name (field 2) is in parentheses and may hold spaces and ")": the fields are counted after its last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return started && /^\d+$/.test(started) ? started : undefined;
  } catch {
    return undefined;
  }
}
