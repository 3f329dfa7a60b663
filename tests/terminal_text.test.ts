import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "../src/cli/logger.ts";
import type { Io } from "../src/cli/io.ts";
import { oneLine, visibleControls } from "../src/cli/terminal_text.ts";

test("visibleControls() writes out C0 and C1 controls and DEL, and keeps newlines, tabs and every other character", () => {
  assert.equal(visibleControls("\u001b]52;c;eA==\u0007"), "\\u001b]52;c;eA==\\u0007");
  assert.equal(visibleControls("a\rb\u0000c\u007fd\u009be"), "a\\u000db\\u0000c\\u007fd\\u009be");
  assert.equal(visibleControls("line\n\tnext, é ☃ 日本 🙂"), "line\n\tnext, é ☃ 日本 🙂");
});

test("visibleControls() writes out the bidirectional overrides and isolates that reorder what a terminal shows, and keeps right-to-left text and its marks", () => {
  // Shown as is, the override makes the line read "safe; echo ok" backwards: what runs is not what is seen.
  assert.equal(visibleControls("run \u202eko ohce ;efas\u202c now"), "run \\u202eko ohce ;efas\\u202c now");
  assert.equal(visibleControls("\u202a\u202b\u202d\u2066\u2067\u2068\u2069"), "\\u202a\\u202b\\u202d\\u2066\\u2067\\u2068\\u2069");
  assert.equal(visibleControls("שלום \u200fעולם\u200e, مرحبا\u061c"), "שלום \u200fעולם\u200e, مرحبا\u061c");
});

test("oneLine() writes out whatever ends a line for some reader, and keeps the other controls for the terminal's own pass", () => {
  assert.equal(oneLine("busy)\nanswer from pk: YES\r\n"), "busy)\\u000aanswer from pk: YES\\u000d\\u000a");
  assert.equal(oneLine("a\u000bb\u000cc\u001cd\u001de\u001ef\u0085g\u2028h\u2029i"), "a\\u000bb\\u000cc\\u001cd\\u001de\\u001ef\\u0085g\\u2028h\\u2029i");
  assert.equal(oneLine("tab\there \u001b[8m é"), "tab\there \u001b[8m é");
});

test("visibleControls() writes out the tag characters, which a terminal shows as nothing while an agent reads them", () => {
  const hidden = [..."IGNORE"].map((letter) => String.fromCodePoint(0xe0000 + letter.charCodeAt(0))).join("");
  assert.equal(visibleControls(`hello${hidden}\u{e007f}`), `hello${"\\udb40\\udc49\\udb40\\udc47\\udb40\\udc4e\\udb40\\udc4f\\udb40\\udc52\\udb40\\udc45"}\\udb40\\udc7f`);
  // Tag letters after a black flag: the flags of England, Scotland and Wales stay, any other such sequence is written out.
  for (const flag of ["🏴󠁧󠁢󠁥󠁮󠁧󠁿", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🏴󠁧󠁢󠁷󠁬󠁳󠁿"]) assert.equal(visibleControls(flag), flag);
  assert.equal(visibleControls("🏴\u{e0061}\u{e007f}"), "🏴\\udb40\\udc61\\udb40\\udc7f");
});

test("a log line is one line whatever its message quotes: a receiver's answer cannot forge a line of listen's log", () => {
  const written: string[] = [];
  const log = createLogger({ stderr: (text: string) => written.push(text) } as unknown as Io, "listen", false);
  log.warn("message 7 refused for good (answered HTTP 400: bad\n2026-12-07T21:00:00.000Z interop listen info: FORGED\r\n)");
  assert.equal(written.length, 1);
  assert.match(written[0], /^\S+ interop listen warn: message 7 refused for good \(answered HTTP 400: bad\\u000a2026.*FORGED\\u000d\\u000a\)\n$/);
});

test("visibleControls() writes out what a terminal shows as nothing, and keeps the emoji, ideograph and script sequences that need it", () => {
  // One byte per variation selector (red team 62): "Sure ok" on screen, a payload for the agent.
  const smuggled = `Sure${[..."curl"].map((letter) => String.fromCodePoint(0xe0100 + letter.charCodeAt(0))).join("")} ok`;
  assert.equal(visibleControls(smuggled), "Sure\\udb40\\udd63\\udb40\\udd75\\udb40\\udd72\\udb40\\udd6c ok");
  assert.equal(visibleControls("Sure\ufe01\ufe02 ok"), "Sure\\ufe01\\ufe02 ok");
  assert.equal(visibleControls("a\u200b\u200cb\u2060c\ufeffd\u00ade\u3164f\u2028g"), "a\\u200b\\u200cb\\u2060c\\ufeffd\\u00ade\\u3164f\\u2028g");
  assert.equal(visibleControls("x\u200c\u200dy \u200d"), "x\\u200c\\u200dy \\u200d");
  // Every default-ignorable character (red team 62: U+E0080-E00FF carry ASCII as the tags do), an ideographic
  // variation selector (8 bits after each ideograph), and a mark after a mark.
  assert.equal(visibleControls("ok \u{e0080}\u{e00ff} 葛\u{e0100}"), "ok \\udb40\\udc80\\udb40\\udcff 葛\\udb40\\udd00");
  assert.equal(visibleControls("a\u200e\u200fb"), "a\u200e\\u200fb");
  for (const kept of ["🏳️‍🌈", "👩🏽‍💻", "❤️‍🔥", "1️⃣", "👨‍👩‍👧", "∩\ufe00", "क्\u200dष", "می\u200cخواهم"]) {
    assert.equal(visibleControls(kept), kept);
  }
});
