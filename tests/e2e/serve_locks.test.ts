import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { publish, startBroker } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";

test("interop serve refuses to start when an interop broker holds the port, and the first keeps serving", async () => {
  const first = await startBroker();
  const otherDir = tempDir();
  try {
    const second = await runCli(["serve", "--port", String(first.port), "--data-dir", otherDir.path], { timeoutMs: 15_000 });
    assert.equal(second.code, 6);
    assert.equal(
      second.stderr,
      `error: An interop broker is already running on 127.0.0.1:${first.port} (pid ${first.pid}, version 1.0.0, data dir ${first.dataDir}); use it, or stop it first: never run two brokers\n`,
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
    const broker = await startBroker({ dataDir: dir.path });
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

test("interop serve rejects bad flags with exit 2", async () => {
  const result = await runCli(["serve", "--durability", "maybe"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: Invalid --durability: "maybe"; use strict or relaxed; see 'interop serve --help'\n$/);
});
