/** listen × a data dir restored from a backup taken before its agent existed (same store identity): not a removal. */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { exitOf, stopAll } from "../helpers/listener.ts";

test("listen does not stop as 'removed by the operator' when the broker comes back on a restored backup", async (t) => {
  const dir = tempDir("interop-red-");
  const data = join(dir.path, "data");
  const held: { broker?: RunningBroker; listen?: ChildProcess } = {};
  t.after(async () => {
    await stopAll(held.listen);
    await held.broker?.cleanup();
    dir.cleanup();
  });
  // The operator's nightly backup: taken while carol had no inbox yet.
  const first = await startBroker({ dataDir: data });
  const port = first.port;
  await first.stop();
  cpSync(data, join(dir.path, "backup"), { recursive: true });

  held.broker = await startBroker({ dataDir: data, port });
  held.listen = spawnCli(["listen", "--agent", "carol", "--url", held.broker.url, "--state", join(dir.path, "carol.json")]);
  let stderr = "";
  held.listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  await waitFor(() => /connected to/.test(stderr), 10_000, "listen's stream");
  assert.equal((await publish(held.broker.url, "alice", "carol", { text: "hello" })).status, 200);
  await waitFor(() => /resuming|connected/.test(stderr), 10_000, "delivery");
  // The disk dies; the operator restores last night's backup and starts the broker again.
  await held.broker.stop();
  rmSync(data, { recursive: true });
  cpSync(join(dir.path, "backup"), data, { recursive: true });
  held.broker = await startBroker({ dataDir: data, port });
  // Before the store recorded removals: listen exited 9, "carol was removed by the operator", and a unit did not restart it.
  const reconnected = waitFor(() => /connected to .* as carol.*\n.*connected to/s.test(stderr), 15_000, "reconnect");
  const exited = await Promise.race([exitOf(held.listen), reconnected.then(() => "reconnected")]);
  assert.equal(exited, "reconnected", stderr);
});
