/** AnswerMemory: what answers not read yet hold, per inbox and for the broker, and how an answer meets the bound. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InteropError } from "../src/errors.ts";
import { AnswerMemory } from "../src/broker/answer_memory.ts";
import { MessageAnswer } from "../src/broker/message_answer.ts";

const item = (id: number, text: string) => ({ id, text });
const encode = (entry: { id: number; text: string }) => entry.text;

test("AnswerMemory refuses an inbox's next answer with too_many_requests once its bound has no room for a full one, and takes it again once released", () => {
  const memory = new AnswerMemory(100, 1000);
  const first = memory.hold("alice", 10);
  assert.equal(first.claim(60), undefined);
  assert.equal(first.claim(30), undefined);
  assert.ok(memory.hold("alice", 10), "room for one more answer of 10");
  assert.equal(first.claim(10), undefined);
  assert.throws(() => memory.hold("alice", 10), (error: InteropError) => error.code === "too_many_requests" && error.retryAfter === 1);
  assert.equal(memory.hold("bob", 10).claim(100), undefined, "another inbox is not held back");
  first.release();
  first.release();
  assert.equal(memory.held, 100, "released once, however often asked");
  assert.equal(memory.hold("alice", 10).claim(100), undefined);
});

test("AnswerMemory refuses any answer with server_busy once the broker holds its bound", () => {
  const memory = new AnswerMemory(100, 150);
  assert.equal(memory.hold("alice", 10).claim(100), undefined);
  const bob = memory.hold("bob", 10);
  assert.equal(bob.claim(60)?.code, "server_busy");
  assert.equal(bob.claim(50), undefined);
  assert.throws(() => memory.hold("carol", 10), (error: InteropError) => error.code === "server_busy");
});

test("AnswerMemory lets one leased take of an inbox at a time past the inbox's bound, never past the broker's", () => {
  // Refused for the inbox's other unread answers, a leased reader could neither take what it showed nor renew its
  // lease (a renewing peek needs the same room): the lease ran out and the next reader showed the same messages.
  const memory = new AnswerMemory(100, 250);
  assert.equal(memory.hold("alice", 10).claim(100), undefined);
  assert.throws(() => memory.hold("alice", 10), (error: InteropError) => error.code === "too_many_requests");
  const leased = memory.hold("alice", 10, true);
  assert.equal(leased.claim(100), undefined, "past the inbox's bound");
  assert.throws(() => memory.hold("alice", 10, true), (error: InteropError) => error.code === "too_many_requests", "one at a time");
  assert.equal(leased.claim(60)?.code, "server_busy", "the broker's bound still holds");
  leased.release();
  leased.release();
  assert.equal(memory.held, 100);
  assert.ok(memory.hold("alice", 10, true), "the next leased take, once the last was released");
});

test("AnswerMemory lets an inbox that holds nothing have one message however large, as an answer's budget does", () => {
  const memory = new AnswerMemory(100, 1000);
  const hold = memory.hold("alice", 10);
  assert.equal(hold.claim(500), undefined);
  assert.equal(hold.claim(1)?.code, "too_many_requests");
});

test("MessageAnswer.fit cuts an answer at the memory's bound, and refuses one whose first message does not fit", () => {
  const memory = new AnswerMemory(10, 1000);
  const first = new MessageAnswer(encode, 1000, memory.hold("alice", 10));
  assert.deepEqual(first.fit([item(1, "aaaa"), item(2, "bbbb"), item(3, "cccc")]), [item(1, "aaaa"), item(2, "bbbb")]);
  assert.equal(first.cut, true, "the rest stays pending, and the answer says so");
  const second = new MessageAnswer(encode, 1000, memory.hold("alice", 2));
  assert.throws(() => second.fit([item(3, "cccc")]), (error: InteropError) => error.code === "too_many_requests");
  first.release();
  second.release();
  assert.equal(memory.held, 0);
});

test("MessageAnswer.read refuses, reading nothing, an answer admitted with others that are read at the same time and leave no room", async () => {
  const memory = new AnswerMemory(10, 1000);
  // Both admitted at once: neither has claimed anything yet.
  const first = new MessageAnswer(encode, 10, memory.hold("alice", 10));
  const second = new MessageAnswer(encode, 10, memory.hold("alice", 10));
  const inbox = [item(1, "aaaaaaaaaa"), item(2, "bbbbbbbbbb")];
  const readAfter = (afterId: number, limit: number) => Promise.resolve(inbox.filter((entry) => entry.id > afterId).slice(0, limit));
  let reads = 0;
  const counted = (afterId: number, limit: number) => (reads++, readAfter(afterId, limit));
  // Read at the same time, as a batch of requests that arrived together is.
  const [answered, refused] = await Promise.allSettled([first.read(readAfter, 0, 10, () => true), second.read(counted, 0, 10, () => true)]);
  assert.deepEqual(answered, { status: "fulfilled", value: [inbox[0]] });
  assert.equal(refused.status, "rejected");
  assert.equal((refused.reason as InteropError).code, "too_many_requests");
  assert.equal(reads, 0, "nothing read for an answer refused");
  assert.equal(memory.held, 10, "the answer holds what it claimed, no more");
  first.release();
  second.release();
  assert.equal(memory.held, 0);
});

test("MessageAnswer.read gives back what its reservation did not use, and still takes a first message larger than its budget", async () => {
  const memory = new AnswerMemory(10, 1000);
  const small = new MessageAnswer(encode, 8, memory.hold("alice", 8));
  assert.deepEqual(await small.read(() => Promise.resolve([item(1, "aa")]), 0, 10, () => true), [item(1, "aa")]);
  assert.equal(memory.held, 2);
  small.release();
  const large = new MessageAnswer(encode, 8, memory.hold("alice", 8));
  const big = item(2, "x".repeat(40));
  assert.deepEqual(await large.read(() => Promise.resolve([big]), 0, 10, () => true), [big]);
  assert.equal(memory.held, 40);
  large.release();
  assert.equal(memory.held, 0);
});
