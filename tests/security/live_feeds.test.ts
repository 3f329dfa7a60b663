/**
 * Red-team finding (review34): every live feed (`GET /events`) is written each message it shows in the publish's own
 * turn, and one agent's token could open as many as its --max-requests-per-agent share (1024 by default): with 500
 * feeds reading nothing, each 1 MB publish of its own held every other request for 21-28 s. A caller now has at
 * most 8 feeds open (a token's agent; without tokens every caller together): past it 429, others still get theirs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

const MAX_FEEDS = 8;

/** Opens a live feed, resolving once its head came: the broker counts it from then until `feeds` aborts it. */
async function openFeed(broker: RunningBroker, headers: Record<string, string>, feeds: AbortController): Promise<Response> {
  return await fetch(`${broker.url}/events`, { headers, signal: AbortSignal.any([feeds.signal, AbortSignal.timeout(120_000)]) });
}

async function assertFeedsFull(response: Response, holder: string): Promise<void> {
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "1");
  const body = await response.json();
  assert.equal(body.code, "too_many_requests");
  assert.match(body.error, new RegExp(`Too many live feeds for ${holder}: ${MAX_FEEDS} open, the most one caller may have is ${MAX_FEEDS}`));
}

test("one agent's token has at most 8 live feeds open: the 9th gets 429, another agent still gets one, and a closed feed frees its place", async (t) => {
  const dir = tempDir();
  const feeds = new AbortController();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    feeds.abort();
    await broker?.cleanup();
    dir.cleanup();
  });
  const mallory = bearer(await createToken(dir.path, "mallory"));
  const bob = bearer(await createToken(dir.path, "bob"));
  broker = await startBroker({ dataDir: dir.path, args: ["--agents", "mallory,bob"] });

  const first = new AbortController();
  const firstFeed = await openFeed(broker, mallory, first);
  assert.equal(firstFeed.status, 200);
  for (let i = 2; i <= MAX_FEEDS; i++) assert.equal((await openFeed(broker, mallory, feeds)).status, 200, `feed ${i}`);
  await assertFeedsFull(await openFeed(broker, mallory, feeds), "agent mallory");
  assert.equal((await openFeed(broker, bob, feeds)).status, 200, "another agent's feed");

  // Its place is mallory's again once the broker sees the first feed closed. Its body is cancelled as well as its
  // request aborted, as a client closing a feed does: in one full Deno run, after the abort alone, the broker saw no
  // close within 30 s (not seen with the file run alone).
  await firstFeed.body?.cancel().catch(() => {});
  first.abort();
  await waitFor(async () => {
    const response = await openFeed(broker!, mallory, feeds);
    await response.body?.cancel().catch(() => {});
    return response.status === 200;
  }, 30_000, "a place for mallory's feed once one closed");
});

test("without tokens every caller's live feeds count together: 8 at most", async (t) => {
  const feeds = new AbortController();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    feeds.abort();
    await broker?.cleanup();
  });
  broker = await startBroker();
  for (let i = 1; i <= MAX_FEEDS; i++) assert.equal((await openFeed(broker, {}, feeds)).status, 200, `feed ${i}`);
  await assertFeedsFull(await openFeed(broker, {}, feeds), "callers without a token");
});
