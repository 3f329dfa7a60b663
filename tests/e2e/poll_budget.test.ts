/** The real broker's answer budget: an inbox of big messages drains through /poll and `interop poll`, losing none. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startBroker } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

/** A million U+0001: JSON escapes each to six characters, so three of these pass the 16 Mi-character budget. */
const BIG = "\u0001".repeat(1_000_000);

test("/poll of messages past the answer budget answers with a share, and interop poll drains the rest page by page", async () => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  try {
    const send = async () => {
      const response = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, {
        method: "POST",
        body: BIG,
        headers: { "content-type": "text/plain" },
      });
      assert.equal(response.status, 200, await response.clone().text());
      return (await response.json()).id as number;
    };
    const sent = [await send(), await send(), await send()];
    const first = await fetch(`${broker.url}/poll?agent=openclaw`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("interop-more-pending"), "true");
    assert.deepEqual((await first.json()).map((message: { interop: { id: number } }) => message.interop.id), sent.slice(0, 2));
    const status = await (await fetch(`${broker.url}/status`)).json();
    assert.equal(status.agents.openclaw.pending, 1, "the message the answer could not hold is still pending");

    sent.push(await send(), await send());
    const polled = await runCli(["poll", "-a", "openclaw", "--url", broker.url], { timeoutMs: 60_000 });
    assert.equal(polled.code, 0, polled.stderr);
    const lines = polled.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((message) => message.interop.id), sent.slice(2), "all three, over two pages");
    assert.ok(lines.every((message) => message.text === BIG));
    assert.equal((await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.pending, 0);
  } finally {
    await broker.cleanup();
  }
});

test("interop serve refuses a --max-body-bytes above 64MiB: a larger message could not be encoded to deliver it", async () => {
  const dir = tempDir();
  try {
    const result = await runCli(["serve", "--port", "0", "--data-dir", dir.path, "--max-body-bytes", "65MiB"], { timeoutMs: 10_000 });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: Invalid --max-body-bytes: at most 64MiB/m);
  } finally {
    dir.cleanup();
  }
});
