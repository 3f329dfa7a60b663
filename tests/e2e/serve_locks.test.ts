import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";
import { rawClient, type RawClient } from "../helpers/raw_client.ts";

test("interop serve refuses to start when an interop broker holds the port, creating nothing, and the first keeps serving", async () => {
  const first = await startBroker();
  const otherDir = tempDir();
  try {
    // Newcomer, session 51: the refused broker had made its data dir and a new, empty store in it.
    const dataDir = join(otherDir.path, "new");
    const second = await runCli(["serve", "--port", String(first.port), "--data-dir", dataDir], { timeoutMs: 15_000 });
    assert.equal(existsSync(dataDir), false);
    assert.equal(second.code, 6);
    assert.equal(
      second.stderr,
      `error: An interop broker is already running on 127.0.0.1:${first.port} (pid ${first.pid}, version 1.0.0, data dir ${first.dataDir}); use it, or stop it first (a broker on another --port with a data dir of its own has inboxes of its own)\n`,
    );
    assert.equal((await publish(first.url, "hermes", "openclaw", { still: "serving" })).status, 200);
  } finally {
    await first.cleanup();
    otherDir.cleanup();
  }
});

test("interop serve names another program holding the port", async () => {
  const squatter = createServer((_, res) => res.writeHead(200, { "content-type": "text/plain" }).end("hello"));
  await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
  const port = (squatter.address() as AddressInfo).port;
  const dir = tempDir();
  try {
    const result = await runCli(["serve", "--port", String(port), "--data-dir", dir.path], { timeoutMs: 15_000 });
    assert.equal(result.code, 6);
    assert.match(result.stderr, new RegExp(`^error: Port 127\\.0\\.0\\.1:${port} is held by another program`));
  } finally {
    squatter.close();
    dir.cleanup();
  }
});

test("interop serve refuses a data dir another broker uses, naming it", async () => {
  const first = await startBroker();
  try {
    const second = await runCli(["serve", "--port", "0", "--data-dir", first.dataDir], { timeoutMs: 15_000 });
    assert.equal(second.code, 6);
    assert.equal(
      second.stderr,
      `error: Data dir ${first.dataDir} is in use by another interop broker (pid ${first.pid}, listening on 127.0.0.1:${first.port}); stop it, or pass a different --data-dir\n`,
    );
  } finally {
    await first.cleanup();
  }
});

