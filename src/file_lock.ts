/** One process at a time changes a file by read-modify-write: a lock file beside it (Node has no flock). */
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, linkSync, openSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { InteropError } from "./errors.ts";
import { PRIVATE_FILE_MODE } from "./private_files.ts";
import { processGone, processMark } from "./process_runs.ts";

export interface LockTimes {
  /** How long to wait for the holders ahead (each refreshing its lock) before giving up. */
  waitMs: number;
  /**
   * A lock a waiter has seen unrefreshed for this long is taken over (its holder hangs, or its pid now names another
   * process): its holder refreshes it every third of this, so a live one misses none.
   */
  staleMs: number;
}

/**
 * A change of the token list takes milliseconds, seconds for a long list on a loaded machine with others queued
 * ahead (8 at once on 20,000 tokens, load 18 on 2 cores: 33 s in all); a migration holds it for its copy.
 */
export const LOCK_TIMES: LockTimes = { waitMs: 60_000, staleMs: 30_000 };

/** A lock file as read: its text (different for every holder) and when it was last refreshed. */
interface Holder {
  text: string;
  mtimeMs: number;
  pid?: number;
  host?: string;
  /** The kernel's boot id when it was written (Linux): a lock from an earlier boot names a pid that may run again. */
  boot?: string;
  /** When its process started (Linux): a pid the kernel gave to another process since is not the holder's. */
  started?: string;
}

/**
 * What a caller says of a lock held by another process (`who`: its pid): `waiting` is told once when the wait
 * begins, `busy` says why it gives up after `waitMs` (the default says the file is being changed).
 */
export interface LockWording {
  waiting?(who: string): void;
  busy(who: string): string;
}

/** What `work` is given while it holds the lock. */
export interface HeldLock {
  /** Aborts when the lock was taken over (seen at its refresh, every third of `staleMs`, or by `confirm`). */
  readonly lost: AbortSignal;
  /**
   * Reads the lock now: false (and `lost` aborted) when another process holds it. A holder calls it right before a
   * write its successor may have made already: thawed after a freeze, a timer's refresh need not run first.
   */
  confirm(): boolean;
}

/**
 * Runs `work` holding `FILE.lock`, waiting for another process that holds it (with a small backoff, up to
 * `waitMs`; then `data_dir_locked`, naming the lock and its holder). A lock whose holder is gone (SIGKILL) or which
 * has not been refreshed for `staleMs` is taken over. Readers need no lock when the file is replaced by a rename.
 * `work` is told when its own lock was taken over (its process was frozen or hung past `staleMs`): a long holder
 * stops before it writes over its successor's work.
 *
 * @example
 * ```ts
 * await withFileLock("/data/tokens.json", async () => save(change(read())));
 * ```
 */
export async function withFileLock<T>(
  file: string,
  work: (held: HeldLock) => Promise<T>,
  times: LockTimes = LOCK_TIMES,
  wording?: LockWording,
): Promise<T> {
  const lock = `${file}.lock`;
  const nonce = randomBytes(8).toString("hex");
  const mine = JSON.stringify({ ...processMark(), host: hostname(), nonce }) + "\n";
  // Written whole, then linked to the lock's name: link fails when the lock exists, and a lock is never seen
  // without its holder's pid (as one made with `wx`, then written, would be).
  const ready = `${lock}.${process.pid}.${nonce}`;
  removeLeftWaits(lock, times.staleMs);
  try {
    writeFileSync(ready, mine, { mode: PRIVATE_FILE_MODE, flag: "wx" });
  } catch (cause) {
    // Created but not written (a full disk): not left behind for every later change to pass over.
    rmSync(ready, { force: true });
    throw new InteropError("storage_failed", `Cannot lock ${file} (writing ${ready}): ${(cause as Error).message}`, { cause });
  }
  try {
    await acquire(file, lock, ready, mine, times, wording);
  } finally {
    rmSync(ready, { force: true });
  }
  const lost = new AbortController();
  const confirm = () => {
    if (!lost.signal.aborted && !stillHeld(lock, mine)) lost.abort();
    return !lost.signal.aborted;
  };
  const refresh = setInterval(() => {
    if (confirm()) touch(lock);
  }, times.staleMs / 3);
  try {
    return await work({ lost: lost.signal, confirm });
  } finally {
    clearInterval(refresh);
    // Only its own: a holder that was taken over (it hung past staleMs) must not remove its successor's lock.
    if (readHolder(lock)?.text === mine) rmSync(lock, { force: true });
  }
}

async function acquire(file: string, lock: string, ready: string, mine: string, times: LockTimes, wording?: LockWording): Promise<void> {
  const deadline = performance.now() + times.waitMs;
  const stale = staleAfterWatching(times.staleMs);
  let waitTold = false;
  for (let pause = 2;; pause = Math.min(pause * 2, 100)) {
    // Dated now: the lock is this file once linked, and must not look as old as this wait. Written again when a
    // newcomer took it for a dead waiter's (a forward step of the wall clock makes it look old): the wait goes on.
    if (!touch(ready)) writeFileSync(ready, mine, { mode: PRIVATE_FILE_MODE });
    if (tryLink(ready, lock)) return;
    const holder = readHolder(lock);
    if (holder === undefined) continue; // released meanwhile
    if (stale(lock, holder) && breakStale(lock, ready, holder, stale)) continue;
    const who = holder.pid === undefined ? "an unknown process" : `pid ${holder.pid}${holder.host === hostname() ? "" : ` on ${holder.host}`}`;
    if (performance.now() >= deadline) {
      const seconds = Math.round((Date.now() - holder.mtimeMs) / 1000);
      throw new InteropError(
        "data_dir_locked",
        wording?.busy(who) ??
          `${file} is being changed by another process (lock ${lock}, held by ${who}, refreshed ${seconds} s ago): ` +
            "try again when it is done",
      );
    }
    if (!waitTold) wording?.waiting?.(who);
    waitTold = true;
    // Jittered, so that waiters woken together do not collide again.
    await new Promise((resolve) => setTimeout(resolve, pause * (0.5 + Math.random())));
  }
}

