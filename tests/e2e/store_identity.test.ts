/**
 * Every store has an identity: a listen that resumes on a broker with another store (another data dir, a fresh
 * one at the same URL) reads what is pending there instead of skipping it; brokers on one database resume by id.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { tempDir } from "../helpers/cli.ts";
import { startListen, stopListen } from "../helpers/listener.ts";
import { sharedPostgres } from "../helpers/postgres.ts";

const cluster = sharedPostgres();
const AGENTS = ["--agents", "alice,bob,carol"];

const status = async (url: string) => await (await fetch(`${url}/status`)).json();

/** The JSON lines listen wrote to DIR/out.jsonl so far. */
function written(dir: string): Array<{ text: string; interop: { id: number } }> {
  try {
    return readFileSync(join(dir, "out.jsonl"), "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
  } catch {
    return [];
  }
}

/** Starts listen (stopped by PID after the test, by the test's `stop`) and keeps its stderr. */
function listen(stop: (fn: () => unknown) => void, urls: string, dir: string): { child: ChildProcess; stderr(): string } {
  const child = startListen(urls, "bob", dir);
  stop(() => stopListen(child, "SIGKILL"));
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return { child, stderr: () => stderr };
}

async function publishAll(url: string, to: string, texts: string[]): Promise<void> {
  for (const text of texts) assert.equal((await publish(url, "alice", to, { text })).status, 200);
}

const range = (prefix: string, count: number) => Array.from({ length: count }, (_, n) => `${prefix}${n + 1}`);

test("listen --url P,Q with P killed gets every message pending on Q (another SQLite store), none twice", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(dir.cleanup);
  const p = await startBroker({ args: AGENTS });
  stop(() => p.cleanup());
  const q = await startBroker({ args: AGENTS });
  stop(() => q.cleanup());
  // Q: bob's 1-3 pending, and ids up to 10, so P's id 8 is one Q could have assigned.
  await publishAll(q.url, "bob", range("q", 3));
  await publishAll(q.url, "carol", range("carol", 7));
  const storeOfP = (await status(p.url)).store_id;

  const listener = listen(stop, `${p.url},${q.url}`, dir.path);
  await waitFor(() => listener.stderr().includes(`connected to ${p.url}`), 10_000, "listen on P");
  await publishAll(p.url, "bob", range("p", 8));
  await waitFor(() => written(dir.path).length === 8, 10_000, "P's 8 messages");
  await p.stop("SIGKILL");
  await waitFor(() => written(dir.path).length >= 11, 15_000, "Q's 3 pending messages");
  await publishAll(q.url, "bob", ["q live"]);
  await waitFor(() => written(dir.path).length >= 12, 10_000, "Q's live message");
  assert.deepEqual(written(dir.path).map((line) => line.text), [...range("p", 8), ...range("q", 3), "q live"]);
  assert.match(listener.stderr(), new RegExp(`connected to ${q.url} as bob: another store than id 8's, reading what is pending`));
  const fromQ = await status(q.url);
  assert.equal(fromQ.agents.bob.pending, 0);
  assert.match(fromQ.store_id, /^[\w-]{16,}$/);
  assert.notEqual(storeOfP, fromQ.store_id);
  const poll = await fetch(`${q.url}/poll?agent=carol&limit=1`);
  assert.equal(poll.headers.get("interop-store"), fromQ.store_id);
  await poll.body?.cancel();
});

test("a listen restarted against a broker restarted on a fresh data dir at the same URL reads what is pending there", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(dir.cleanup);
  const old = await startBroker({ args: AGENTS });
  stop(() => old.cleanup());
  const first = listen(stop, old.url, dir.path);
  await publishAll(old.url, "bob", range("old", 5));
  await waitFor(() => written(dir.path).length === 5, 10_000, "the old store's 5 messages");
  await stopListen(first.child, "SIGTERM");
  await old.stop("SIGKILL");

  const fresh = tempDir("interop-data-");
  stop(fresh.cleanup);
  const renewed = await startBroker({ port: old.port, dataDir: fresh.path, args: AGENTS });
  stop(() => renewed.cleanup());
  // The fresh store: bob's 1-2 pending, ids up to 7, so the saved id 5 is one it could have assigned.
  await publishAll(renewed.url, "bob", range("new", 2));
  await publishAll(renewed.url, "carol", range("carol", 5));
  const second = listen(stop, renewed.url, dir.path);
  await waitFor(() => written(dir.path).length >= 7, 10_000, "the fresh store's 2 pending messages");
  await publishAll(renewed.url, "bob", ["new live"]);
  await waitFor(() => written(dir.path).length >= 8, 10_000, "the fresh store's live message");
  assert.deepEqual(written(dir.path).map((line) => line.text), [...range("old", 5), ...range("new", 2), "new live"]);
  assert.match(second.stderr(), /another store than id 5's, reading what is pending/);
});

test("brokers on one PostgreSQL share the store's identity: listen resumes on the second by id, repeating nothing", async (t) => {
  const stop = testStops(t);
  const server = await cluster(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const dir = tempDir();
  stop(dir.cleanup);
  const a = await startBroker({ args: ["--database-url", url, ...AGENTS] });
  stop(() => a.cleanup());
  const b = await startBroker({ args: ["--database-url", url, ...AGENTS] });
  stop(() => b.cleanup());
  const [fromA, fromB] = [await status(a.url), await status(b.url)];
  assert.match(fromA.store_id, /^[\w-]{16,}$/);
  assert.equal(fromA.store_id, fromB.store_id);

  const listener = listen(stop, `${a.url},${b.url}`, dir.path);
  await waitFor(() => listener.stderr().includes(`connected to ${a.url}`), 10_000, "listen on A");
  await publishAll(a.url, "bob", range("a", 3));
  await waitFor(() => written(dir.path).length === 3, 10_000, "A's 3 messages");
  await a.stop("SIGKILL");
  await publishAll(b.url, "bob", ["b1"]);
  await waitFor(() => written(dir.path).length >= 4, 15_000, "B's message");
  assert.deepEqual(written(dir.path).map((line) => line.text), [...range("a", 3), "b1"]);
  assert.match(listener.stderr(), new RegExp(`connected to ${b.url} as bob, resuming after 3`));
});
