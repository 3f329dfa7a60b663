/** Bodies nested past the documented depth are refused at parse, alone: the publishes beside them are stored. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_JSON_DEPTH } from "../../src/message.ts";
import { startBroker } from "../helpers/broker.ts";

/** A JSON object nesting `levels` deep: past ~4,400 levels Node 24's JSON.stringify overflows its stack. */
function nested(levels: number): string {
  return '{"a":'.repeat(levels - 1) + "[]" + "}".repeat(levels - 1);
}

test("bodies nested 5,000 deep get 400 each while 120 ordinary publishes sent at the same time all get 200 and are stored", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const poison = nested(5000);
  const post = (path: string, body: string, contentType: string) =>
    fetch(`${broker.url}${path}`, { method: "POST", headers: { "content-type": contentType }, body });
  const sends: Array<{ poisoned: boolean; sent: Promise<Response> }> = [];
  for (let n = 0; n < 160; n++) {
    const poisoned = n % 4 === 0;
    // The poisoned ones come as single bodies, as a line of a batch, and as ntfy's JSON publish (deep tags).
    const sent = !poisoned
      ? post("/broadcast?from=hermes&to=openclaw", JSON.stringify({ n }), "application/json")
      : n % 3 === 0
      ? post("/broadcast?from=hermes&to=openclaw", poison, "application/json")
      : n % 3 === 1
      ? post("/broadcast?from=hermes&to=openclaw", `{"n":-1}\n${poison}\n`, "application/x-ndjson")
      : post("/ntfy", `{"topic":"openclaw","message":"x","tags":${"[".repeat(5000)}${"]".repeat(5000)}}`, "application/json");
    sends.push({ poisoned, sent });
  }

  const answers = await Promise.all(sends.map(async ({ poisoned, sent }) => {
    const response = await sent;
    return { poisoned, status: response.status, body: await response.json() };
  }));
  const tally = new Map<string, number>();
  for (const { poisoned, status, body } of answers) {
    const key = `${poisoned ? "poisoned" : "ordinary"} ${status} ${body.code ?? ""}`.trim();
    tally.set(key, (tally.get(key) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(tally), { "ordinary 200": 120, "poisoned 400 invalid_body": 40 });
  for (const { body } of answers.filter((answer) => answer.poisoned)) {
    assert.match(body.error, new RegExp(`nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels`));
  }

  const stored = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(
    stored.map((message: { n: number }) => message.n).sort((a: number, b: number) => a - b),
    answers.flatMap((answer, n) => answer.poisoned ? [] : [n]),
    "every ordinary publish stored once, nothing of a poisoned one",
  );
  assert.doesNotMatch(broker.log(), / error: /, "no internal error logged");
});
