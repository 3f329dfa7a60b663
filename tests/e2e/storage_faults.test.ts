import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { collect, runCli, spawnCli, tempDir } from "../helpers/cli.ts";

test("interop serve refuses a corrupt database with a clear error and leaves the file as it was", async () => {
  const dir = tempDir();
  try {
    const garbage = Buffer.from("this is not an SQLite database, it is a test ".repeat(200));
    mkdirSync(join(dir.path, "data"));
    writeFileSync(join(dir.path, "data", "interop.db"), garbage);
    const result = await runCli(["serve", "--port", "0", "--data-dir", join(dir.path, "data")]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: Cannot open database .*interop\.db: file is not a database\n$/);
    assert.deepEqual(readFileSync(join(dir.path, "data", "interop.db")), garbage);
  } finally {
    dir.cleanup();
  }
});

test("interop serve says so when the data dir cannot be created", async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, "file"), "");
    const result = await runCli(["serve", "--port", "0", "--data-dir", join(dir.path, "file", "data")]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: Cannot create data dir .*file\/data: ENOTDIR/);
  } finally {
    dir.cleanup();
  }
});

/**
 * A data dir on a small tmpfs of its own: `remount` changes its size or makes it read-only while the broker runs,
 * which is how a full disk or a disk remounted read-only after an error looks to SQLite. Needs root (mount).
 */
function smallFilesystem(path: string, size: string): { remount(options: string): void; unmount(): void } | undefined {
  mkdirSync(path, { recursive: true });
  const mount = (...args: string[]) => execFileSync("mount", args, { stdio: "pipe" });
  try {
    mount("-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path);
  } catch {
    return undefined;
  }
  return {
    remount: (options) => mount("-o", `remount,${options}`, path),
    unmount: () => execFileSync("umount", ["-l", path]),
  };
}

const canMount = process.getuid?.() === 0;

test("a full disk gets 507 at publish, the broker keeps serving and says so in /status, status's exit and its log, and nothing stored is lost", {
  skip: canMount ? false : "needs root to mount a tmpfs",
}, async () => {
  const dir = tempDir();
  const dataDir = join(dir.path, "data");
  const disk = smallFilesystem(dataDir, "3m");
  assert.ok(disk, "mount -t tmpfs failed although running as root");
  let broker: RunningBroker | undefined;
  try {
    broker = await startBroker({ dataDir, args: ["--rate-limit", "0"] });
    assert.equal((await fetch(`${broker.url}/agents?agent=spare`, { method: "POST" })).status, 201);
    const acknowledged: number[] = [];
    const body = { text: "x".repeat(32 * 1024) };
    let refusal: Response | undefined;
    for (let i = 0; i < 500 && refusal === undefined; i++) {
      const response = await publish(broker.url, "hermes", "openclaw", { ...body, n: i });
      if (response.status === 200) acknowledged.push((await response.json()).id);
      else refusal = response;
    }
    assert.ok(refusal, "3 MiB took 500 messages of 32 KiB");
    assert.equal(refusal.status, 507);
    assert.match((await refusal.json()).error, /^Storage full: .*no space.*nothing was stored or taken/i);
    // Any other write says what it could not do: a removal is no message.
    const removal = await fetch(`${broker.url}/agents?agent=spare`, { method: "DELETE" });
    assert.equal(removal.status, 507);
    assert.match((await removal.json()).error, /^Storage full: .*no space.*could not remove an inbox, nothing was changed/i);
    // Red team 53: /status said the store was available, `interop status` exited 0 and the log said nothing, while
    // every publish was refused.
    const status = await fetch(`${broker.url}/status`);
    assert.equal(status.status, 200);
    const { store } = await status.json();
    assert.equal(store.available, false);
    assert.match(store.error, /^its writes fail since \S+ \(2 refused\): .*full/);
    const checked = await runCli(["status", "--url", broker.url, "--json"]);
    assert.equal(checked.code, 5, checked.stderr);
    assert.match(JSON.parse(checked.stdout).problems[0], /^the broker cannot reach its store or write to it: its writes fail/);
    assert.match(broker.log(), /storage: a write failed \(.*full.*\); requests that write are refused until one succeeds/);
    disk.remount("size=64m");
    const afterSpace = await publish(broker.url, "hermes", "openclaw", { ...body, n: "after space" });
    assert.equal(afterSpace.status, 200);
    acknowledged.push((await afterSpace.json()).id);
    assert.equal((await (await fetch(`${broker.url}/status`)).json()).store.available, true);
    assert.match(broker.log(), /storage: writes succeed again, after \d+ failed over \d+ s/);

    const polled = await (await fetch(`${broker.url}/poll?agent=openclaw&limit=1000`)).json();
    assert.deepEqual(polled.map((message: { interop: { id: number } }) => message.interop.id), acknowledged);
    assert.equal(polled[0].text, body.text);
    assert.equal(broker.child.exitCode, null, "the broker is still running");
  } finally {
    await broker?.cleanup();
    disk.unmount();
    dir.cleanup();
  }
});

// Red team 53: `interop poll` printed two messages, could not take them (507), and exited 4 naming neither: every
// later run printed them again.
test("interop poll whose take meets a full disk tries it again until there is room, and takes what it printed once", {
  skip: canMount ? false : "needs root to mount a tmpfs",
}, async (t) => {
  const { dataDir, broker } = await brokerOnSmallDisk(t);
  for (const text of ["one", "two", "three"]) assert.equal((await publish(broker.url, "hermes", "openclaw", { text })).status, 200);
  // No room for the take's commit: the WAL grows by a page for it.
  const filler = join(dataDir, "filler");
  fillUp(filler);
  const { poll, polling } = await pollPrinting(t, broker.url, ["--limit", "2"], 2);
  assert.equal(poll.exitCode, null, "the take is tried again while the disk is full");
  assert.equal((await (await fetch(`${broker.url}/status`)).json()).store.available, false, "the take was refused");
  rmSync(filler);
  const polled = await polling;
  assert.equal(polled.code, 0, polled.stderr);
  assert.deepEqual(polled.stdout.trim().split("\n").map((line) => JSON.parse(line).text), ["one", "two"]);
  assert.deepEqual((await (await fetch(`${broker.url}/poll?agent=openclaw`)).json()).map((message: { text: string }) => message.text), ["three"]);
});

// Red team 54: the take's retries (5 minutes) outlasted the run's lease on the inbox (60 s, renewed only while it
// printed): a second run a minute later printed and took the same messages, and the first then said they were lost.
test("interop poll whose take waits over a minute for room keeps its lease: a second run meanwhile prints none of it", {
  skip: canMount ? false : "needs root to mount a tmpfs",
  timeout: 180_000,
}, async (t) => {
  const { dataDir, broker } = await brokerOnSmallDisk(t);
  for (const text of ["one", "two", "three"]) assert.equal((await publish(broker.url, "hermes", "openclaw", { text })).status, 200);
  const filler = join(dataDir, "filler");
  fillUp(filler);
  const { polling } = await pollPrinting(t, broker.url, ["--limit", "2"], 2, 180_000);
  // Past the lease's 60 s.
  await new Promise((resolve) => setTimeout(resolve, 65_000));
  const second = spawnCli(["poll", "--url", broker.url, "--agent", "openclaw", "--json"]);
  t.after(() => second.exitCode === null && second.kill("SIGKILL"));
  const secondDone = collect(second, 120_000);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  rmSync(filler);
  const first = await polling;
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(first.stdout.trim().split("\n").map((line) => JSON.parse(line).text), ["one", "two"]);
  const other = await secondDone;
  assert.equal(other.code, 0, other.stderr);
  assert.deepEqual(other.stdout.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line).text), ["three"], "the second run printed only what the first left");
});

