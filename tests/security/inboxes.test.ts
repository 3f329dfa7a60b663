/** Attacks on inboxes and fan-out: made-up recipients, a flood of new names, broadcasts as cheap floods, a junk inbox. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

async function agents(url: string, headers: Record<string, string> = {}): Promise<string[]> {
  return Object.keys((await (await fetch(`${url}/status`, { headers })).json()).agents).sort();
}

test("with tokens, an agent's token cannot create inboxes by publishing to or reading made-up names", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  const created = await runCli(["token", "create", "--agent", "hermes", "--data-dir", dir.path]);
  assert.equal(created.code, 0, created.stderr);
  const auth = { authorization: `Bearer ${created.stdout.trim()}` };
  broker = await startBroker({ dataDir: dir.path });

  for (let n = 0; n < 20; n++) {
    const refused = await publish(broker.url, "hermes", `junk-${n}`, { text: "fill the disk" }, auth);
    assert.equal(refused.status, 404);
    const body = await refused.json();
    assert.equal(body.code, "unknown_agent");
    assert.match(body.error, /interop token create --agent junk-\d+/);
  }
  assert.equal((await fetch(`${broker.url}/ntfy/junk-x`, { method: "POST", headers: auth, body: "hi" })).status, 404);
  assert.deepEqual(await agents(broker.url, auth), ["hermes", "openclaw"], "no inbox was created");

  // An agent with a token gets its inbox on first use.
  const leo = await runCli(["token", "create", "--agent", "leo", "--data-dir", dir.path]);
  await waitFor(async () => (await publish(broker!.url, "hermes", "leo", { text: "welcome" }, auth)).status === 200, 5000, "leo's token");
  assert.deepEqual(await agents(broker.url, auth), ["hermes", "leo", "openclaw"]);
  const inbox = await (await fetch(`${broker.url}/poll?agent=leo`, { headers: { authorization: `Bearer ${leo.stdout.trim()}` } })).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["welcome"]);
});

test("without tokens, agents that connect get inboxes only up to --max-agents, and a send creates none", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  broker = await startBroker({ args: ["--max-agents", "4"] });
  assert.equal((await fetch(`${broker.url}/poll?agent=leo`)).status, 200);
  assert.equal((await publish(broker.url, "hermes", "leo", { text: "one" })).status, 200);
  assert.equal((await fetch(`${broker.url}/poll?agent=cron`)).status, 200);
  const typo = await publish(broker.url, "hermes", "herems", { text: "a typo" });
  assert.equal(typo.status, 404);
  assert.equal((await typo.json()).code, "unknown_agent");
  const refused = await fetch(`${broker.url}/poll?agent=another`);
  assert.equal(refused.status, 507);
  assert.equal((await refused.json()).code, "too_many_agents");
  assert.deepEqual(await agents(broker.url), ["cron", "hermes", "leo", "openclaw"]);
});

test("the rate limiter counts each recipient of a broadcast, so fan-out is no cheaper a flood", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  // 5 per second, bursts of 10: two broadcasts to five agents use it up.
  broker = await startBroker({ args: ["--rate-limit", "5", "--agents", "hermes,a1,a2,a3,a4,a5"] });
  assert.equal((await publish(broker.url, "hermes", undefined, { text: "first" })).status, 200);
  assert.equal((await publish(broker.url, "hermes", undefined, { text: "second" })).status, 200);
  const limited = await publish(broker.url, "hermes", undefined, { text: "third" });
  assert.equal(limited.status, 429);
  assert.equal((await limited.json()).code, "rate_limited");
});

test("one full inbox does not stop a broadcast to the others, and the answer says who was refused", async (t) => {
  let broker: RunningBroker | undefined;
  t.after(() => broker?.cleanup());
  broker = await startBroker({ args: ["--max-pending", "2", "--agents", "hermes,openclaw,junk"] });
  for (const text of ["1", "2"]) assert.equal((await publish(broker.url, "hermes", "junk", { text })).status, 200);
  const toFull = await publish(broker.url, "hermes", "junk", { text: "3" });
  assert.equal(toFull.status, 507, "a publish to the full inbox alone is refused");
  assert.equal((await toFull.json()).code, "inbox_full");

  const broadcast = await publish(broker.url, "hermes", undefined, { text: "for everyone" });
  assert.equal(broadcast.status, 200);
  const answer = await broadcast.json();
  assert.deepEqual(answer.to, ["openclaw"]);
  assert.equal(answer.refused.length, 1);
  assert.equal(answer.refused[0].agent, "junk");
  assert.equal(answer.refused[0].code, "inbox_full");
  assert.match(answer.refused[0].reason, /junk has 2 undelivered messages \(the cap is 2\)/);
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["for everyone"]);
});
