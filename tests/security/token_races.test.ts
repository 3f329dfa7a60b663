/**
 * Changes of a data dir's token list made at once (a setup script integrating agents in parallel, a revoke while a
 * create runs) each read tokens.json, changed it and renamed a new file over it: one lost the other's change, and a
 * create that read the list before a revoke saved it wrote the revoked token back, working again. Each change now
 * holds a lock file beside tokens.json; one a killed process left is taken over.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type TestContext, test } from "node:test";
import { brokerPool, type RunningBroker } from "../helpers/broker.ts";
import { type CliResult, runCli, tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

const AGENTS = ["agent1", "agent2", "agent3", "agent4", "agent5", "agent6", "agent7", "agent8"];
/** Generous: the changes queue behind each other, and each reads and writes the long list on a loaded machine. */
const CHANGE_TIMEOUT_MS = 180_000;

/**
 * A long token list (20,000 tokens, 4 MB): each change then reads and writes for long enough that changes started
 * together overlap on every run (without the lock, 8 creates kept 1 or 2 of their tokens in each of 5 runs), not
 * only on an unlucky one.
 */
function fillTokenList(dataDir: string): void {
  const tokens = Array.from({ length: 20_000 }, (_, n) => ({
    id: `tok_${randomBytes(6).toString("hex")}`,
    agent: `filler${n}`,
    hash: createHash("sha256").update(randomBytes(32)).digest("hex"),
    created_at: new Date().toISOString(),
  }));
  writeFileSync(join(dataDir, "tokens.json"), JSON.stringify({ tokens }, null, 2) + "\n", { mode: 0o600 });
}

function createAt(dataDir: string, agent: string): Promise<CliResult> {
  return runCli(["token", "create", "--agent", agent, "--data-dir", dataDir, "--json"], { timeoutMs: CHANGE_TIMEOUT_MS });
}

/** The token a `token create --json` printed, checked to have succeeded without a word about the lock. */
function createdToken(result: CliResult): { id: string; token: string } {
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /lock/i);
  return JSON.parse(result.stdout);
}

function storedIds(dataDir: string): Set<string> {
  return new Set(JSON.parse(readFileSync(join(dataDir, "tokens.json"), "utf8")).tokens.map((record: { id: string }) => record.id));
}

async function statusWith(broker: RunningBroker, token: string): Promise<number> {
  const response = await fetch(`${broker.url}/status`, { headers: bearer(token) });
  await response.body?.cancel();
  return response.status;
}

/** A data dir with a long token list, and a broker to start on it: both gone when the test ends (the broker first). */
function longListDir(t: TestContext): { path: string; serve(): Promise<RunningBroker> } {
  const start = brokerPool(t);
  const dir = tempDir();
  t.after(dir.cleanup);
  fillTokenList(dir.path);
  return { path: dir.path, serve: () => start({ dataDir: dir.path }) };
}

test("8 interop token create at once against one data dir keep all 8 tokens, and each works with its broker", async (t) => {
  const dir = longListDir(t);
  const created = (await Promise.all(AGENTS.map((agent) => createAt(dir.path, agent)))).map(createdToken);

  const stored = storedIds(dir.path);
  for (const { id } of created) assert.ok(stored.has(id), `${id} was saved over by another create`);
  assert.deepEqual(readdirSync(dir.path), ["tokens.json"], "no lock nor temporary file is left behind");
  const broker = await dir.serve();
  for (const { id, token } of created) assert.equal(await statusWith(broker, token), 200, `${id} is refused`);
});

test("a token revoked while creates run stays revoked once they are done; every created one works", async (t) => {
  const dir = longListDir(t);
  const revokedToken = await createToken(dir.path, "leaver");
  const revoke = runCli(["token", "revoke", "--agent", "leaver", "--data-dir", dir.path], { timeoutMs: CHANGE_TIMEOUT_MS });
  const [revoked, ...creates] = await Promise.all([revoke, ...AGENTS.map((agent) => createAt(dir.path, agent))]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /^revoked tok_\w+ \(leaver\)\n$/);
  const created = creates.map(createdToken);

  const broker = await dir.serve();
  assert.equal(await statusWith(broker, revokedToken), 401, "the revoked token works again: a create wrote it back");
  for (const { id, token } of created) assert.equal(await statusWith(broker, token), 200, `${id} is refused`);
});

/** A pid no process has: one that ran and exited (reused within the test only by a very unlucky machine). */
function deadPid(): number {
  const ran = spawnSync(process.execPath, ["--version"]);
  assert.equal(ran.status, 0);
  return ran.pid;
}

test("a token lock left by a killed process is taken over: the create succeeds and leaves no lock", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const lock = join(dir.path, "tokens.json.lock");
  writeFileSync(lock, JSON.stringify({ pid: deadPid(), host: hostname(), nonce: "killed" }) + "\n", { mode: 0o600 });

  const { id } = createdToken(await createAt(dir.path, "hermes"));
  assert.ok(storedIds(dir.path).has(id));
  assert.deepEqual(readdirSync(dir.path), ["tokens.json"], "the stale lock is gone, and this create's with it");
});

test("a token lock not refreshed for minutes is taken over even though its pid runs (reused by another process)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const lock = join(dir.path, "tokens.json.lock");
  // This test's own pid: a process that runs, and never releases the lock nor refreshes it.
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), nonce: "hung" }) + "\n", { mode: 0o600 });
  const longAgo = new Date(Date.now() - 10 * 60_000);
  utimesSync(lock, longAgo, longAgo);

  const { id } = createdToken(await createAt(dir.path, "hermes"));
  assert.ok(storedIds(dir.path).has(id));
  assert.deepEqual(readdirSync(dir.path), ["tokens.json"]);
});
