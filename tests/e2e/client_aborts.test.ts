/** A client that hangs up in the middle of its body is the client's doing: no error and no stack in the broker's log. */
import assert from "node:assert/strict";
import { get } from "node:http";
import { connect } from "node:net";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";

const HEAD = "POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n";

/**
 * Sends a head and part of a body, waits until the broker is reading it, then cuts the connection. With
 * `--max-connections 2` and a stream holding one place, the upload holds the other, so a peek at an inbox
 * answering 503 says the handler has it (not `/status`: operators always reach it).
 */
async function cutUpload(broker: RunningBroker, head: string, partOfBody: string): Promise<void> {
  // A peek that reaches the broker before it has read the upload's first bytes finds a connection with no request
  // yet, which the cap closes first to seat the peek; or the peek holds the last place as the upload's head comes,
  // and the upload is answered 503 (its connection kept open for the rest of its body). Either way the upload is
  // sent again on a new connection.
  for (let attempt = 1; ; attempt++) {
    const socket = connect(broker.port, "127.0.0.1");
    socket.on("error", () => {});
    let refused = false;
    socket.once("close", () => (refused = true));
    socket.once("data", () => (refused = true));
    try {
      socket.write(head + partOfBody);
      let status = 0;
      await waitFor(async () => refused || (status = await peekStatus(broker)) === 503, 10_000, "the upload to hold the last place");
      if (status === 503) break;
      if (attempt === 5) assert.fail("the broker closed or refused the upload before reading it five times over");
    } finally {
      socket.destroy();
    }
  }
  await waitFor(async () => await peekStatus(broker) === 200, 10_000, "the upload's place to be freed");
}

/**
 * The status of a peek at hermes's inbox, on a connection of its own that closes after it: with so few places,
 * the broker closes idle kept-alive connections first, which a pooled fetch would meet as a reset.
 */
function peekStatus(broker: RunningBroker): Promise<number> {
  return new Promise((resolve, reject) => {
    get(`${broker.url}/poll?agent=hermes&peek=1`, { agent: false, headers: { connection: "close" } }, (response) => {
      response.resume();
      resolve(response.statusCode!);
    }).on("error", reject);
  });
}

/** Both ways a body comes in pieces: chunked, and a declared length too large for the bare-socket path (64 KiB). */
async function cutBoth(broker: RunningBroker): Promise<void> {
  const stream = new AbortController();
  try {
    const response = await fetch(`${broker.url}/subscribe?agent=openclaw`, { signal: stream.signal });
    assert.equal(response.status, 200);
    await cutUpload(broker, `${HEAD}transfer-encoding: chunked\r\n\r\n`, '7\r\n{"n": 1\r\n');
    await cutUpload(broker, `${HEAD}content-length: 100000\r\n\r\n`, `{"text": "${"x".repeat(1000)}`);
  } finally {
    stream.abort();
  }
}

function assertNoErrorNorStack(log: string): void {
  assert.doesNotMatch(log, / (error|warn): /, log);
  assert.doesNotMatch(log, /^\s+at /m, log);
}

test("uploads cut mid-body leave nothing in the broker's log without --verbose, and the broker serves on", async (t) => {
  const broker = await startBroker({ args: ["--max-connections", "2"] });
  t.after(() => broker.cleanup());
  await cutBoth(broker);
  assert.equal((await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: '{"n": 2}' })).status, 200);
  // Stopped, so everything it wrote is in: only its start and stop lines.
  assert.equal((await broker.stop()).code, 0);
  assertNoErrorNorStack(broker.log());
  assert.deepEqual(broker.log().trim().split("\n").map((line) => line.replace(/^\S+ interop serve info: /, "").split(" ")[0]), [
    "interop",
    "stopping:",
    "stopped",
  ]);
});

test("with --verbose each upload cut mid-body is one request line, answered 400, with no error and no stack", async (t) => {
  const broker = await startBroker({ args: ["--max-connections", "2", "--verbose"] });
  t.after(() => broker.cleanup());
  await cutBoth(broker);
  // An upload refused at the cap (see cutUpload) is a line of its own, answered 503, and sent again.
  const requestLines = () => broker.log().split("\n").filter((line) => line.includes("POST /broadcast") && !line.includes("→ 503"));
  await waitFor(() => requestLines().length === 2, 10_000, "two request lines");
  for (const line of requestLines()) assert.match(line, /debug: POST \/broadcast from=hermes to=openclaw → 400 \(\d+\.\d ms\)$/);
  assertNoErrorNorStack(broker.log());
});
