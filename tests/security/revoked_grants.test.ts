/**
 * Red team, session 50: what a token started, or was granted for a time, outlived its revocation.
 * - A request's token is checked at its head; a body sent in parts (chunked, or past what is read with the head) came
 *   up to --request-timeout later, and the request was then carried out for the revoked token: it published as the
 *   revoked agent, or parked its dead letters (8 of 8 routes and modes).
 * - A question published with `hold_reply` held its reply, and all after it, from the agent's new token's readers
 *   for the hold's hour after the token that made it was revoked (4 of 4).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, waitFor } from "../helpers/broker.ts";
import { rawClient } from "../helpers/raw_client.ts";
import { bearer, brokerWithTokens, createToken } from "../helpers/tokens.ts";

/** A broker with tokens (`brokerWithTokens`), and what an agent's inbox holds. */
async function brokerWithInboxes(t: { after(fn: () => unknown): void }) {
  const { broker, dir, tokens, revokeHermes } = await brokerWithTokens(t);
  /** `agent`'s pending messages' texts, taking none. */
  const pending = async (agent: string): Promise<string[]> => {
    const inbox = await (await fetch(`${broker.url}/poll?agent=${agent}&peek=1`, { headers: bearer(tokens.admin) })).json();
    return inbox.map((message: { text?: string }) => message.text);
  };
  return { broker, dir, tokens, revokeHermes, pending };
}

/**
 * A request whose head and the start of its body are sent now, and the rest when `finish` is called, on a connection
 * of its own (closed after the test): its answer's status and JSON body, once the broker closed the connection.
 */
async function requestInParts(t: { after(fn: () => unknown): void }, url: string, head: string, firstPart: string, rest: string) {
  const client = await rawClient(url, head + firstPart, (client) => t.after(() => client.socket.destroy()));
  const answer = async (): Promise<{ status: number; body: { code?: string; error?: string } }> => {
    await waitFor(() => client.closed(), 10_000, "the answer");
    const received = client.received();
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1]);
    const text = received.slice(received.indexOf("\r\n\r\n") + 4);
    return { status, body: JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1) || "{}") };
  };
  return { answer, finish: () => client.socket.write(rest) };
}

const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;

/** The head of a request with the caller's token and `connection: close`; chunked unless `length` is given. */
function head(method: string, path: string, token: string, length?: number): string {
  const framing = length === undefined ? "transfer-encoding: chunked" : `content-length: ${length}`;
  return `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n` +
    `content-type: application/json\r\n${framing}\r\nconnection: close\r\n\r\n`;
}

/** Requests that publish as hermes, each with its body split where it is sent in two parts. */
function publishesInParts(token: string) {
  const message = JSON.stringify({ text: "published after the revocation" });
  const rpc = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "SendMessage",
    params: { message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "published after the revocation" }] }, configuration: { returnImmediately: true } },
  });
  // Past the 64 KiB the bare socket reads with a head: such a body is read after its request has started.
  const big = JSON.stringify({ text: "published after the revocation", padding: "x".repeat(100_000) });
  return {
    "a chunked /broadcast": [head("POST", "/broadcast?from=hermes&to=openclaw", token), chunk(message.slice(0, 5)), chunk(message.slice(5)) + "0\r\n\r\n"],
    "a chunked /ask": [head("POST", "/ask?from=hermes&to=openclaw&timeout=5", token), chunk(message.slice(0, 5)), chunk(message.slice(5)) + "0\r\n\r\n"],
    "a chunked A2A SendMessage": [head("POST", "/a2a/openclaw", token), chunk(rpc.slice(0, 5)), chunk(rpc.slice(5)) + "0\r\n\r\n"],
    "a /broadcast past 64 KiB": [head("POST", "/broadcast?from=hermes&to=openclaw", token, Buffer.byteLength(big)), big.slice(0, 70_000), big.slice(70_000)],
  };
}

for (const [name, [requestHead, firstPart, rest]] of Object.entries(publishesInParts("TOKEN"))) {
  test(`${name} whose body arrives after its token was revoked gets 401 and publishes nothing`, async (t) => {
    const { broker, tokens, revokeHermes, pending } = await brokerWithInboxes(t);
    assert.equal((await fetch(`${broker.url}/poll?agent=openclaw`, { headers: bearer(tokens.openclaw) })).status, 200);
    const request = await requestInParts(t, broker.url, requestHead.replace("TOKEN", tokens.hermes), firstPart, rest);
    // The head let in (its token checked) before the revocation.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await revokeHermes();
    request.finish();
    const { status, body } = await request.answer();
    assert.equal(status, 401, JSON.stringify(body));
    assert.equal(body.code, "unauthorized");
    assert.match(body.error ?? "", /revoked while the request's body arrived/);
    assert.deepEqual(await pending("openclaw"), []);
  });
}

test("a dead letter whose body arrives after its token was revoked is not parked: the message stays pending", async (t) => {
  const { broker, tokens, revokeHermes, pending } = await brokerWithInboxes(t);
  assert.equal((await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(tokens.hermes) })).status, 200);
  const sent = await publish(broker.url, "openclaw", "hermes", { text: "refused later" }, bearer(tokens.openclaw));
  const { id } = await sent.json();
  const letter = JSON.stringify({ id, reason: "parked by a revoked token" });
  const request = await requestInParts(t, broker.url, head("POST", "/dead-letters?agent=hermes", tokens.hermes), chunk(letter.slice(0, 5)), chunk(letter.slice(5)) + "0\r\n\r\n");
  await new Promise((resolve) => setTimeout(resolve, 500));
  await revokeHermes();
  request.finish();
  assert.equal((await request.answer()).status, 401);
  assert.deepEqual(await pending("hermes"), ["refused later"]);
  const letters = await (await fetch(`${broker.url}/dead-letters?agent=hermes`, { headers: bearer(tokens.admin) })).json();
  assert.deepEqual(letters, []);
});

test("a hold_reply ends with the token that made it: the reply, and what follows, reach the agent's new token", async (t) => {
  const { broker, dir, tokens, revokeHermes } = await brokerWithInboxes(t);
  const question = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw&hold_reply=3600`, {
    method: "POST",
    headers: { ...bearer(tokens.hermes), "content-type": "application/json" },
    body: JSON.stringify({ text: "a question" }),
  });
  assert.equal(question.status, 200);
  const { id } = await question.json();
  const reply = await fetch(`${broker.url}/broadcast?from=openclaw&to=hermes&reply_to=${id}`, {
    method: "POST",
    headers: { ...bearer(tokens.openclaw), "content-type": "application/json" },
    body: JSON.stringify({ text: "the reply" }),
  });
  assert.equal(reply.status, 200);
  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "after the reply" }, bearer(tokens.openclaw))).status, 200);
  // Held while the token that asked lives: its readers in order see nothing yet.
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`, { headers: bearer(tokens.hermes) })).json(), []);

  await revokeHermes();
  const renewed = await createToken(dir.path, "hermes");
  let texts: string[] = [];
  await waitFor(async () => {
    const inbox = await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`, { headers: bearer(renewed) })).json();
    texts = inbox.map((message: { text: string }) => message.text);
    return texts.length === 2;
  }, 5000, "the held reply to reach the new token");
  assert.deepEqual(texts, ["the reply", "after the reply"]);
});
