import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { cleanUpAll } from "../helpers/clean_up_all.ts";
import { tempDir } from "../helpers/cli.ts";
import { makeFifo, readFifo } from "../helpers/fifo.ts";
import { stopListen } from "../helpers/listener.ts";

const run = promisify(execFile);
const OLD_CLIENT = fileURLToPath(new URL("../fixtures/hermes-sse-client.py", import.meta.url));

async function curl(...args: string[]): Promise<string> {
  return (await run("curl", ["-sS", "--max-time", "10", ...args])).stdout;
}

test("the old Python SSE client and plain curl work unchanged against the old routes", async () => {
  const dir = tempDir();
  const pipe = join(dir.path, "hermes-msg-pipe");
  makeFifo(pipe);
  const broker = await startBroker();
  const reader = readFifo(pipe);
  const python = spawn("python3", [OLD_CLIENT, broker.url, pipe], { stdio: "ignore" });
  let again: RunningBroker | undefined;
  try {
    await waitFor(async () => JSON.parse(await curl(`${broker.url}/status`)).subscribers.hermes, 10_000, "python to subscribe");

    const posted = [
      { message: "hello hermes", type: "chat", from: "openclaw" },
      { message: "second", meta: { priority: 2, tags: ["a", "b"] }, unicode: "Grüße 🦉" },
    ];
    for (const body of posted) {
      const reply = JSON.parse(await curl("-X", "POST", `${broker.url}/broadcast?from=openclaw`, "-d", JSON.stringify(body)));
      assert.equal(reply.delivered, true);
    }
    await waitFor(() => reader.lines.length >= 2, 10_000, "both messages in the pipe");
    const received = reader.lines.map((line) => JSON.parse(line));
    assert.equal(received.length, 2);
    for (const [index, body] of posted.entries()) {
      const { interop, ...fields } = received[index];
      assert.deepEqual(fields, body, "every posted field arrives as posted");
      assert.equal(interop.from, "openclaw");
      assert.equal(interop.to, "hermes");
    }

    const toOpenclaw = JSON.parse(await curl("-X", "POST", `${broker.url}/broadcast?from=hermes`, "-d", '{"message":"hi leo"}'));
    assert.deepEqual(toOpenclaw.to, ["openclaw"]);
    const polled = JSON.parse(await curl(`${broker.url}/poll?agent=openclaw`));
    assert.deepEqual(polled.map((message: { message: string }) => message.message), ["hi leo"]);
    assert.deepEqual(JSON.parse(await curl(`${broker.url}/poll?agent=openclaw`)), []);

    const status = JSON.parse(await curl(`${broker.url}/status`));
    assert.deepEqual(Object.keys(status.agents).sort(), ["hermes", "openclaw"]);
    assert.deepEqual(status.queues, { hermes: 0, openclaw: 0 });
    assert.deepEqual(status.subscribers, { hermes: true, openclaw: false });
    assert.equal(status.agents.hermes.online, true);

    // A restart: the client reconnects (after its 5 s sleep) and reads on; the broker's goodbye is not a message.
    // (Without an id it gets the resume window's messages again: at least once, never a gap.)
    await broker.stop("SIGTERM");
    again = await startBroker({ port: broker.port, dataDir: broker.dataDir });
    await curl("-X", "POST", `${again.url}/broadcast?from=openclaw`, "-d", '{"message":"after the restart"}');
    await waitFor(() => reader.lines.at(-1)?.includes("after the restart"), 20_000, "the message after the restart in the pipe");
    const messages = reader.lines.map((line) => JSON.parse(line).message);
    assert.deepEqual([...new Set(messages)], ["hello hermes", "second", "after the restart"], reader.lines.join("\n"));
  } finally {
    // A client that exited already is not killed again (process.kill would throw ESRCH and leave the brokers running).
    await cleanUpAll(() => stopListen(python, "SIGKILL"), () => reader.stop(), () => again?.cleanup(), () => broker.cleanup(), dir.cleanup);
  }
});
