/** Who else holds a FIFO open, and whether one of them waits to read it, read from /proc (Linux). */
import { readdirSync, readFileSync, statSync } from "node:fs";
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
  const holders = fifoHolders(path);
  return holders === undefined ? undefined : holders.size > 0;
}

/**
 * What the FIFO's readers are doing, as /proc shows: "none" when no other process holds it open, "waiting" when
 * one is blocked reading it (so the pipe is empty: a read waits only for a pipe with nothing in it), "busy" when
 * they hold it and do something else (read what is in it, handle a line); undefined where /proc cannot say.
 * A writer holding the FIFO open is what makes a reader wait rather than meet its end-of-file.
 */
export function fifoReaders(path: string): "none" | "waiting" | "busy" | undefined {
  const holders = fifoHolders(path);
  if (holders === undefined) return undefined;
  if (holders.size === 0) return "none";
  for (const [pid, fds] of holders) if (waitsToRead(pid, fds)) return "waiting";
  return "busy";
}

/**
 * Whether a thread of process `pid` is blocked reading one of `fds` (each thread: Node reads a file in a worker
 * thread of its own).
 */
function waitsToRead(pid: string, fds: number[]): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false; // Exited since the listing.
  }
  return threads.some((thread) => {
    const task = `/proc/${pid}/task/${thread}`;
    try {
      // The kernel function a sleeping thread waits in (`pipe_read`, `anon_pipe_read`); "0" while it runs.
      if (!readFileSync(`${task}/wchan`, "utf8").includes("pipe_read")) return false;
    } catch {
      return false;
    }
    try {
      // `NR arg0 …`: for a read, arg0 is the descriptor. A pipe it reads that is not the FIFO (its stdin) says nothing.
      const call = readFileSync(`${task}/syscall`, "utf8").split(" ");
      return call.length < 2 || fds.includes(Number.parseInt(call[1], 16));
    } catch {
      return true; // Not ours to read (a stricter ptrace policy): its wait in a pipe read counts.
    }
  });
}

/** The processes other than this one that hold `path` open, each with its descriptors of it; undefined where /proc cannot say. */
function fifoHolders(path: string): Map<string, number[]> | undefined {
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
  const holders = new Map<string, number[]>();
  for (const pid of pids) {
    let descriptors: string[];
    try {
      descriptors = readdirSync(`/proc/${pid}/fd`);
    } catch (error) {
      // Exited since the listing, or not ours to look at.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") unseen = true;
      continue;
    }
    const fds = descriptors.filter((fd) => {
      try {
        const target = statSync(`/proc/${pid}/fd/${fd}`);
        return target.ino === fifo.ino && target.dev === fifo.dev;
      } catch (error) {
        // Closed since the listing; or listed but not ours to follow (root without CAP_SYS_PTRACE, another user's).
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") unseen = true;
        return false;
      }
    });
    if (fds.length > 0) holders.set(pid, fds.map(Number));
  }
  return unseen && holders.size === 0 ? undefined : holders;
}
