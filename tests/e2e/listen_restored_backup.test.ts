/** listen × a data dir restored from a backup taken before its agent existed (same store identity): not a removal. */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { exitOf, stopAll } from "../helpers/listener.ts";
import { openSse, type SseConnection } from "../helpers/sse.ts";

/**
 * The operator's nightly backup, taken while carol had no inbox yet; then a broker on the data dir and `listen -a
 * carol` on it, its stream open. `restore(signal)` stops the broker with `signal`, puts the backup back and starts a
 * broker on it at the same port. All of it is stopped when the test ends.
 */
async function carolListeningOverBackup(t: TestContext) {
  const dir = tempDir("interop-red-");
  const data = join(dir.path, "data");
  const held: { broker?: RunningBroker; listen?: ChildProcess; peek?: SseConnection } = {};
  t.after(async () => {
    held.peek?.close();
    await stopAll(held.listen);
    await held.broker?.cleanup();
    dir.cleanup();
  });
  // Held by the hook too: a stop that fails would leave it running otherwise.
  const first = held.broker = await startBroker({ dataDir: data });
  const port = first.port;
  await first.stop();
  cpSync(data, join(dir.path, "backup"), { recursive: true });

  held.broker = await startBroker({ dataDir: data, port });
  const listen = held.listen = spawnCli(["listen", "--agent", "carol", "--url", held.broker.url, "--state", join(dir.path, "carol.json")]);
  const output = { stderr: "", stdout: "" };
  listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output.stderr += chunk));
  listen.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output.stdout += chunk));
  await waitFor(() => /connected to/.test(output.stderr), 10_000, "listen's stream");
  const restore = async (signal: NodeJS.Signals) => {
    await held.broker!.stop(signal);
    rmSync(data, { recursive: true });
    cpSync(join(dir.path, "backup"), data, { recursive: true });
    held.broker = await startBroker({ dataDir: data, port });
    return held.broker;
  };
  return { held, listen, output, restore };
}

test("listen does not stop as 'removed by the operator' when the broker comes back on a restored backup", async (t) => {
  const { held, listen, output, restore } = await carolListeningOverBackup(t);
  assert.equal((await publish(held.broker!.url, "alice", "carol", { text: "hello" })).status, 200);
  await waitFor(() => /resuming|connected/.test(output.stderr), 10_000, "delivery");
  // The disk dies; the operator restores last night's backup and starts the broker again.
  await restore("SIGTERM");
  // Before the store recorded removals: listen exited 9, "carol was removed by the operator", and a unit did not restart it.
  const reconnected = waitFor(() => /connected to .* as carol.*\n.*connected to/s.test(output.stderr), 15_000, "reconnect");
  const exited = await Promise.race([exitOf(listen), reconnected.then(() => "reconnected")]);
  assert.equal(exited, "reconnected", output.stderr);
});

test("listen waiting for another reader to leave resumes, not exit 9, when the broker comes back on a restored backup", async (t) => {
  const { held, listen, output, restore } = await carolListeningOverBackup(t);
  held.peek = await openSse(`${held.broker!.url}/subscribe?agent=carol`);
  await waitFor(() => output.stderr.includes("another reader for carol took over the stream; waiting for it to leave"), 10_000, "listen to wait");
  // Killed, so that no /status says the peek left: listen's next look is at the restored store, which has no carol
  // and no removal of her either.
  const broker = await restore("SIGKILL");
  held.peek.close();
  // Before: listen took carol's absence from /status for a removal and exited 9.
  const reconnected = waitFor(() => (output.stderr.split("waiting for it to leave")[1] ?? "").includes("connected to"), 20_000, "reconnect");
  assert.equal(await Promise.race([exitOf(listen), reconnected.then(() => "reconnected")]), "reconnected", output.stderr);
  assert.equal((await publish(broker.url, "alice", "carol", { text: "after the restore" })).status, 200);
  await waitFor(() => output.stdout.includes("after the restore"), 10_000, "listen to write the message");
});