// Red team 53: `token create` on a full disk failed naming no file, and each try left a lock file behind.
test("interop token create on a full disk fails naming the file, leaves no file behind, and works once there is room", {
  skip: canMount ? false : "needs root to mount a tmpfs",
}, async (t) => {
  const dir = tempDir();
  const dataDir = join(dir.path, "data");
  const disk = smallFilesystem(dataDir, "1m");
  assert.ok(disk, "mount -t tmpfs failed although running as root");
  t.after(() => {
    disk.unmount();
    dir.cleanup();
  });
  const filler = join(dataDir, "filler");
  fillUp(filler);
  for (let attempt = 0; attempt < 2; attempt++) {
    const refused = await runCli(["token", "create", "--agent", "hermes", "--data-dir", dataDir]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^error: Cannot (lock|save) .*tokens\.json.*: ENOSPC/);
  }
  assert.deepEqual(readdirSync(dataDir), ["filler"]);
  rmSync(filler);
  const created = await runCli(["token", "create", "--agent", "hermes", "--data-dir", dataDir]);
  assert.equal(created.code, 0, created.stderr);
  assert.deepEqual(readdirSync(dataDir).sort(), ["tokens.json"]);
});

// Red team 53: `rm -rf` of the data dir while the broker ran went unseen: 100 of 100 later publishes got 200, status
// exited 0, and the broker's stop lost all of them (the file was gone).
test("a broker whose database file is removed while it runs refuses to store more, and says so in /status and its log", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(dir.cleanup);
  const dataDir = join(dir.path, "data");
  const broker = await startBroker({ dataDir });
  stop(() => broker.cleanup());
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "before" })).status, 200);
  rmSync(dataDir, { recursive: true });
  // Looked at once a second at most: a publish within it may still land in the removed file.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const refused = await publish(broker.url, "hermes", "openclaw", { text: "after" });
  assert.equal(refused.status, 503);
  assert.match((await refused.json()).error, /^Storage failed: the database file .*interop\.db was removed while the broker ran; nothing more is stored in it: restart the broker/);
  const { store } = await (await fetch(`${broker.url}/status`)).json();
  assert.equal(store.available, false);
  assert.equal((await runCli(["status", "--url", broker.url])).code, 5);
  assert.match(broker.log(), /storage: a write failed \(the database file .* was removed while the broker ran\)/);
});

