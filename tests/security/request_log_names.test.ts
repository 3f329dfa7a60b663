/**
 * Red-team finding: `--verbose` logged `GET /poll?agent=alice;token=itk_…` (a `;` typed for `&`) with the token in
 * the agent value. The request log now writes only values that are agent names; anything else is `(invalid)`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";

test("--verbose logs an agent= value that is no agent name as (invalid), never a token typed into it", async (t) => {
  let broker: RunningBroker | undefined;
  // The broker helper's cleanup fails the test if a token appears in the broker's log.
  t.after(async () => await broker?.cleanup());
  broker = await startBroker({ args: ["--verbose"] });
  const token = `itk_${"A1b2C3d4E5".repeat(4)}xyz`;

  const response = await fetch(`${broker.url}/poll?agent=alice;token=${token}&from=bob`);
  assert.equal(response.status, 400);
  await response.body?.cancel();
  await waitFor(() => broker!.log().includes("/poll agent=(invalid) from=bob"), 5000, "the request to be logged");
});

test("--verbose logs a path segment that is no name as (invalid): a token put in the path stays out of the log", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(async () => await broker?.cleanup());
  broker = await startBroker({ args: ["--verbose"] });
  const token = `itk_${"A1b2C3d4E5".repeat(4)}xyz`;
  for (const path of [`/ntfy/${token}/json?poll=1`, `/${token}`]) await (await fetch(`${broker.url}${path}`)).body?.cancel();
  await (await fetch(`${broker.url}/ntfy/@${token}/hermes/json?poll=1`)).body?.cancel();
  // Hermes's ntfy adapter names its sender so: the name is logged, not hidden.
  await (await fetch(`${broker.url}/ntfy/@leo/hermes/json?poll=1`)).body?.cancel();
  await (await fetch(`${broker.url}/a2a/hermes/.well-known/agent-card.json`)).body?.cancel();
  await waitFor(() => broker!.log().includes("GET /a2a/hermes/.well-known/agent-card.json"), 5000, "the requests to be logged");
  assert.match(broker.log(), /GET \/ntfy\/\(invalid\)\/json → 400/);
  assert.match(broker.log(), /GET \/ntfy\/@\(invalid\)\/hermes\/json → /);
  assert.match(broker.log(), /GET \/ntfy\/@leo\/hermes\/json → 200/);
  assert.match(broker.log(), /GET \/\(invalid\) → 404/);
  assert.doesNotMatch(broker.log(), new RegExp(token));
});
