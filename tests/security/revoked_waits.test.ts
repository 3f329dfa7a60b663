/**
 * Issue 13, hole 4: a /wait (or /ask) opened with a token that is then revoked was still handed a message
 * published after the revocation. It ends as the token's streams do, and takes nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, waitFor } from "../helpers/broker.ts";
import { bearer, brokerWithTokens, revokeTokens } from "../helpers/tokens.ts";

/** A broker with tokens (`brokerWithTokens`), and requests left open on it, cancelled when the test ends. */
async function brokerWithWaits(t: { after(fn: () => unknown): void }) {
  const pending: Array<AbortController> = [];
  t.after(() => {
    for (const controller of pending) controller.abort();
  });
  const { broker, tokens, revokeHermes } = await brokerWithTokens(t);
  const open = (path: string, init: RequestInit): Promise<Response> => {
    const controller = new AbortController();
    pending.push(controller);
    return fetch(`${broker.url}${path}`, { ...init, signal: controller.signal });
  };
  const waiting = async (agent: string): Promise<number> =>
    (await (await fetch(`${broker.url}/status`, { headers: bearer(tokens.admin) })).json()).agents[agent]?.waiting ?? 0;
  return { broker, tokens, open, waiting, revokeHermes };
}

/** `answer`, or a failure if it has not come within `ms`: "at once" with room for a loaded machine. */
function within<T>(answer: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms)));
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

test("a /wait whose token is revoked ends at once, and a message published after stays in the inbox", async (t) => {
  const { broker, tokens, open, waiting, revokeHermes } = await brokerWithWaits(t);
  const wait = open("/wait?agent=hermes&timeout=600", { headers: bearer(tokens.hermes) });
  await waitFor(async () => await waiting("hermes") === 1, 10_000, "the wait to be registered");

  await revokeHermes();
  const ended = await within(wait, 3000, "the revoked token's wait");
  assert.equal(ended.status, 401);
  assert.equal((await ended.json()).code, "unauthorized");
  assert.equal(await waiting("hermes"), 0);

  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "published after the revocation" }, bearer(tokens.openclaw))).status, 200);
  const inbox = await (await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(tokens.admin) })).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["published after the revocation"]);
});

// Red team, session 44: a publish within the second after `interop token revoke` returned was handed to the revoked
// token's wait (8 of 8 runs), and the token itself still worked: the broker read its tokens.json once a second.
test("a publish right after `interop token revoke` returns is not handed to the revoked token's wait, nor the token served", async (t) => {
  const { broker, tokens, open, waiting } = await brokerWithWaits(t);
  const wait = open("/wait?agent=hermes&timeout=600", { headers: bearer(tokens.hermes) });
  await waitFor(async () => await waiting("hermes") === 1, 10_000, "the wait to be registered");

  await revokeTokens(broker.dataDir, "hermes");
  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "published after the revocation" }, bearer(tokens.openclaw))).status, 200);
  const ended = await within(wait, 3000, "the revoked token's wait");
  assert.equal(ended.status, 401);
  assert.equal((await fetch(`${broker.url}/status`, { headers: bearer(tokens.hermes) })).status, 401);
  const inbox = await (await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(tokens.admin) })).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["published after the revocation"]);
});

test("an /ask whose token is revoked ends at once, and the reply stays in the asker's inbox", async (t) => {
  const { broker, tokens, open, waiting, revokeHermes } = await brokerWithWaits(t);
  const ask = open("/ask?from=hermes&to=openclaw&timeout=600", {
    method: "POST",
    headers: { ...bearer(tokens.hermes), "content-type": "application/json" },
    body: JSON.stringify({ text: "ready?" }),
  });
  await waitFor(async () => await waiting("hermes") === 1, 10_000, "the ask to wait");
  const [question] = await (await fetch(`${broker.url}/poll?agent=openclaw`, { headers: bearer(tokens.openclaw) })).json();

  await revokeHermes();
  const ended = await within(ask, 3000, "the revoked token's ask");
  assert.equal(ended.status, 401);
  assert.equal((await ended.json()).code, "unauthorized");

  const replied = await fetch(`${broker.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, {
    method: "POST",
    headers: { ...bearer(tokens.openclaw), "content-type": "application/json" },
    body: JSON.stringify({ text: "ready" }),
  });
  assert.equal(replied.status, 200);
  const inbox = await (await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(tokens.admin) })).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["ready"]);
});

// sec30: a lease a revoked token held kept its agent's inbox from the agent's new token for what it had left, up to 300 s.
for (const leasing of ["/poll?agent=hermes&peek=1&lease=300", "/wait?agent=hermes&peek=1&lease=300&timeout=5"]) {
  test(`a lease granted to a token (${leasing}) ends once the token is revoked: another reader takes at once, not in 300 s`, async (t) => {
    const { broker, tokens, revokeHermes } = await brokerWithWaits(t);
    assert.equal(
      (await publish(broker.url, "openclaw", "hermes", { text: "shown under the lease" }, bearer(tokens.openclaw)))
        .status,
      200,
    );
    const peek = await fetch(`${broker.url}${leasing}`, { headers: bearer(tokens.hermes) });
    assert.equal(peek.status, 200);
    assert.ok(peek.headers.get("interop-lease"));
    await peek.body?.cancel();

    await revokeHermes();
    // The operator's token reads hermes's inbox, as hermes's next token would: refused 409 while the lease holds.
    const take = () => fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(tokens.admin) });
    const deadline = Date.now() + 5000;
    let taken = await take();
    while (taken.status === 409 && Date.now() < deadline) {
      await taken.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 50));
      taken = await take();
    }
    assert.equal(taken.status, 200, "the revoked token's lease ended within 5 s");
    assert.deepEqual((await taken.json()).map((message: { text: string }) => message.text), ["shown under the lease"]);
  });
}
