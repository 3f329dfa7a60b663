import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { collect, spawnCli, tempDir } from "../helpers/cli.ts";
import { type FifoReader, readFifo } from "../helpers/fifo.ts";
import { stopAll } from "../helpers/listener.ts";

test("listen --pipe creates the FIFO, waits for a reader without dropping anything, then delivers in order", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const pipe = join(dir.path, "hermes-msg-pipe");
  const state = join(dir.path, "state.json");
  const listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--pipe", pipe, "--state", state]);
  const done = collect(listen);
  let reader: FifoReader | undefined;
  try {
    await waitFor(() => existsSync(pipe) && statSync(pipe).isFIFO(), 10_000, "the FIFO");
    for (let n = 1; n <= 3; n++) await publish(broker.url, "openclaw", "hermes", { n });
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).subscribers.hermes, 10_000, "listen");
    assert.equal(JSON.parse(readFileSync(state, "utf8")).last_id, 0, "nothing counts as written while no one reads the pipe");

    reader = readFifo(pipe);
    const lines = reader.lines;
    await waitFor(() => lines.length >= 3, 10_000, "three lines from the pipe");
    assert.deepEqual(lines.map((line) => JSON.parse(line).n), [1, 2, 3]);
    await waitFor(() => existsSync(state) && JSON.parse(readFileSync(state, "utf8")).last_id === 3, 5000, "the state file");
    await stopAll(listen);
    const result = await done;
    assert.equal(result.code, 0, result.stderr);
  } finally {
    await stopAll(listen);
    await reader?.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("listen --exec runs the command once per message and retries a failing run", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const out = join(dir.path, "handled.jsonl");
  const failedOnce = join(dir.path, "failed-once");
  // Fails the first time it is run, then appends what it got on stdin.
  const command = `if [ ! -e '${failedOnce}' ]; then touch '${failedOnce}'; exit 1; fi; cat >> '${out}'`;
  const listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--exec", command, "--state", join(dir.path, "s.json")]);
  const done = collect(listen);
  try {
    for (let n = 1; n <= 3; n++) await publish(broker.url, "openclaw", "hermes", { n });
    await waitFor(() => existsSync(out) && readFileSync(out, "utf8").split("\n").length > 3, 15_000, "three handled messages");
    const handled = readFileSync(out, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line).n);
    assert.deepEqual(handled, [1, 2, 3]);
    await stopAll(listen);
    const result = await done;
    assert.match(result.stderr, /delivering message 1 failed: --exec command failed for message 1 \(exit 1, run 1 of 5\); retrying in \d+ ms/);
    assert.match(result.stderr, /info: delivering message 1: done at attempt 2\n/);
  } finally {
    await stopAll(listen);
    await broker.cleanup();
    dir.cleanup();
  }
});

test("listen --exec parks a message whose command keeps failing as a dead letter, with its exit code and stderr, and goes on", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  t.after(async () => {
    await stopAll(listen);
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker();
  const out = join(dir.path, "handled.jsonl");
  // Fails for good on message "poison", handles the others.
  const command = `input=$(cat); case "$input" in *poison*) echo "cannot handle it" >&2; exit 3;; esac; echo "$input" >> '${out}'`;
  listen = spawnCli([
    "listen", "--agent", "hermes", "--url", broker.url, "--exec", command, "--exec-attempts", "2", "--state", join(dir.path, "s.json"),
  ]);
  for (const text of ["poison", "after it"]) await publish(broker.url, "openclaw", "hermes", { text });
  await waitFor(() => existsSync(out) && readFileSync(out, "utf8").includes("after it"), 15_000, "the next message handled");
  const letters = await (await fetch(`${broker.url}/dead-letters?agent=hermes`)).json();
  assert.equal(letters.length, 1);
  assert.equal(letters[0].message.text, "poison");
  assert.match(letters[0].reason, /exit 3, run 2 of 2/);
  assert.match(letters[0].reason, /cannot handle it/);
});

test("listen rejects conflicting outputs and a path that is not a FIFO", async () => {
  const dir = tempDir();
  try {
    const both = collect(spawnCli(["listen", "--agent", "hermes", "--out", "a", "--exec", "cat"]));
    assert.equal((await both).code, 2);
    const notFifo = collect(spawnCli(["listen", "--agent", "hermes", "--pipe", dir.path]));
    const result = await notFifo;
    assert.equal(result.code, 2);
    assert.match(result.stderr, /exists and is not a FIFO; use --out/);
  } finally {
    dir.cleanup();
  }
});
