/**
 * Numbers a 64-bit float would not keep are refused on every route a message comes in by, never stored changed (red
 * team 63: 12345678901234567890 was stored and delivered as 12345678901234567000, 1e400 as null, and a retry under the
 * same Idempotency-Key with another such number was answered as the first message, the second never stored).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startBroker } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

const BIG = "12345678901234567890";

test("a number a float would not keep gets 400 on /broadcast, a batch, ntfy, A2A and interop send; others arrive as their value", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const tokens = { hermes: await createToken(dir.path, "hermes"), openclaw: await createToken(dir.path, "openclaw") };
  const broker = await startBroker({ dataDir: dir.path });
  t.after(() => broker.cleanup());
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${broker.url}${path}`, { method: "POST", headers: { ...bearer(tokens.hermes), "content-type": "application/json", ...headers }, body });
  const refusals: Array<[string, Response]> = [
    ["broadcast", await post("/broadcast?from=hermes&to=openclaw", `{"amount":${BIG}}`, { "idempotency-key": "k1" })],
    // The retry a sender makes with the number it meant: refused too, not answered as the first.
    ["retry", await post("/broadcast?from=hermes&to=openclaw", `{"amount":${BIG.slice(0, -1)}1}`, { "idempotency-key": "k1" })],
    ["overflow", await post("/broadcast?from=hermes&to=openclaw", '{"n":1e400}')],
    ["batch", await post("/broadcast?from=hermes&to=openclaw", `{"n":1}\n{"n":${BIG}}\n`, { "content-type": "application/x-ndjson" })],
    ["ntfy", await post("/ntfy", `{"topic":"openclaw","message":"x","tags":[${BIG}]}`)],
  ];
  for (const [route, response] of refusals) {
    const body = await response.json();
    assert.equal(response.status, 400, `${route}: ${JSON.stringify(body)}`);
    assert.equal(body.code, "invalid_body", route);
    assert.match(body.error, /^(Line 2 of the batch: )?Invalid body: the number \S+ would not be kept exactly .*send it as a string/, route);
  }

  const a2a = await post("/a2a/openclaw", `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1",` +
    `"role":"ROLE_USER","parts":[{"data":{"order":${BIG}}}]}}}`);
  const answer = await a2a.json();
  assert.equal(answer.error?.code, -32600, JSON.stringify(answer));
  assert.match(answer.error.message, new RegExp(`the number ${BIG} would not be kept exactly`));

  const sent = await runCli(["send", "--from", "hermes", "--to", "openclaw", "-d", `{"amount":${BIG}}`], {
    env: { INTEROP_URL: broker.url, INTEROP_TOKEN: tokens.hermes },
  });
  assert.equal(sent.code, 2, sent.stderr);
  assert.match(sent.stderr, new RegExp(`^error: Invalid --data: the number ${BIG} would not be kept exactly .*; see 'interop send --help'\\n$`));

  // Nothing of any of them was stored; a message with numbers a float keeps arrives as their values.
  const kept = await post("/broadcast?from=hermes&to=openclaw", '{"n":[0.1,9007199254740992,1.0,-12.5e-3,1E+2]}');
  assert.equal(kept.status, 200);
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`, { headers: bearer(tokens.openclaw) })).json();
  assert.deepEqual(inbox.map((message: { n: unknown }) => message.n), [[0.1, 9007199254740992, 1, -0.0125, 100]]);
});
