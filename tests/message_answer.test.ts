/**
 * MessageAnswer builds a big answer a slice at a time, with a turn of the event loop between two, so that other
 * requests are answered meanwhile: read from a synchronous store (SQLite's) and encoded in one go, twelve answers of
 * 16 Mi characters held /status for seconds.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";
import { MessageAnswer, SLICE_CHARS } from "../src/broker/message_answer.ts";
import { cutShort } from "../src/store/store.ts";

const item = (id: number, text: string) => ({ id, text });
const encode = (entry: { id: number; text: string }) => JSON.stringify(entry);

/**
 * Counts the event loop's turns until stopped: work that never yields sees none go by. A timer of 0 as the slices'
 * turns are: those due at once run in the order they were set, so the count and the work take turns.
 */
function turnCounter(): { turns(): number; stop(): void } {
  let turns = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    turns++;
    timer = setTimeout(tick, 0);
  };
  timer = setTimeout(tick, 0);
  return { turns: () => turns, stop: () => clearTimeout(timer) };
}

/**
 * A store's `readAfter` over `inbox`: up to `limit` entries after `afterId` whose texts' running total stays within
 * `maxChars` (the first always), cut short when it left some out, as `MessageStore.readAfter` reads them. `onRead` sees
 * each page.
 */
function boundedReads<T extends { id: number; text: string }>(inbox: T[], onRead: (page: T[]) => void) {
  return (afterId: number, limit: number, maxChars: number) => {
    const page: T[] = [];
    let chars = 0;
    for (const entry of inbox.filter((entry) => entry.id > afterId).slice(0, limit)) {
      chars += entry.text.length;
      if (chars > maxChars && page.length > 0) {
        onRead(page);
        return Promise.resolve(cutShort(page));
      }
      page.push(entry);
    }
    onRead(page);
    return Promise.resolve(page);
  };
}

test("MessageAnswer.read reads a big inbox from a synchronous store in pages of a slice at most, with a turn of the event loop between two", async (t) => {
  const inbox = Array.from({ length: 12 }, (_, index) => item(index + 1, "é".repeat(SLICE_CHARS / 2 - 20)));
  const pages: { size: number; turns: number }[] = [];
  const counter = turnCounter();
  t.after(() => counter.stop());
  const readAfter = boundedReads(inbox, (page) => {
    pages.push({ size: page.reduce((sum, entry) => sum + encode(entry).length, 0), turns: counter.turns() });
  });
  const answer = new MessageAnswer(encode, 16 * SLICE_CHARS);
  assert.deepEqual(await answer.read(readAfter, 0, 100, () => true), inbox);
  // A turn once a slice's worth is read: what is read between two is less than a slice and one more page.
  const betweenTurns = Map.groupBy(pages, (page) => page.turns);
  assert.ok(betweenTurns.size > 2, `turns of the event loop between the pages: ${betweenTurns.size - 1}`);
  for (const [turns, read] of betweenTurns) {
    const size = read.reduce((sum, page) => sum + page.size, 0);
    assert.ok(size < 2 * SLICE_CHARS, `${size} characters read after turn ${turns}, before the next`);
    assert.ok(read.every((page) => page.size <= SLICE_CHARS + 100), "no page of more than a slice (and a message)");
  }
});

test("MessageAnswer.body is a big answer's JSON array as UTF-8 bytes, made with turns of the event loop between slices", async (t) => {
  const items = Array.from({ length: 6 }, (_, index) => item(index + 1, `${index}ü€😀`.repeat(SLICE_CHARS / 8)));
  const answer = new MessageAnswer(encode, 16 * SLICE_CHARS);
  answer.fit(items);
  const expected = Buffer.from(`[${items.map(encode).join(",")}]`);
  const counter = turnCounter();
  t.after(() => counter.stop());
  const body = await answer.body(items);
  assert.ok(counter.turns() >= 2, `turns of the event loop while it was made: ${counter.turns()}`);
  assert.ok(body instanceof Uint8Array);
  assert.ok(Buffer.from(body).equals(expected), "the same bytes as the JSON array's text");
});

test("MessageAnswer.body of a small answer is the JSON array's text, or the texts between what is asked for", async () => {
  const items = [item(1, "a"), item(2, "b")];
  const answer = new MessageAnswer(encode, SLICE_CHARS);
  answer.fit(items);
  assert.equal(await answer.body(items), `[${items.map(encode).join(",")}]`);
  assert.equal(await answer.body(items, "", "", ""), items.map(encode).join(""));
  assert.equal(await answer.body([]), "[]");
});

test("MessageAnswer.read asks no page for more characters than its budget has left, however large the messages stored", async () => {
  // 250 small messages, then big ones: pages sized by what was read so far asked for 750 at once (a /poll of 1000 read
  // 750 MiB from SQLite to answer with 16); sized by a count at --max-body-bytes, ones stored under a larger one were
  // read far past the budget.
  const big = "x".repeat(SLICE_CHARS);
  const inbox = Array.from({ length: 1000 }, (_, index) => item(index + 1, index < 250 ? "small" : big));
  const budget = 4 * SLICE_CHARS;
  const pages: number[] = [];
  const readAfter = boundedReads(inbox, (page) => pages.push(page.reduce((sum, entry) => sum + encode(entry).length, 0)));
  const answer = new MessageAnswer(encode, budget);
  const read = await answer.read(readAfter, 0, inbox.length, () => true);
  assert.ok(answer.cut);
  assert.equal(read.length, 250 + 3, "what fits: the small ones and three big ones");
  const largest = Math.max(...pages);
  assert.ok(largest <= SLICE_CHARS + big.length + 100, `the largest page held ${largest} characters (a slice: ${SLICE_CHARS})`);
  assert.ok(pages.length <= 6, `${pages.length} reads`);
});

test("MessageAnswer.read asks for all that is left of its limit at once: small messages are read in one page", async () => {
  const inbox = Array.from({ length: 500 }, (_, index) => item(index + 1, `small ${index}`));
  const pages: number[] = [];
  const answer = new MessageAnswer(encode, 16 * SLICE_CHARS);
  assert.deepEqual(await answer.read(boundedReads(inbox, (page) => pages.push(page.length)), 0, 500, () => true), inbox);
  assert.deepEqual(pages, [500]);
});
