/**
 * A disk that fails under the broker: an ext4 file system of its own (a loop device) forced read-only by an error
 * while publishes go on, as the kernel does on an I/O error (`errors=remount-ro`). A COMMIT that failed so may still
 * be on disk (its WAL frames were written): the broker answered 503 "nothing kept" for messages a restart then found
 * stored (red team 53: 6 of 19 runs). Every answer must hold after the restart: a 200 is there once, a refusal that
 * says nothing was kept is not there, and an `in_doubt` one may be either, and sent again with its key is there once.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { publish, startBroker } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { tempDir } from "../helpers/cli.ts";

const PUBLISHERS = 8;
const MESSAGES = 2000;

/** An ext4 file system on a loop device mounted at `path`, which `fail` turns read-only as an I/O error does. */
function failingDisk(image: string, path: string) {
  const run = (command: string, ...args: string[]) => execFileSync(command, args, { stdio: "pipe" }).toString();
  run("dd", "if=/dev/zero", `of=${image}`, "bs=1M", "count=32");
  run("mkfs.ext4", "-q", "-F", image);
  mkdirSync(path, { recursive: true });
  const mount = () => run("mount", "-o", "loop,errors=remount-ro", image, path);
  mount();
  return {
    fail: () => {
      const device = basename(run("findmnt", "-n", "-o", "SOURCE", path).trim());
      writeFileSync(`/sys/fs/ext4/${device}/trigger_fs_error`, "1");
    },
    /** Unmounted, repaired as after a crash, and mounted again. */
    repair: () => {
      run("umount", path);
      try {
        run("e2fsck", "-fy", image);
      } catch {
        // Exit 1: errors corrected, as expected after the forced error.
      }
      mount();
    },
    unmount: () => {
      try {
        run("umount", "-l", path);
      } catch {
        // Not mounted.
      }
    },
  };
}

const canMount = process.getuid?.() === 0;

test("a disk failing under a burst of publishes: every 200 is kept once, every refusal that says nothing was kept is not, and in_doubt ones sent again with their key are kept once", {
  skip: canMount ? false : "needs root to mount a loop device",
}, async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(dir.cleanup);
  const mountPoint = join(realpathSync(dir.path), "disk");
  const disk = failingDisk(join(dir.path, "ext4.img"), mountPoint);
  stop(disk.unmount);
  const dataDir = join(mountPoint, "data");
  // Started again after the repair: the stop stops whichever runs then.
  let broker = await startBroker({ dataDir, args: ["--rate-limit", "0"] });
  stop(() => broker.cleanup());
  const outcomes = new Map<number, { status: number; code?: string }>();
  let next = 0;
  const send = async (url: string, n: number) => {
    const answer = await publish(url, "hermes", "openclaw", { n }, { "idempotency-key": `k${n}` });
    const body = await answer.json();
    return { status: answer.status, code: body.code as string | undefined };
  };
  const publishers = Array.from({ length: PUBLISHERS }, async () => {
    for (let n = next++; n < MESSAGES; n = next++) outcomes.set(n, await send(broker.url, n));
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  disk.fail();
  await Promise.all(publishers);
  const counts = new Map<string, number>();
  for (const { status, code } of outcomes.values()) counts.set(`${status} ${code ?? ""}`, (counts.get(`${status} ${code ?? ""}`) ?? 0) + 1);
  const summary = JSON.stringify(Object.fromEntries(counts));
  assert.ok([...outcomes.values()].some(({ status }) => status !== 200), `the disk failed under the burst: ${summary}`);
  for (const { status, code } of outcomes.values()) {
    assert.ok(status === 200 || code === "storage_failed" || code === "in_doubt", `an answer of the documented kinds: ${summary}`);
  }
  await broker.stop();
  disk.repair();
  broker = await startBroker({ dataDir });
  const doubtful = [...outcomes].filter(([, { code }]) => code === "in_doubt").map(([n]) => n);
  for (const n of doubtful) assert.equal((await send(broker.url, n)).status, 200, `message ${n} sent again with its key`);
  const kept = (await (await fetch(`${broker.url}/poll?agent=openclaw&limit=10000`)).json()).map((message: { n: number }) => message.n);
  assert.equal(new Set(kept).size, kept.length, "nothing twice");
  const keptSet = new Set<number>(kept);
  for (const [n, { status, code }] of outcomes) {
    if (status === 200 || code === "in_doubt") assert.ok(keptSet.has(n), `message ${n} (${status} ${code ?? ""}) is kept: ${summary}`);
    else assert.ok(!keptSet.has(n), `message ${n} was refused saying nothing was kept, yet it is there: ${summary}`);
  }
});
