/**
 * Red-team finding 3: with tokens on and --max-connections 12, one agent's token opened twelve hour-long waits on
 * its own inbox and every other agent got 503 for an hour. Each agent now has a share of the places
 * (--max-requests-per-agent, by default a quarter of --max-connections): past it 429, and the others still get in.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

/** Opens hour-long waits on `agent`'s inbox, each seen by the broker before the next; `waits` aborts them all. */
async function openWaits(broker: RunningBroker, agent: string, count: number, headers: Record<string, string>, waits: AbortController) {
  for (let i = 1; i <= count; i++) {
    fetch(`${broker.url}/wait?agent=${agent}&timeout=3600`, { headers, signal: waits.signal }).catch(() => {});
    await waitFor(async () => {
      const status = await (await fetch(`${broker.url}/status`, { headers })).json();
      return status.agents[agent]?.waiting === i;
    }, 5000, `wait ${i} to arrive`);
  }
}

/** A request that should be refused at once: one let through would wait for an hour, so it is given up after 5 s. */
function refusedFetch(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { headers, signal: AbortSignal.timeout(5000) });
}

async function assertShareFull(response: Response, agent: string, limit: number): Promise<void> {
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "1");
  const body = await response.json();
  assert.equal(body.code, "too_many_requests");
  assert.match(body.error, new RegExp(`agent ${agent}: ${limit} .*the limit per agent is ${limit} \\(--max-requests-per-agent\\)`));
}

test("with tokens one agent's waits take its share of --max-connections; past it 429, and the others still publish and poll", async (t) => {
  const dir = tempDir();
  const waits = new AbortController();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    waits.abort();
    await broker?.cleanup();
    dir.cleanup();
  });
  const alice = bearer(await createToken(dir.path, "alice"));
  const mallory = bearer(await createToken(dir.path, "mallory"));
  broker = await startBroker({ dataDir: dir.path, args: ["--agents", "alice,bob,mallory", "--max-connections", "12"] });

  await openWaits(broker, "mallory", 3, mallory, waits);
  await assertShareFull(await refusedFetch(`${broker.url}/wait?agent=mallory&timeout=3600`, mallory), "mallory", 3);
  await assertShareFull(await refusedFetch(`${broker.url}/events`, mallory), "mallory", 3);

  assert.equal((await publish(broker.url, "alice", "bob", { text: "still through" }, alice)).status, 200);
  const polled = await fetch(`${broker.url}/poll?agent=alice`, { headers: alice });
  assert.equal(polled.status, 200);
  assert.deepEqual(await polled.json(), []);
});

test("without tokens the share is the named agent's, --max-requests-per-agent sets it, and an ended wait frees its place", async (t) => {
  const waits = new AbortController();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    waits.abort();
    await broker?.cleanup();
  });
  broker = await startBroker({ args: ["--max-connections", "12", "--max-requests-per-agent", "2"] });

  await openWaits(broker, "hermes", 2, {}, waits);
  await assertShareFull(await refusedFetch(`${broker.url}/wait?agent=hermes&timeout=3600`), "hermes", 2);
  assert.equal((await fetch(`${broker.url}/poll?agent=openclaw`)).status, 200);
  // A message ends one wait: its place is hermes's again.
  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "ends a wait" })).status, 200);
  await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).status === 200, 5000, "a place for hermes");
});

test("without tokens an A2A call takes its sender's share, not its recipient's, and an ntfy read takes the share of the inbox it reads", async (t) => {
  const calls = new AbortController();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    calls.abort();
    await broker?.cleanup();
  });
  broker = await startBroker({ args: ["--max-connections", "12", "--max-requests-per-agent", "2"] });

  // Two blocking SendMessage calls to hermes wait for its reply; hermes must still be able to poll for them.
  for (let i = 1; i <= 2; i++) {
    const message = { messageId: `share-${i}`, role: "ROLE_USER", parts: [{ text: "hi" }] };
    fetch(`${broker.url}/a2a/hermes`, {
      method: "POST",
      headers: { "content-type": "application/json", "a2a-version": "1.0" },
      body: JSON.stringify({ jsonrpc: "2.0", id: i, method: "SendMessage", params: { message } }),
      signal: calls.signal,
    }).catch(() => {});
    await waitFor(async () => (await (await fetch(`${broker!.url}/status`)).json()).agents.hermes?.pending === i, 5000, `A2A call ${i}`);
  }
  assert.equal((await fetch(`${broker.url}/poll?agent=hermes`)).status, 200);

  // Varying the `@sender` segment of a read does not escape the reader's share (a new stream replaces alice's
  // last one, so a wait fills the other place).
  await openWaits(broker, "alice", 1, {}, calls);
  assert.equal((await fetch(`${broker.url}/ntfy/@x0/alice/json`, { signal: calls.signal })).status, 200);
  await assertShareFull(await refusedFetch(`${broker.url}/ntfy/@x1/alice/json`), "alice", 2);
  // A publish to alice is its sender's, so it still gets through.
  const published = await fetch(`${broker.url}/ntfy/@bob/alice`, { method: "POST", body: "through" });
  assert.equal(published.status, 200);
});
