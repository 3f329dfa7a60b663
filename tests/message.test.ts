import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { InteropError } from "../src/errors.ts";
import { type AgentName, fromWire, MAX_JSON_DEPTH, parseAgentName, parseBatch, parsePayload, toWire, wireJson } from "../src/message.ts";
import { VERSION } from "../src/version.ts";
import { countJsonParses } from "./helpers/json_parses.ts";

function assertRejects(work: () => unknown, code: string, pattern: RegExp) {
  assert.throws(work, (error: unknown) => {
    assert.ok(error instanceof InteropError);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

test("parseAgentName() accepts lowercase names with digits, dots, dashes and underscores", () => {
  for (const name of ["hermes", "openclaw", "leo-2", "a.b_c", "0", "x".repeat(64)]) {
    assert.equal(parseAgentName(name), name);
  }
});

test("parseAgentName() rejects slashes, spaces, control characters, empty and over-long names", () => {
  assertRejects(() => parseAgentName("a/b"), "invalid_agent", /"a\/b"/);
  assertRejects(() => parseAgentName("a b"), "invalid_agent", /Invalid agent name/);
  assertRejects(() => parseAgentName("a\nb"), "invalid_agent", /Invalid agent name/);
  assertRejects(() => parseAgentName("a\u0000"), "invalid_agent", /Invalid agent name/);
  assertRejects(() => parseAgentName("Hermes"), "invalid_agent", /a-z 0-9/);
  assertRejects(() => parseAgentName("-x"), "invalid_agent", /starting with a letter or digit/);
  assertRejects(() => parseAgentName(""), "invalid_agent", /Missing agent name/);
  assertRejects(() => parseAgentName(null, "from"), "invalid_agent", /pass from=NAME/);
  assertRejects(() => parseAgentName("x".repeat(65)), "invalid_agent", /longer than 64/);
});

test("parsePayload() keeps every field of a JSON object as posted", () => {
  const posted = { message: "hi", from: "hermes", id: "client-7", nested: { a: [1, 2] }, emoji: "🦉" };
  assert.deepEqual(parsePayload(JSON.stringify(posted), "application/json"), posted);
  assert.deepEqual(parsePayload(JSON.stringify(posted), null), posted);
});

test("parsePayload() wraps text/plain bodies as {text} unless they are a JSON object", () => {
  assert.deepEqual(parsePayload("hello\nworld", "text/plain; charset=utf-8"), { text: "hello\nworld" });
  assert.deepEqual(parsePayload("[1]", "text/plain"), { text: "[1]" });
  assert.deepEqual(parsePayload('{"a":1}', "text/plain;charset=UTF-8"), { a: 1 });
  assert.deepEqual(parsePayload('{"a":1}', "application/x-www-form-urlencoded"), { a: 1 });
});

test("parsePayload() rejects invalid JSON, non-objects, empty bodies and the reserved field", () => {
  assertRejects(() => parsePayload("{nope", "application/json"), "invalid_json", /Invalid JSON body/);
  assertRejects(() => parsePayload("[1,2]", null), "invalid_body", /must be an object/);
  assertRejects(() => parsePayload('"hi"', null), "invalid_body", /must be an object/);
  assertRejects(() => parsePayload("null", null), "invalid_body", /must be an object/);
  assertRejects(() => parsePayload("  ", null), "invalid_body", /Empty body/);
  assertRejects(() => parsePayload('{"interop":1}', null), "invalid_body", /reserved/);
});

/** A JSON object whose objects and arrays nest `levels` deep (the outer object is level 1). */
function nested(levels: number): string {
  return '{"a":'.repeat(levels - 1) + "[]" + "}".repeat(levels - 1);
}

test("parsePayload() refuses JSON nested deeper than MAX_JSON_DEPTH levels with invalid_body naming the limit", () => {
  assert.equal(MAX_JSON_DEPTH, 100);
  assert.doesNotThrow(() => parsePayload(nested(MAX_JSON_DEPTH), "application/json"));
  const tooDeep = new RegExp(`nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels`);
  assertRejects(() => parsePayload(nested(MAX_JSON_DEPTH + 1), "application/json"), "invalid_body", tooDeep);
  // Text stays text however it nests (a message of brackets, JSON or not, is a message).
  assert.deepEqual(parsePayload(nested(MAX_JSON_DEPTH + 1), "text/plain"), { text: nested(MAX_JSON_DEPTH + 1) });
  // Deep enough to overflow JSON.stringify's stack on Node 24: refused all the same, without overflowing anything.
  assertRejects(() => parsePayload(nested(100_000), null), "invalid_body", tooDeep);
});

test("parsePayload() and parseBatch() refuse deep brackets before JSON.parse reads them, and keep text that is no object or nests deeper as text", async () => {
  // JSON.parse took about a second on this 1 MiB body (Node 24), stalling every other request meanwhile.
  const brackets = "[".repeat(500_000) + "]".repeat(500_000);
  const { parses } = await countJsonParses(() => {
    const tooDeep = /nests objects and arrays deeper than 100 levels/;
    for (const contentType of ["application/json", null]) {
      assertRejects(() => parsePayload(`{"a":${brackets}}`, contentType), "invalid_body", tooDeep);
    }
    assert.deepEqual(parsePayload(`{"a":${brackets}}`, "text/plain"), { text: `{"a":${brackets}}` });
    assertRejects(() => parsePayload(brackets, "application/json"), "invalid_body", tooDeep);
    assertRejects(() => parseBatch(`{"n":1}\n{"a":${brackets}}`), "invalid_body", tooDeep);
    // Text that is no JSON object whatever it parses to is stored as it was, unparsed.
    assert.deepEqual(parsePayload(brackets, "text/plain"), { text: brackets });
    assert.deepEqual(parsePayload(" [1]", "text/plain"), { text: " [1]" });
  });
  assert.equal(parses, 1, "only the batch's first line, which is shallow, was parsed");
});

test("parsePayload() counts no bracket inside a string, escaped quotes and backslashes included", () => {
  // Encoded, these strings end in an escaped backslash (\\") and hold escaped quotes (\"): neither ends a string early.
  const posted = { text: "[{".repeat(500) + "\\", quoted: '"' + "{".repeat(200) + '\\"[', list: [[1], { b: "]" }] };
  assert.deepEqual(parsePayload(JSON.stringify(posted), "application/json"), posted);
});

test("parsePayload() refuses a number a 64-bit float would not keep, and keeps every other as its value (red team 63)", () => {
  // JSON.parse read these as other values, stored and delivered as such, acknowledged as sent.
  for (const number of ["12345678901234567890", "-9007199254740993", "123456789012345678", "1e400", "-1e400", "1e-400", "1.00000000000000000001"]) {
    assertRejects(
      () => parsePayload(`{"list":[1,{"n":${number}}]}`, "application/json"),
      "invalid_body",
      new RegExp(`^Invalid body: the number ${number.replace(/[.+-]/g, "\\$&")} would not be kept exactly .*send it as a string, like "`),
    );
  }
  // The same value however written, floats' own shortest forms, a float written with 17 digits (C's %.17g, older
  // PHP), its exact expansion, and the extremes a float holds.
  for (
    const number of [
      "9007199254740992",
      "123456789012345",
      "0.1",
      "0.30000000000000004",
      // A float's shortest form that toPrecision(16) writes otherwise (…443.25 lies halfway: it rounds up).
      "727327494183443.2",
      "0.10000000000000001",
      "0.1000000000000000055511151231257827",
      "1.0",
      "1E+2",
      "-0",
      "5e-324",
      "1.7976931348623157e308",
      "0e99999999",
      "-12.5e-3",
    ]
  ) {
    assert.equal(parsePayload(`{"n":${number}}`, null).n, Number(number), number);
  }
  // A string holds any digits; text stays text; a long number is named shortened.
  assert.deepEqual(parsePayload('{"id":"12345678901234567890"}', null), { id: "12345678901234567890" });
  assert.deepEqual(parsePayload('{"id":12345678901234567890}', "text/plain"), { text: '{"id":12345678901234567890}' });
  assertRejects(() => parsePayload(`{"n":${"9".repeat(1000)}}`, null), "invalid_body", /the number 9{37}\.\.\. would not be kept/);
  assertRejects(() => parseBatch('{"n":1}\n{"n":18446744073709551615}'), "invalid_body", /^Line 2 of the batch: Invalid body: the number 18446744073709551615/);
  // Digits in text that is no JSON are JSON.parse's to refuse, as the invalid JSON they are.
  assertRejects(() => parsePayload("{abc12345678901234567890}", null), "invalid_json", /^Invalid JSON body/);
});

test("parseBatch() names the batch line nested too deep and keeps nothing", () => {
  assertRejects(
    () => parseBatch(`{"n":1}\n${nested(MAX_JSON_DEPTH + 1)}\n{"n":3}`),
    "invalid_body",
    /^Line 2 of the batch: Invalid body: the JSON nests objects and arrays deeper than 100 levels.*; nothing of the batch was stored$/,
  );
});

test("toWire() adds the metadata under interop and fromWire() reads it back", () => {
  const envelope = {
    id: 42,
    from: "hermes" as AgentName,
    to: "openclaw" as AgentName,
    timestamp: "2026-11-25T10:00:00.000Z",
    payload: { message: "hi", id: "mine" },
  };
  const wire = toWire(envelope);
  assert.deepEqual(wire, {
    message: "hi",
    id: "mine",
    interop: { id: 42, from: "hermes", to: "openclaw", timestamp: "2026-11-25T10:00:00.000Z" },
  });
  assert.deepEqual(fromWire(JSON.parse(JSON.stringify(wire))), envelope);
  assertRejects(() => fromWire({ message: "no metadata" }), "invalid_body", /no "interop" metadata/);
});

test("wireJson() is the text of JSON.stringify(toWire()) for each copy of a shared payload, in any order of payloads", () => {
  const shared = { b: 1, "1": "integer keys come first", text: "line\nbreak \u2028", nested: { "\"": [null] } };
  const envelope = (id: number, to: string, payload: Record<string, unknown>) => ({
    id,
    from: "hub" as AgentName,
    to: to as AgentName,
    timestamp: "2026-11-30T01:00:00.000Z",
    payload,
  });
  const copies = [
    envelope(1, "fan0", shared),
    envelope(2, "fan1", shared),
    envelope(3, "fan2", {}),
    { ...envelope(4, "fan3", shared), thread: { replyTo: 1, conversation: 1, hops: 1, context: "ctx" } },
    envelope(5, "fan4", { ...shared, b: 2 }),
    envelope(6, "fan5", shared),
  ];
  for (const copy of copies) assert.equal(wireJson(copy), JSON.stringify(toWire(copy)));
});

test("VERSION matches package.json", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(VERSION, pkg.version);
});

test("wireJson() encodes anew what envelopes sharing a payload object differ in: the sender, the time, the thread", () => {
  const payload = { text: "same object" };
  const base = { id: 1, from: "hub" as AgentName, to: "fan0" as AgentName, timestamp: "2026-11-30T01:00:00.000Z", payload };
  const thread = { replyTo: 1, conversation: 1, hops: 1 };
  const envelopes = [
    base,
    { ...base, id: 2, from: "hermes" as AgentName },
    { ...base, id: 3, timestamp: "2026-11-30T01:00:00.001Z" },
    { ...base, id: 4, thread },
    { ...base, id: 5, thread: { ...thread, context: "ctx" } },
    { ...base, id: 6, to: "a\"quoted\\name" as AgentName },
    { ...base, id: 7 },
  ];
  for (const envelope of envelopes) assert.equal(wireJson(envelope), JSON.stringify(toWire(envelope)));
});
