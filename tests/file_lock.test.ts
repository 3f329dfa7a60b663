/** withFileLock: one holder at a time across processes, a lock a dead or hung holder left taken over. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { type LockTimes, withFileLock } from "../src/file_lock.ts";
import { processMark } from "../src/process_runs.ts";
import { tempDir } from "./helpers/cli.ts";
import { stepWallClock } from "./helpers/hand_clock.ts";

/** Short waits for a test; a lock refreshed within the last minute counts as held. */
const TEST_TIMES = { waitMs: 300, staleMs: 60_000 };

function lockNaming(path: string, pid: number, boot?: string, started?: string): void {
  writeFileSync(path, JSON.stringify({ pid, host: hostname(), boot, started, nonce: "other" }) + "\n", { mode: 0o600 });
}

/** A holder of `file`'s lock whose work takes `ms`, noting in `events` when it starts and ends. */
function slowHolder(file: string, events: string[], ms: number, times?: LockTimes): Promise<void> {
  return withFileLock(file, async () => {
    events.push("first starts");
    await new Promise((resolve) => setTimeout(resolve, ms));
    events.push("first ends");
  }, times);
}

test("withFileLock() runs one holder at a time: a second waits until the first's work is done", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const events: string[] = [];
  let finishFirst = () => {};
  let firstStarted = () => {};
  const started = new Promise<void>((resolve) => (firstStarted = resolve));
  const first = withFileLock(file, async () => {
    events.push("first starts");
    firstStarted();
    await new Promise<void>((resolve) => (finishFirst = resolve));
    events.push("first ends");
  });
  await started;
  const second = withFileLock(file, async () => {
    events.push("second starts");
  });
  finishFirst();
  await Promise.all([first, second]);
  assert.deepEqual(events, ["first starts", "first ends", "second starts"]);
  assert.deepEqual(readdirSync(dir.path), []);
});

test("withFileLock() keeps a live holder's lock after the wall clock stepped forward: its refreshes show it alive", async (t) => {
  // The lock's age by the wall clock made it stale at once: the second change ran inside the first (a token lost).
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  // Refreshed every staleMs / 3: a stall of the test's process past that would let the waiter take over.
  const times = { waitMs: 10_000, staleMs: 2_000 };
  const events: string[] = [];
  const first = slowHolder(file, events, 3_000, times);
  stepWallClock(t, 3_600_000);
  await withFileLock(file, async () => void events.push("second starts"), times);
  await first;
  assert.deepEqual(events, ["first starts", "first ends", "second starts"]);
});

test("withFileLock() takes over a live process's lock it has seen unrefreshed for staleMs (a hung holder)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  lockNaming(`${file}.lock`, process.pid);
  const started = performance.now();
  assert.equal(await withFileLock(file, async () => "done", { waitMs: 10_000, staleMs: 300 }), "done");
  assert.ok(performance.now() - started >= 300, "taken over before it was seen unrefreshed for staleMs");
  assert.deepEqual(readdirSync(dir.path), []);
});

test("withFileLock() waits on when its waiting file is removed as a dead waiter's (a forward clock step made it look old)", async (t) => {
  // The waiter's link of its removed file failed: its change ended with "Cannot create lock …: ENOENT".
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const events: string[] = [];
  const first = slowHolder(file, events, 500);
  const second = withFileLock(file, async () => void events.push("second starts"));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const waiting = readdirSync(dir.path).filter((name) => name.startsWith("list.json.lock."));
  assert.equal(waiting.length, 1, `one waiter's file: ${waiting}`);
  rmSync(join(dir.path, waiting[0]));
  await Promise.all([first, second]);
  assert.deepEqual(events, ["first starts", "first ends", "second starts"]);
  assert.deepEqual(readdirSync(dir.path), []);
});

