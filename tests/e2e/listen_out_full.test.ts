/** `interop listen --out` when the file cannot take a whole line (a full disk, a file-size limit): no broken line is left. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { cliCommand, collect, spawnCli, tempDir } from "../helpers/cli.ts";
import { stopAll } from "../helpers/listener.ts";

test("listen --out that runs out of room mid-line cuts the part it wrote, and the retry writes the line whole", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(() => dir.cleanup());
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const out = join(dir.path, "out.jsonl");
  const padding = JSON.stringify({ note: "x".repeat(1400) }) + "\n";
  writeFileSync(out, padding);
  await publish(broker.url, "hermes", "openclaw", { text: "y".repeat(1000) });
  const args = ["listen", "--agent", "openclaw", "--url", broker.url, "--out", out, "--state", join(dir.path, "state.json")];

  // A file-size limit of 2 KiB stands in for a full disk: the line's first bytes go in, then the write fails (EFBIG;
  // SIGXFSZ ignored, as Node does and Deno does not by itself). `exec`: the PID is listen's.
  const [command, prefix] = cliCommand();
  const limited = spawn("bash", ["-c", `trap '' XFSZ; ulimit -f 2 && exec "$@"`, "bash", command, ...prefix, ...args], {
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  stop(() => stopAll(limited));
  let stderr = "";
  limited.stderr!.on("data", (chunk) => (stderr += chunk));
  await waitFor(() => /delivering message 1 failed/.test(stderr), 20_000, "the append to fail");
  await stopAll(limited);
  assert.equal(readFileSync(out, "utf8"), padding, "nothing of the failed line stays in the file");

  const listen = spawnCli(args);
  stop(() => stopAll(listen));
  const done = collect(listen);
  const written = await waitFor(() => {
    const lines = readFileSync(out, "utf8").split("\n").filter((line) => line !== "");
    return lines.length === 2 ? lines : undefined;
  }, 20_000, "the retry to write the line");
  assert.deepEqual(written!.map((line) => JSON.parse(line).text?.length), [undefined, 1000]);
  await stopAll(listen);
  assert.equal((await done).code, 0);
});
