/**
 * Red-team finding 7: the data dir was 755 and interop.db, its -wal and broker.json 644, so with tokens on another
 * local user read every message from the database. Whatever creates them, the dir is 700 and the files 600.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { CursorFile } from "../../src/client/cursor_file.ts";
import { OutboundState } from "../../src/a2a/outbound_state.ts";
import { defaultDataDir, defaultListenStateDir } from "../../src/paths.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

const modeOf = (path: string): string => (statSync(path).mode & 0o777).toString(8);

/** Each file in `dir` with its mode, e.g. `{ "interop.db": "600" }`. */
function fileModes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((name) => [name, modeOf(join(dir, name))]));
}

test("token create and serve make a fresh data dir 700 and every file in it 600", async (t) => {
  const parent = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    parent.cleanup();
  });
  const dataDir = join(parent.path, "state", "interop");
  const token = await createToken(dataDir, "alice");
  assert.equal(modeOf(dataDir), "700");
  assert.deepEqual(fileModes(dataDir), { "tokens.json": "600" });

  broker = await startBroker({ dataDir, args: ["--agents", "alice,bob"] });
  const sent = await publish(broker.url, "alice", "bob", { text: "only for bob: the deploy key" }, bearer(token));
  assert.equal(sent.status, 200);
  assert.equal(modeOf(dataDir), "700");
  assert.deepEqual(fileModes(dataDir), { "broker.json": "600", "interop.db": "600", "interop.db-wal": "600", "tokens.json": "600" });
  assert.doesNotMatch(broker.log(), /chmod/);
});

test("serve makes the files an older broker left readable private, and names the open data dir with tokens on", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  const dataDir = join(dir.path, "data");
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  const token = await createToken(dataDir, "alice");
  broker = await startBroker({ dataDir, args: ["--agents", "alice,bob"] });
  assert.equal((await publish(broker.url, "alice", "bob", { text: "kept from other users" }, bearer(token))).status, 200);
  // What an older broker, killed, left: its files as its umask made them (tokens.json was always 600).
  await broker.stop("SIGKILL");
  for (const name of readdirSync(dataDir)) if (name !== "tokens.json") chmodSync(join(dataDir, name), 0o644);

  broker = await startBroker({ dataDir, args: ["--agents", "alice,bob"] });
  assert.deepEqual(fileModes(dataDir), { "broker.json": "600", "interop.db": "600", "interop.db-wal": "600", "tokens.json": "600" });
  assert.equal(modeOf(dataDir), "755", "the dir the operator made is left as it is");
  assert.match(broker.log(), new RegExp(`data dir ${dataDir} is open to other local users \\(mode 755\\); make it private: chmod 700 ${dataDir}`));
});

test("a broker without tokens says nothing of an open data dir (any local user reads its inboxes over HTTP)", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  chmodSync(dir.path, 0o755);
  broker = await startBroker({ dataDir: dir.path });
  assert.doesNotMatch(broker.log(), /open to other local users/);
  assert.equal(modeOf(join(dir.path, "interop.db")), "600");
});

test("listen's state, inside the default data dir, makes the data dir 700 when it comes first", (t) => {
  const home = tempDir();
  t.after(() => home.cleanup());
  const env = { XDG_STATE_HOME: join(home.path, "state") };
  new CursorFile(join(defaultListenStateDir(env), "hermes.json"), "http://127.0.0.1:18900", "hermes").save({ id: 1, store: "s" });
  assert.equal(modeOf(defaultDataDir(env)), "700");
  assert.equal(modeOf(defaultListenStateDir(env)), "700");
});

test("listen's state file and the A2A state file beside it are 600 in a directory others may read (--state)", (t) => {
  // The A2A state file keeps the agent's answers; both were written with the umask's mode (644) and were private
  // only inside the 700 directory listen makes.
  const dir = tempDir();
  t.after(() => dir.cleanup());
  chmodSync(dir.path, 0o755);
  new CursorFile(join(dir.path, "hermes.json"), "http://127.0.0.1:18900", "hermes").save({ id: 1, store: "s" });
  const state = new OutboundState(join(dir.path, "hermes.a2a.json"), "http://127.0.0.1:9900/a2a", "hermes");
  state.records.set(1, { id: 1, from: "leo", messageId: "m", contextId: "c", answer: { state: "TASK_STATE_COMPLETED", answer: undefined } });
  state.save();
  assert.deepEqual(fileModes(dir.path), { "hermes.a2a.json": "600", "hermes.json": "600" });
});