test("withFileLock() gives up on a live holder once its wait is over, naming the lock and the holder's pid", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  lockNaming(`${file}.lock`, process.pid);
  let ran = false;
  await assert.rejects(withFileLock(file, async () => (ran = true), TEST_TIMES), (error: Error & { code?: string }) => {
    assert.equal(error.code, "data_dir_locked");
    assert.ok(error.message.includes(`lock ${file}.lock, held by pid ${process.pid}`), error.message);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
  assert.equal(ran, false);
  assert.deepEqual(readdirSync(dir.path), ["list.json.lock"], "the holder's lock is left, and nothing of the waiter's");
});

test("withFileLock() takes over at once a lock written in an earlier boot, though its pid names a live process now", async (t) => {
  // After a power loss the pid in a lock may be a process of the new boot: watched for staleMs, a listen started at
  // boot with a short wait would have been refused for good.
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  lockNaming(`${file}.lock`, process.pid, "00000000-0000-0000-0000-000000000000");
  assert.equal(await withFileLock(file, async () => "ran", TEST_TIMES), "ran");
  lockNaming(`${file}.lock`, process.pid, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
  await assert.rejects(withFileLock(file, async () => "ran", TEST_TIMES), /held by pid/, "this boot's live holder");
});

test("withFileLock() takes over at once a lock whose pid the kernel gave to another process since", async (t) => {
  // A holder killed, its pid given to a process that runs for days: watched for staleMs, a short wait was refused.
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const { pid, boot, started } = processMark();
  lockNaming(`${file}.lock`, pid, boot, String(Number(started) - 1));
  assert.equal(await withFileLock(file, async () => "ran", TEST_TIMES), "ran");
  lockNaming(`${file}.lock`, pid, boot, started);
  await assert.rejects(withFileLock(file, async () => "ran", TEST_TIMES), /held by pid/, "the live holder");
});

test("withFileLock()'s lock is its holder's alone (600), naming its pid, host, this boot and its start", async (t) => {
  // A listen holds its state file's lock for its life, beside the state in whatever directory --state names.
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "state.json");
  await withFileLock(file, async () => {
    assert.equal(statSync(`${file}.lock`).mode & 0o777, 0o600);
    const holder = JSON.parse(readFileSync(`${file}.lock`, "utf8"));
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.host, hostname());
    assert.equal(holder.boot, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    assert.equal(holder.started, processMark().started);
  }, TEST_TIMES);
});

test("withFileLock() tells its caller's wording once that it waits, and gives up with the caller's words", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  lockNaming(`${file}.lock`, process.pid);
  const told: string[] = [];
  const wording = { waiting: (who: string) => told.push(who), busy: (who: string) => `busy: ${who}` };
  await assert.rejects(withFileLock(file, async () => "ran", TEST_TIMES, wording), { code: "data_dir_locked", message: `busy: pid ${process.pid}` });
  assert.deepEqual(told, [`pid ${process.pid}`]);
});

test("withFileLock() tells its work when its lock was taken over (its process was frozen past staleMs)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const times = { waitMs: 300, staleMs: 600 };
  await withFileLock(file, async ({ lost }) => {
    await new Promise((resolve) => setTimeout(resolve, 450));
    assert.equal(lost.aborted, false, "its own refreshes do not count");
    lockNaming(`${file}.lock`, process.pid);
    await new Promise((resolve) => setTimeout(resolve, 450));
    assert.equal(lost.aborted, true);
  }, times);
  assert.ok(existsSync(`${file}.lock`), "the successor's lock is left");
});

test("withFileLock()'s confirm() reads the lock at once: taken over, it is false and lost aborts before any refresh", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  await withFileLock(file, async ({ lost, confirm }) => {
    assert.equal(confirm(), true);
    lockNaming(`${file}.lock`, process.pid);
    assert.equal(confirm(), false);
    assert.equal(lost.aborted, true);
  }, { waitMs: 300, staleMs: 60_000 });
});

test("withFileLock() releases the lock when the work throws", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  await assert.rejects(withFileLock(file, () => Promise.reject(new Error("work failed"))), /work failed/);
  assert.equal(existsSync(`${file}.lock`), false);
  assert.equal(await withFileLock(file, async () => "next", TEST_TIMES), "next");
});

test("withFileLock() takes over a lock and a breaker a killed process left, and leaves neither", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const dead = spawnSync(process.execPath, ["--version"]).pid;
  lockNaming(`${file}.lock`, dead);
  lockNaming(`${file}.lock.break`, dead);
  assert.equal(await withFileLock(file, async () => "done", TEST_TIMES), "done");
  assert.deepEqual(readdirSync(dir.path), []);
});

test("withFileLock() leaves the lock alone at the end when another holder took it over meanwhile", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const successor = JSON.stringify({ pid: process.pid, host: hostname(), nonce: "successor" }) + "\n";
  // As a process that judged this holder hung would: its lock removed, its own in its place.
  await withFileLock(file, async () => writeFileSync(`${file}.lock`, successor));
  assert.equal(readFileSync(`${file}.lock`, "utf8"), successor);
});

test("withFileLock() removes what a waiter killed while waiting left, and leaves a live waiter's", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "list.json");
  const dead = spawnSync(process.execPath, ["--version"]).pid;
  // A waiter's own lock, written before it links it as the lock: removed only by a waiter that lives on.
  lockNaming(`${file}.lock.${dead}.0123456789abcdef`, dead);
  lockNaming(`${file}.lock.${process.pid}.fedcba9876543210`, process.pid);
  assert.equal(await withFileLock(file, async () => "done", TEST_TIMES), "done");
  assert.deepEqual(readdirSync(dir.path), [`list.json.lock.${process.pid}.fedcba9876543210`]);
});
