/** `listen | head -1`, `poll | head -1`: a reader that goes away ends the command cleanly and takes nothing it did not get. */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { collect, spawnCli, tempDir } from "../helpers/cli.ts";

async function pendingTexts(url: string, agent: string): Promise<string[]> {
  const messages = await (await fetch(`${url}/poll?agent=${agent}&peek=1`)).json();
  return messages.map((message: { text: string }) => message.text);
}

test("interop listen whose stdout reader goes away exits 0 without a stack, and the next listen gets what it could not write", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker();
  const args = ["listen", "--agent", "openclaw", "--url", broker.url, "--state", join(dir.path, "state.json")];
  const first = spawnCli(args);
  children.push(first);
  const exited = collect(first);
  let firstLine = "";
  first.stdout!.on("data", (chunk: Buffer) => (firstLine += chunk.toString()));
  await publish(broker.url, "hermes", "openclaw", { text: "read by head" });
  await waitFor(() => firstLine.includes("\n"), 10_000, "the first line");
  // As `head -1` does after its line: the read end of the pipe closes.
  first.stdout!.destroy();
  await publish(broker.url, "hermes", "openclaw", { text: "written to nobody" });
  const result = await exited;
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /EPIPE|\n\s+at /, "no stack trace");
  assert.match(firstLine, /read by head/);

  const second = spawnCli(args);
  children.push(second);
  let secondOut = "";
  second.stdout!.on("data", (chunk: Buffer) => (secondOut += chunk.toString()));
  await waitFor(() => secondOut.includes("\n"), 10_000, "the second listen's first line");
  assert.match(secondOut, /written to nobody/);
  assert.doesNotMatch(secondOut, /read by head/, "what head read is not repeated");
});

test("interop poll whose stdout reader is gone exits 0 and takes nothing; --peek takes nothing at all", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  broker = await startBroker();
  for (const text of ["one", "two", "three", "four"]) await publish(broker.url, "hermes", "openclaw", { text });

  const gone = spawnCli(["poll", "--agent", "openclaw", "--url", broker.url]);
  const goneExit = collect(gone);
  gone.stdout!.destroy();
  const result = await goneExit;
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /EPIPE|\n\s+at /);
  assert.deepEqual(await pendingTexts(broker.url, "openclaw"), ["one", "two", "three", "four"]);

  const peeked = await collect(spawnCli(["poll", "--agent", "openclaw", "--url", broker.url, "--peek", "--limit", "2"]));
  assert.equal(peeked.code, 0, peeked.stderr);
  assert.deepEqual(peeked.stdout.trim().split("\n").map((line) => JSON.parse(line).text), ["one", "two"]);
  assert.deepEqual(await pendingTexts(broker.url, "openclaw"), ["one", "two", "three", "four"]);

  const taken = await collect(spawnCli(["poll", "--agent", "openclaw", "--url", broker.url, "--limit", "3"]));
  assert.deepEqual(taken.stdout.trim().split("\n").map((line) => JSON.parse(line).text), ["one", "two", "three"]);
  assert.deepEqual(await pendingTexts(broker.url, "openclaw"), ["four"]);
});
