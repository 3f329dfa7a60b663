/** Whether another process holds a FIFO open, read from /proc (Linux). */
import { readdirSync, readlinkSync, realpathSync } from "node:fs";
import process from "node:process";

/**
 * Whether a process other than this one has `path` open, as /proc's descriptor links show. A reader blocked in
 * open() (one that read to end-of-file, closed, and opened the FIFO again) has no descriptor yet, and the kernel
 * counts it as a reader all the same: this tells the two apart where an open for writing cannot. Undefined where
 * /proc cannot say (not Linux). Another user's processes, whose descriptors this user may not list, are skipped:
 * listen creates the FIFO for its own user only.
 */
export function othersHoldOpen(path: string): boolean | undefined {
  let target: string;
  let pids: string[];
  try {
    target = realpathSync(path);
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name) && name !== String(process.pid));
    readdirSync("/proc/self/fd");
  } catch {
    return undefined;
  }
  return pids.some((pid) => {
    let descriptors: string[];
    try {
      descriptors = readdirSync(`/proc/${pid}/fd`);
    } catch {
      return false; // Gone since the listing, or another user's.
    }
    return descriptors.some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
      } catch {
        return false; // Closed since the listing.
      }
    });
  });
}
