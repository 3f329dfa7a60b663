import assert from "node:assert/strict";
import { test } from "node:test";
import { headerText } from "../src/http/header_text.ts";

/** A header value as the runtimes hand it over: the UTF-8 bytes read one character per byte. */
const asLatin1 = (text: string) => Buffer.from(text, "utf8").toString("latin1");

test("headerText() reads UTF-8 bytes as UTF-8 and keeps latin1 that is not UTF-8", () => {
  assert.equal(headerText(asLatin1("café ✓ 日本 🚀")), "café ✓ 日本 🚀");
  assert.equal(headerText("caf\u00e9"), "café", "0xE9 alone is not UTF-8: it stays latin1");
  assert.equal(headerText("plain ascii"), "plain ascii");
  assert.equal(headerText("déjà ✓"), "déjà ✓", "a value the runtime already decoded stays");
});

test("headerText() decodes RFC 2047 encoded words as Go's mime.WordDecoder does", () => {
  assert.equal(headerText("=?UTF-8?B?Y2Fmw6k=?="), "café");
  assert.equal(headerText("=?utf-8?q?caf=C3=A9_au_lait?="), "café au lait");
  assert.equal(headerText("=?UTF-8?Q?a?=  =?UTF-8?Q?b?="), "ab", "white space between two words is dropped");
  assert.equal(headerText("x =?UTF-8?Q?a?= y =?UTF-8?Q?b?= z"), "x a y b z", "text between words stays");
  assert.equal(headerText("=?ISO-8859-1?Q?caf=E9?="), "café");
  assert.equal(headerText("=?UTF-8?Q?a=ZZ?= ok"), "=?UTF-8?Q?a=ZZ?= ok", "a malformed word stays as sent");
  assert.equal(headerText("=?x-no-such-charset?Q?a?= =?UTF-8?Q?b?="), "=?x-no-such-charset?Q?a?= =?UTF-8?Q?b?=", "an unknown charset keeps the whole value");
  assert.equal(headerText("a =? b ?= c"), "a =? b ?= c");
});
