// `interop mcp`'s held messages in a file per session, and a session's takeover of what one that died kept.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { parseAgentName, type WireMessage } from "../src/message.ts";
import { HeldFile } from "../src/mcp/held_file.ts";
import type { HeldMessage } from "../src/mcp/taken_messages.ts";
import { processMark, type ProcessMark } from "../src/process_runs.ts";
import { tempDir } from "./helpers/cli.ts";

const URL = "http://127.0.0.1:18900";
const STORE = "store-1";
const hermes = parseAgentName("hermes");

function held(id: number, written = true): HeldMessage {
  return { message: { text: `m${id}`, interop: { id, from: "bob", to: "hermes", timestamp: "t" } } as unknown as WireMessage, written };
}

/** The pid of a process that ran and exited: no process has it now (barring reuse within the test). */
async function deadPid(): Promise<number> {
  const child = spawn("true");
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid!;
}

/** A session's file, its process `pid` alone (as a version before the start was kept wrote it) or a whole mark. */
function writeSession(
  dir: string,
  agent: string,
  process: number | ProcessMark,
  urls: string[],
  messages: HeldMessage[],
  store = STORE,
  mode = 0o600,
): string {
  const mark = typeof process === "number" ? { pid: process } : process;
  const path = join(dir, `${agent}.${mark.pid}.json`);
  writeFileSync(path, JSON.stringify({ agent, urls, store, ...mark, held: messages }), { mode });
  chmodSync(path, mode);
  return path;
}

/** A session's file in `dir` for hermes on URL, its store STORE. */
function heldFile(dir: string, failed: (error: Error) => void = (error) => assert.fail(error)): HeldFile {
  return new HeldFile(dir, hermes, [URL], () => STORE, failed);
}

test("a session keeps what it holds in a file of its own, mode 600, removed once it holds nothing", (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = heldFile(join(dir.path, "mcp"));
  assert.equal(file.keep([held(3), held(5, false)]), true);
  const content = JSON.parse(readFileSync(file.path, "utf8"));
  assert.deepEqual(
    [content.agent, content.urls, content.store, content.pid, content.held.map((one: HeldMessage) => one.message.interop.id)],
    ["hermes", [URL], STORE, process.pid, [3, 5]],
  );
  assert.equal(statSync(file.path).mode & 0o777, 0o600);
  assert.equal(file.keep([]), true);
  assert.equal(existsSync(file.path), false);
});

test("a session takes over what the agent's dead sessions on its broker kept, and leaves a live one's, another broker's and another agent's", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const live = spawn("sleep", ["30"]);
  t.after(() => live.kill());
  const [dead, deadToo] = [await deadPid(), await deadPid()];
  const first = writeSession(dir.path, "hermes", dead, [URL], [held(4), held(9, false)]);
  const second = writeSession(dir.path, "hermes", deadToo, ["http://other:1", URL], [held(2)]);
  const running = writeSession(dir.path, "hermes", live.pid!, [URL], [held(6)]);
  const elsewhere = writeSession(dir.path, "hermes", dead + 100_000, ["http://other:1"], [held(7)]);
  const bob = writeSession(dir.path, "bob", dead, [URL], [held(8)]);
  // A broker replaced at the same URL (another data dir): its ids are other messages (red team 62).
  const replaced = writeSession(dir.path, "hermes", dead + 200_000, [URL], [held(3)], "store-0");
  // Others may write it (a state dir others can write): it may be planted (red team 62).
  const planted = writeSession(dir.path, "hermes", dead + 300_000, [URL], [held(1)], STORE, 0o666);
  writeFileSync(join(dir.path, "hermes.1.json"), "not JSON");

  const file = heldFile(dir.path);
  assert.deepEqual(await file.takeOverDead(() => Promise.resolve(undefined)), [], "a broker that cannot say its store: nothing taken over");
  const taken = await file.takeOverDead(() => Promise.resolve(STORE));
  assert.deepEqual(taken.map(({ message, written }) => [message.interop.id, written]), [[2, true], [4, true], [9, false]]);
  // Kept in this session's file before the dead ones went: a kill now loses nothing.
  assert.deepEqual(JSON.parse(readFileSync(file.path, "utf8")).held.map((one: HeldMessage) => one.message.interop.id), [2, 4, 9]);
  assert.deepEqual([first, second].map(existsSync), [false, false]);
  assert.deepEqual([running, elsewhere, bob, replaced, planted].map(existsSync), [true, true, true, true, true]);
  assert.ok(readdirSync(dir.path).includes("hermes.1.json"), "a file that cannot be read is left alone");
  assert.deepEqual(await heldFile(dir.path).takeOverDead(() => Promise.resolve(STORE)), [], "taken once");
});

test("a session takes over the file of a dead session whose pid the kernel gave to another process since", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const other = spawn("sleep", ["30"]);
  t.after(() => other.kill());
  const mark = processMark(other.pid!);
  assert.ok(mark.started !== undefined, "the start of a process is read (Linux)");
  // Written by a session that had this pid before `other` started; `other` would have kept it for as long as it runs.
  const reused = writeSession(dir.path, "hermes", { ...mark, started: String(Number(mark.started) - 1) }, [URL], [held(5)]);
  const taken = await heldFile(dir.path).takeOverDead(() => Promise.resolve(STORE));
  assert.deepEqual(taken.map(({ message }) => message.interop.id), [5]);
  assert.equal(existsSync(reused), false);

  const running = writeSession(dir.path, "hermes", mark, [URL], [held(6)]);
  assert.deepEqual(await heldFile(dir.path).takeOverDead(() => Promise.resolve(STORE)), [], "the file of the process running now is left");
  assert.equal(existsSync(running), true);
});

test("a session without a directory it can write says so and takes nothing over", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  writeFileSync(join(dir.path, "mcp"), "a file, not a directory");
  const failures: string[] = [];
  const file = heldFile(join(dir.path, "mcp"), (error) => failures.push(error.message));
  assert.deepEqual(await file.takeOverDead(() => Promise.resolve(STORE)), []);
  assert.equal(file.keep([held(1)]), false);
  assert.equal(failures.length, 1);
});
