/**
 * `interop listen` handing messages to local readers that do what real ones do (red team, session 52): a FIFO reader
 * that reads to end-of-file and opens the pipe again at once, a FIFO removed or replaced while listen runs, an
 * `--exec` command that leaves a job in the background, a push receiver whose `Retry-After` says a day.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { type FifoReader, makeFifo, readFifo } from "../helpers/fifo.ts";
import { stopAll } from "../helpers/listener.ts";

/** The old client's reader, as Python writes it: open, read to end-of-file, close, note what came, open again. */
const EOF_READER = `
import sys
path, out = sys.argv[1], sys.argv[2]
while True:
    with open(path) as pipe:
        data = pipe.read()
    with open(out, "a") as log:
        log.write(data if data else "EMPTY\\n")
`;

function readLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((line) => line !== "") : [];
}

function stateId(path: string): number | undefined {
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")).last_id : undefined;
}

/**
 * Starts a broker, a FIFO with the reader `spawnReader` starts on it (given the pipe and a file to note what it
 * read) and a listen writing hermes's messages into it, then publishes `count` messages ({n}) 50 ms apart; resolves
 * with the reader's file. Everything is stopped after the test.
 */
async function publishToFifoReader(
  t: TestContext,
  spawnReader: (pipe: string, out: string) => ChildProcess,
  count: number,
): Promise<string> {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  let reader: ChildProcess | undefined;
  t.after(async () => {
    await stopAll(listen, reader);
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker();
  const pipe = join(dir.path, "pipe");
  const out = join(dir.path, "read.txt");
  makeFifo(pipe);
  reader = spawnReader(pipe, out);
  listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--pipe", pipe, "--state", join(dir.path, "s.json")]);
  for (let n = 1; n <= count; n++) {
    assert.equal((await publish(broker.url, "openclaw", "hermes", { n })).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return out;
}

test("listen --pipe gives a reader that reads to end-of-file and opens the pipe again at once each message as it comes, with no empty reads", async (t) => {
  // Before the fix, listen took this reader for one that keeps the pipe open, and held its end open: the reader's
  // read never ended, and 1 message of 30 was read while listen ran.
  const out = await publishToFifoReader(t, (pipe, out) => spawn("python3", ["-c", EOF_READER, pipe, out], { stdio: "ignore" }), 20);
  await waitFor(() => readLines(out).filter((line) => line !== "EMPTY").length >= 20, 15_000, "20 messages read while listen runs");
  const lines = readLines(out);
  assert.deepEqual(lines.filter((line) => line !== "EMPTY").map((line) => JSON.parse(line).n), Array.from({ length: 20 }, (_, i) => i + 1));
  // Each look for a reader used to wake it with an empty end-of-file: a reader that parses what it read fails on one.
  assert.equal(lines.filter((line) => line === "EMPTY").length, 0, "no empty reads");
});

test("listen --pipe loses nothing to a one-line-per-open reader that is slow at times to close the FIFO", async (t) => {
  // A line per open, as `read line < FIFO` takes it; each fourth open held 0.6 s (a reader descheduled on a busy
  // machine), so listen takes it for a streaming reader, then a pause before the next open. listen wrote on into
  // the pipe; its first write after the reader closed failed (EPIPE), and its close threw away what the reader had
  // not read (red team 55 lost 75 lines of 300 so).
  const script = `n=0; while true; do n=$((n + 1)); { IFS= read -r line; [ $((n % 4)) -eq 0 ] && sleep 0.6; } < "$1"; ` +
    `printf '%s\\n' "$line" >> "$2"; [ $((n % 4)) -eq 0 ] && sleep 0.3; done`;
  const out = await publishToFifoReader(t, (pipe, out) => spawn("bash", ["-c", script, "reader", pipe, out], { stdio: "ignore" }), 24);
  await waitFor(() => readLines(out).length >= 24, 30_000, "24 messages read while listen runs");
  assert.deepEqual(readLines(out).map((line) => JSON.parse(line).n), Array.from({ length: 24 }, (_, i) => i + 1));
});

test("listen --pipe makes the FIFO again when it is removed, and writes nothing into a regular file put in its place", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  let reader: FifoReader | undefined;
  t.after(async () => {
    await stopAll(listen);
    await reader?.stop();
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker();
  const pipe = join(dir.path, "pipe");
  const state = join(dir.path, "s.json");
  let stderr = "";
  listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--pipe", pipe, "--state", state]);
  listen.stderr!.on("data", (chunk: string) => (stderr += chunk));
  await waitFor(() => existsSync(pipe), 10_000, "the FIFO");

  // Removed (a reader's clean-up): listen made it only at its start, and waited for ever on a path that was not there.
  rmSync(pipe);
  assert.equal((await publish(broker.url, "openclaw", "hermes", { n: 1 })).status, 200);
  await waitFor(() => existsSync(pipe) && statSync(pipe).isFIFO(), 10_000, "the FIFO made again");
  reader = readFifo(pipe);
  await waitFor(() => reader!.lines.length === 1, 10_000, "the message through the new FIFO");
  await reader.stop();
  reader = undefined;
  await waitFor(() => stateId(state) === 1, 5000, "the state saved");

  // Replaced by a regular file: it took every later line, where no reader looked.
  rmSync(pipe);
  writeFileSync(pipe, "");
  assert.equal((await publish(broker.url, "openclaw", "hermes", { n: 2 })).status, 200);
  await waitFor(() => /delivering message 2 failed: \S+ is no longer a FIFO \(replaced while listen ran\); use --out/.test(stderr), 10_000, "listen to say so");
  assert.equal(readFileSync(pipe, "utf8"), "", "nothing written into the regular file");
  assert.equal(stateId(state), 1, "the message not counted as written");
  rmSync(pipe);
  makeFifo(pipe);
  reader = readFifo(pipe);
  await waitFor(() => reader!.lines.length === 1, 15_000, "the message once a FIFO is back");
  assert.equal(JSON.parse(reader.lines[0]).n, 2);
});

test("listen --exec goes on once the command exits, though a job it started in the background holds its stderr", async (t) => {
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
  const state = join(dir.path, "s.json");
  // The background job inherits the command's stderr and holds it for 30 s after the command exits 0.
  listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--exec", `cat >> '${out}'; (sleep 30) &`, "--state", state]);
  for (let n = 1; n <= 3; n++) assert.equal((await publish(broker.url, "openclaw", "hermes", { n })).status, 200);
  // Before the fix, listen waited for the stderr to close: one message per 30 s, the state unsaved, SIGTERM unheard.
  await waitFor(() => readLines(out).length === 3, 10_000, "three messages handled");
  await waitFor(() => stateId(state) === 3, 5000, "the state saved");
  const stopping = performance.now();
  await stopAll(listen);
  assert.ok(performance.now() - stopping < 5000, "stopped by SIGTERM at once");
});

test("listen --post waits at most 5 minutes for a receiver's Retry-After, however long it asks", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  let receiver: Server | undefined;
  t.after(async () => {
    await stopAll(listen);
    receiver?.close();
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker();
  receiver = createServer((_request, response) => response.writeHead(503, { "retry-after": "86400" }).end("busy"));
  await new Promise<void>((resolve) => receiver!.listen(0, "127.0.0.1", resolve));
  const { port } = receiver.address() as { port: number };
  let stderr = "";
  listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--post", `http://127.0.0.1:${port}/in`, "--state", join(dir.path, "s.json")]);
  listen.stderr!.on("data", (chunk: string) => (stderr += chunk));
  assert.equal((await publish(broker.url, "openclaw", "hermes", { n: 1 })).status, 200);
  // A day's wait held the inbox behind this message for a day; 3,000,000 s overflowed the timer, which fired at once.
  await waitFor(() => /delivering message 1 failed: .* answered HTTP 503: busy; retrying in 300000 ms/.test(stderr), 10_000, "the capped wait");
});