// Red team 53 (second pass): the retries ignored Ctrl-C and SIGTERM for their 5 minutes.
test("interop poll stopped by Ctrl-C (SIGINT) while its take waits for room exits 130 at once, naming what it printed and left", {
  skip: canMount ? false : "needs root to mount a tmpfs",
}, async (t) => {
  const { dataDir, broker } = await brokerOnSmallDisk(t);
  const { id } = await (await publish(broker.url, "hermes", "openclaw", { text: "one" })).json();
  fillUp(join(dataDir, "filler"));
  const { poll, polling } = await pollPrinting(t, broker.url, [], 1);
  const stoppedAt = performance.now();
  process.kill(poll.pid!, "SIGINT");
  const stopped = await polling;
  assert.equal(stopped.code, 130, stopped.stderr);
  assert.ok(performance.now() - stoppedAt < 5000, "stopped at once");
  const warning = JSON.parse(stopped.stderr.trim().split("\n").at(-1)!);
  assert.deepEqual([warning.warning, warning.ids], ["not_taken", [id]]);
});

/** A broker whose data dir is a tmpfs of 2 MiB of its own, stopped and unmounted after the test. */
async function brokerOnSmallDisk(t: TestContext): Promise<{ dataDir: string; broker: RunningBroker }> {
  // Each stop added as what it stops has started: a broker that fails to start leaves no mount behind.
  const stop = testStops(t);
  const dir = tempDir();
  stop(dir.cleanup);
  const dataDir = join(dir.path, "data");
  const disk = smallFilesystem(dataDir, "2m");
  assert.ok(disk, "mount -t tmpfs failed although running as root");
  stop(disk.unmount);
  const broker = await startBroker({ dataDir });
  stop(() => broker.cleanup());
  return { dataDir, broker };
}

/**
 * `interop poll --json` of openclaw's inbox (with `args`), once it printed `lines` messages and its take has been
 * refused for a second and a half; `polling` resolves as it exits. Killed when the test ends, however it ends.
 */
async function pollPrinting(t: TestContext, url: string, args: string[], lines: number, timeoutMs = 60_000) {
  const poll = spawnCli(["poll", "--url", url, "--agent", "openclaw", "--json", ...args]);
  t.after(() => poll.exitCode === null && poll.kill("SIGKILL"));
  const polling = collect(poll, timeoutMs);
  let printed = "";
  poll.stdout!.on("data", (chunk: Buffer) => (printed += chunk));
  await waitFor(() => printed.split("\n").length > lines, 10_000, `${lines} messages printed`);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return { poll, polling };
}

/** Writes `path` until its file system has no room left. */
function fillUp(path: string): void {
  const fd = openSync(path, "w");
  try {
    for (const page = Buffer.alloc(4096);;) writeSync(fd, page);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    closeSync(fd);
  }
}

test("a read-only data dir gets a clear error at start-up, and the messages are there once it is writable again", {
  skip: canMount ? false : "needs root to mount a tmpfs",
}, async () => {
  const dir = tempDir();
  const dataDir = join(dir.path, "data");
  const disk = smallFilesystem(dataDir, "8m");
  assert.ok(disk, "mount -t tmpfs failed although running as root");
  try {
    const first = await startBroker({ dataDir });
    try {
      const sent = await publish(first.url, "hermes", "openclaw", { text: "before the disk went read-only" });
      assert.equal(sent.status, 200);
    } finally {
      await first.stop();
    }
    const database = readFileSync(join(dataDir, "interop.db"));

    disk.remount("ro");
    const refused = await runCli(["serve", "--port", "0", "--data-dir", dataDir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: Data dir .*data is not writable: .*read-only file system/i);
    assert.deepEqual(readFileSync(join(dataDir, "interop.db")), database);

    disk.remount("rw");
    const second = await startBroker({ dataDir });
    try {
      const polled = await (await fetch(`${second.url}/poll?agent=openclaw`)).json();
      assert.deepEqual(polled.map((message: { text: string }) => message.text), ["before the disk went read-only"]);
    } finally {
      await second.cleanup();
    }
  } finally {
    disk.unmount();
    dir.cleanup();
  }
});