/**
 * A waiter's judge of the files in its way (the lock, the breaker): stale once their holder's process is gone, or
 * once this waiter has seen one unchanged for `staleMs` on the monotonic clock. Their age by the wall clock would
 * make a live holder look stale after a forward step of the clock, and two changes of the file would interleave.
 */
function staleAfterWatching(staleMs: number): (path: string, holder: Holder) => boolean {
  const firstSeen = new Map<string, { text: string; mtimeMs: number; at: number }>();
  return (path, holder) => {
    if (holderDied(holder)) return true;
    const seen = firstSeen.get(path);
    if (seen?.text === holder.text && seen.mtimeMs === holder.mtimeMs) return performance.now() - seen.at > staleMs;
    firstSeen.set(path, { text: holder.text, mtimeMs: holder.mtimeMs, at: performance.now() });
    return false;
  };
}

/**
 * Removes a stale lock, one process at a time: two that judged it stale at once would otherwise each remove it,
 * the second the lock the first has taken since. The breaker is held for a read and an unlink; one its holder died
 * holding is removed once stale in turn (two removing that one at once is the window left: a crash within those
 * microseconds, then a race). Resolves whether the lock is gone.
 */
function breakStale(lock: string, ready: string, holder: Holder, stale: (path: string, holder: Holder) => boolean): boolean {
  const breaker = `${lock}.break`;
  if (!tryLink(ready, breaker)) {
    const other = readHolder(breaker);
    if (other !== undefined && stale(breaker, other)) rmSync(breaker, { force: true });
    return false;
  }
  try {
    const now = readHolder(lock);
    if (now !== undefined && (now.text !== holder.text || now.mtimeMs !== holder.mtimeMs)) return false;
    rmSync(lock, { force: true });
    return true;
  } finally {
    rmSync(breaker, { force: true });
  }
}

/**
 * Removes the files waiters killed while waiting left (SIGKILL, OOM, power loss: `ready` is removed only by a
 * waiter that lives on), each named by a pid and nonce: otherwise every one stays in the data dir for good. A live
 * waiter's is dated at each try (every 150 ms at most), so only a dead or long-hung one's is stale.
 */
function removeLeftWaits(lock: string, staleMs: number): void {
  const prefix = `${basename(lock)}.`;
  const waits = readdirSync(dirname(lock)).filter((name) =>
    name.startsWith(prefix) && /^\d+\.[0-9a-f]{16}$/.test(name.slice(prefix.length))
  );
  for (const name of waits) {
    const path = join(dirname(lock), name);
    const left = readHolder(path);
    if (left !== undefined && isStale(left, staleMs)) rmSync(path, { force: true });
  }
}

/**
 * Whether a waiter's file was left by a process gone or hung, at one look, by its age on the wall clock (a live
 * waiter whose file a forward step of the clock made look old writes it again at its next try).
 */
function isStale(holder: Holder, staleMs: number): boolean {
  return Date.now() - holder.mtimeMs > staleMs || holderDied(holder);
}

/**
 * Whether the process that wrote `holder` is gone: a pid names a process only on its own host (a data dir on a shared
 * mount), only in the boot it was written in (a lock left by a power loss names a pid the next boot may give a process
 * that never lets go: a listen started at boot would be refused for good), and only until the kernel gives it to
 * another process.
 */
function holderDied(holder: Holder): boolean {
  if (holder.pid === undefined || holder.host !== hostname()) return false;
  return processGone({ pid: holder.pid, boot: holder.boot, started: holder.started });
}

function tryLink(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new InteropError("storage_failed", `Cannot create lock ${to}: ${(error as Error).message}`, { cause: error });
  }
}

/** The lock at `path`, read and dated through one descriptor (so both are of the same file); undefined when none. */
function readHolder(path: string): Holder | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new InteropError("storage_failed", `Cannot read lock ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const text = readFileSync(fd, "utf8");
    const { mtimeMs } = fstatSync(fd);
    try {
      const { pid, host, boot, started } = JSON.parse(text);
      return {
        text,
        mtimeMs,
        pid: typeof pid === "number" ? pid : undefined,
        host: typeof host === "string" ? host : undefined,
        boot: typeof boot === "string" ? boot : undefined,
        started: typeof started === "string" ? started : undefined,
      };
    } catch {
      return { text, mtimeMs }; // not one of ours: only its age can free it
    }
  } finally {
    closeSync(fd);
  }
}

/** Whether the lock at `path` is still the one `mine` wrote (a read that fails otherwise is no proof it is not). */
function stillHeld(path: string, mine: string): boolean {
  try {
    return readHolder(path)?.text === mine;
  } catch {
    return true;
  }
}

/** Dates the file at `path` now; false when it is gone (a holder taken over after a hang, a waiter's removed). */
function touch(path: string): boolean {
  try {
    const now = new Date();
    utimesSync(path, now, now);
    return true;
  } catch {
    return false;
  }
}
