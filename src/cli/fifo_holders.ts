/** Whether another process holds a FIFO open, read from /proc (Linux). */
import { readdirSync, statSync } from "node:fs";
import process from "node:process";

/**
 * Whether a process other than this one has `path` open, as /proc's descriptors show. A reader blocked in open()
 * (one that read to end-of-file, closed, and opened the FIFO again) has no descriptor yet, and the kernel counts it
 * as a reader all the same: this tells the two apart where an open for writing cannot. Descriptors are compared by
 * device and inode, so a reader that opened a hard link or the FIFO through a bind mount is found too.
 *
 * Undefined where /proc cannot say for sure: not Linux, or a process whose descriptors this one may not list
 * (another user's when not root, or any without CAP_SYS_PTRACE, as in a container): a reader there could not be
 * seen, and taken for none it would be written to while about to close (red team, session 52: 1 line of 40 read).
 */
export function othersHoldOpen(path: string): boolean | undefined {
  let fifo: { dev: number; ino: number };
  let pids: string[];
  try {
    fifo = statSync(path);
    // Init (pid 1) reads no agent's FIFO, and is often the one process even root may not look into (a container's
    // or a sandbox's init from outside its namespace): counted, it would leave every answer unsure.
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name) && name !== "1" && name !== String(process.pid));
  } catch {
    return undefined;
  }
  let unseen = false;
  for (const pid of pids) {
    let descriptors: string[];
    try {
      descriptors = readdirSync(`/proc/${pid}/fd`);
    } catch (error) {
      // Exited since the listing, or not ours to look at.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") unseen = true;
      continue;
    }
    const holds = descriptors.some((fd) => {
      try {
        const target = statSync(`/proc/${pid}/fd/${fd}`);
        return target.ino === fifo.ino && target.dev === fifo.dev;
      } catch (error) {
        // Closed since the listing; or listed but not ours to follow (root without CAP_SYS_PTRACE, another user's).
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") unseen = true;
        return false;
      }
    });
    if (holds) return true;
  }
  return unseen ? undefined : false;
}