test("interop serve stops cleanly on SIGTERM: streams are told, messages kept, the data dir is free again", async () => {
  const dir = tempDir();
  try {
    // Stopped however the test ends (`cleanup` after a stop that ended it is a no-op).
    await using broker = await startBroker({ dataDir: dir.path });
    const stream = await openSse(`${broker.url}/subscribe?agent=openclaw`);
    await publish(broker.url, "hermes", "openclaw", { n: 1 });
    assert.equal((await stream.take(1))[0].id, "1");
    await publish(broker.url, "openclaw", "hermes", { n: 2 });
    const exit = await broker.stop("SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(stream.raw(), /event: shutdown\ndata: \{"reason":"broker stopping"\}\n\n$/);
    assert.match(broker.log(), /stopping: closing streams and the database\n.*stopped\n$/);
    stream.close();

    const again = await startBroker({ dataDir: dir.path });
    try {
      const pending = await (await fetch(`${again.url}/poll?agent=hermes`)).json();
      assert.deepEqual(pending.map((message: { n: number }) => message.n), [2]);
    } finally {
      await again.cleanup();
    }
  } finally {
    dir.cleanup();
  }
});

// Red team 53: a stop that could not remove the owner file (the file system gone read-only) printed an error and
// exited 1, though the broker had stopped cleanly.
test("interop serve that cannot remove its owner file as it stops says so and still exits 0", async () => {
  const dir = tempDir();
  try {
    await using broker = await startBroker({ dataDir: dir.path });
    // A directory in the file's place: its removal fails, as an unlink on a read-only file system does.
    rmSync(join(dir.path, "broker.json"));
    mkdirSync(join(dir.path, "broker.json"));
    writeFileSync(join(dir.path, "broker.json", "in the way"), "");
    assert.deepEqual(await broker.stop("SIGTERM"), { code: 0, signal: null });
    assert.match(broker.log(), /could not remove .*broker\.json \(.*\); the next start takes it for a broker that stopped\n.*stopped\n$/);
  } finally {
    dir.cleanup();
  }
});

/** What `agent`'s inbox holds (its messages' texts, taken) on a broker started again on `dataDir`, then stopped. */
async function textsAfterRestart(dataDir: string, agent: string): Promise<string[]> {
  const again = await startBroker({ dataDir });
  try {
    const inbox = await (await fetch(`${again.url}/poll?agent=${agent}`)).json();
    return inbox.map((message: { text: string }) => message.text);
  } finally {
    await again.cleanup();
  }
}

// What a pooled client (the MCP server's fetch, an agent's keep-alive HTTP client) meets in the second a stopping
// broker gives open connections: a request still arriving must be turned away as "try again or elsewhere", not
// reach the store being closed (which answered 503 storage_failed "database is not open").
test("interop serve, while stopping, answers a request still arriving on an open connection 503 storage_unavailable and keeps nothing of it", async () => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let client: RawClient | undefined;
  try {
    broker = await startBroker({ dataDir: dir.path });
    // A wait in progress keeps its connection open through the stop: the broker ends the wait, and the client's
    // next request on that connection arrives while the store is being closed.
    client = await rawClient(broker.url, `GET /wait?agent=openclaw&timeout=30 HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\n\r\n`);
    await waitFor(async () => (await (await fetch(`${broker!.url}/status`)).json()).agents.openclaw?.waiting === 1, 10_000, "the wait");
    const exited = broker.stop("SIGTERM");
    await waitFor(() => /^HTTP\/1\.1 \d+ .*\r\n\r\n/s.test(client!.received()), 10_000, "the wait's end");
    const waitEnd = client.received();
    const body = JSON.stringify({ late: true });
    client.socket.write(
      `POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    await waitFor(() => /\r\n\r\n\{.*\}$/s.test(client!.received().slice(waitEnd.length)), 10_000, "the answer");
    const answer = client.received().slice(waitEnd.length);
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /\r\nretry-after: 1\r\n/i);
    assert.deepEqual(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)), {
      error: "The broker is stopping: retry in a moment, here once it is back or at another broker on the same database",
      code: "storage_unavailable",
    });
    assert.deepEqual(await exited, { code: 0, signal: null });

    assert.deepEqual(await textsAfterRestart(dir.path, "openclaw"), []);
  } finally {
    client?.socket.destroy();
    await broker?.cleanup();
    dir.cleanup();
  }
});

// Red team, session 50: a request whose chunked body was still arriving when the broker got SIGTERM reached the store
// after it closed, and was answered 503 storage_failed "database is not open" (3 of 3), which a client does not retry.
test("interop serve, while stopping, serves a request whose body was still arriving (within its second) and keeps it", async () => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let client: RawClient | undefined;
  try {
    broker = await startBroker({ dataDir: dir.path });
    assert.equal((await fetch(`${broker.url}/poll?agent=openclaw`)).status, 200);
    client = await rawClient(
      broker.url,
      `POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\nContent-Type: application/json\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n5\r\n{"tex\r\n`,
    );
    // The head is at the broker, its request started (ample: a request waits 30 s for its body).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const exited = broker.stop("SIGTERM");
    // The rest once the broker is stopping, well within the second it gives requests in progress.
    await waitFor(() => broker!.log().includes("stopping:"), 5000, "the broker to begin its stop");
    client.socket.write(`f\r\nt":"in time"}\r\n\r\n0\r\n\r\n`);
    await waitFor(() => /\r\n\r\n\{.*\}$/s.test(client!.received()), 10_000, "the answer");
    const answer = client.received();
    assert.match(answer, /^HTTP\/1\.1 200 /, answer);
    assert.deepEqual(await exited, { code: 0, signal: null });

    assert.deepEqual(await textsAfterRestart(dir.path, "openclaw"), ["in time"]);
  } finally {
    client?.socket.destroy();
    await broker?.cleanup();
    dir.cleanup();
  }
});

test("interop serve rejects bad flags with exit 2", async () => {
  const result = await runCli(["serve", "--durability", "maybe"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: Invalid --durability: "maybe"; use strict or relaxed; see 'interop serve --help'\n$/);
});

// Red team 51c: a --host that is no address here failed at the bind (exit 1, a raw EADDRNOTAVAIL), after the data dir
// and a new store were made.
test("interop serve refuses a --host that is no address of this machine in one line (exit 2), creating nothing", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const dataDir = join(dir.path, "new");
  const result = await runCli(["serve", "--host", "192.0.2.1", "--insecure", "--port", "0", "--data-dir", dataDir], { timeoutMs: 15_000 });
  assert.equal(result.code, 2);
  assert.equal(result.stderr, "error: Cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine; see 'interop serve --help'\n");
  assert.equal(existsSync(dataDir), false);
});
