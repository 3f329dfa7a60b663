import assert from "node:assert/strict";
import { test } from "node:test";
import { visibleControls } from "../src/cli/terminal_text.ts";

test("visibleControls() writes out C0 and C1 controls and DEL, and keeps newlines, tabs and every other character", () => {
  assert.equal(visibleControls("\u001b]52;c;eA==\u0007"), "\\u001b]52;c;eA==\\u0007");
  assert.equal(visibleControls("a\rb\u0000c\u007fd\u009be"), "a\\u000db\\u0000c\\u007fd\\u009be");
  assert.equal(visibleControls("line\n\tnext, é ☃ 日本 🙂"), "line\n\tnext, é ☃ 日本 🙂");
});
