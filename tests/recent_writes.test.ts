import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { RecentWrites } from "../src/broker/recent_writes.ts";
import { parseAgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { handClock } from "./helpers/hand_clock.ts";
import { streamFromCursor } from "./helpers/text_sink.ts";

const WINDOW_MS = 180_000;
/** The heartbeat interval: no client notices a dead link sooner. */
const NOTICE_MS = 15_000;
const hermes = parseAgentName("hermes", "agent");

test("RecentWrites.replayAfter() starts just before the first message written in the window before the stream ended", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  writes.opened(hermes, 0);
  writes.wrote(hermes, 1, 0);
  writes.wrote(hermes, 5, 100_000);
  writes.wrote(hermes, 9, 200_000);
  writes.ended(hermes, 250_000);
  // The window reaches back to 70 s: the write at 0 s is out of it, the one at 100 s is the first in it.
  assert.equal(writes.replayAfter(hermes, 250_000), 4);
  // However late the client comes back, the window counts from the end of the stream that may have lost them.
  assert.equal(writes.replayAfter(hermes, 3_600_000), 4);
});

test("RecentWrites.replayAfter() counts back from now while the last stream is still open (it is being replaced)", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  writes.opened(hermes, 0);
  writes.wrote(hermes, 3, 0);
  writes.wrote(hermes, 7, 150_000);
  assert.equal(writes.replayAfter(hermes, 160_000), 2);
  assert.equal(writes.replayAfter(hermes, 200_000), 6);
  assert.equal(writes.replayAfter(hermes, 400_000), undefined);
});

test("RecentWrites.replayAfter() covers what a stream sent again, counted from its opening, and forget() drops the agent's log", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  writes.opened(hermes, 0);
  writes.wrote(hermes, 20, 1000);
  writes.ended(hermes, 2000);
  // The resumed stream sends 11 again (a replay the client asked for), then 30 for the first time.
  writes.opened(hermes, 100_000, 10);
  writes.wrote(hermes, 30, 100_000);
  assert.equal(writes.replayAfter(hermes, 200_000), 10);
  // Three minutes after it opened, only what it sent first within them.
  writes.wrote(hermes, 31, 281_000);
  assert.equal(writes.replayAfter(hermes, 281_000), 30);
  writes.forget(hermes);
  assert.equal(writes.replayAfter(hermes, 281_000), undefined);
});

test("RecentWrites keeps one entry a second and nothing with a window of 0", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  writes.wrote(hermes, 1, 1000);
  writes.wrote(hermes, 2, 1500);
  writes.ended(hermes, 1600);
  assert.equal(writes.replayAfter(hermes, 1600), 0);
  const off = new RecentWrites(0, NOTICE_MS);
  off.wrote(hermes, 1, 1000);
  off.ended(hermes, 1000);
  assert.equal(off.replayAfter(hermes, 1000), undefined);
});

test("RecentWrites.restore() starts a resume at the kept point after a restart, until the next stream's window passes it", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  writes.restore(hermes, [{ firstId: 42, at: 1_000_000 }], 1_000_000);
  assert.equal(writes.replayAfter(hermes, 5_000_000), 41);
  writes.opened(hermes, 5_000_000, 41);
  assert.equal(writes.wrote(hermes, 42, 5_000_000), true);
  assert.equal(writes.wrote(hermes, 43, 5_000_500), false, "one entry a second");
  assert.equal(writes.replayAfter(hermes, 5_001_000), 41);
  writes.wrote(hermes, 50, 5_100_000);
  assert.equal(writes.replayAfter(hermes, 5_190_000), 49);
});

test("RecentWrites passes on what a stream sent again only to a stream that replaces it after a dead link could be noticed", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  // Reader A's stream is sent 1..7 first.
  writes.opened(hermes, 0);
  writes.wrote(hermes, 1, 1000);
  // Reader B replaces it 2 s later: A's link may be dead, so B gets 1..7 again.
  assert.equal(writes.replayAfter(hermes, 3000, true), 0);
  writes.opened(hermes, 3000, 0);
  writes.wrote(hermes, 8, 3500);
  // A comes back 200 ms later and replaces B: B's own message 8 comes again (B's link may be dead), not 1..7: no
  // client notices a dead link that fast, so B was replaced by another reader, and A's first link had them.
  assert.equal(writes.replayAfter(hermes, 3700, true), 7);
  writes.opened(hermes, 3700, 7);
  // And so on: each reconnect passes on only what the stream it replaces was sent first.
  assert.equal(writes.replayAfter(hermes, 3900, true), undefined);
  writes.opened(hermes, 3900);
  assert.equal(writes.replayAfter(hermes, 4100, true), undefined);
});

test("RecentWrites passes a replay on through two dead links in a row, a stream that ended by itself, and a restart", () => {
  const twoDead = new RecentWrites(WINDOW_MS, NOTICE_MS);
  twoDead.opened(hermes, 0);
  twoDead.wrote(hermes, 1, 0);
  // The link died at once; the client notices at its read timeout (90 s) and comes back 60 s later.
  assert.equal(twoDead.replayAfter(hermes, 150_000, true), 0);
  twoDead.opened(hermes, 150_000, 0);
  // That link dies too: the next resume, 150 s later, is past the window of the first write, not of the replay.
  assert.equal(twoDead.replayAfter(hermes, 300_000, true), 0);

  const closed = new RecentWrites(WINDOW_MS, NOTICE_MS);
  closed.opened(hermes, 0);
  closed.wrote(hermes, 1, 0);
  closed.opened(hermes, 1000, 0);
  // Ended by its client (a reset, a killed curl) 100 ms after it opened: the bytes may not have been read.
  closed.ended(hermes, 1100);
  assert.equal(closed.replayAfter(hermes, 1200, true), 0);

  const restart = new RecentWrites(WINDOW_MS, NOTICE_MS);
  restart.opened(hermes, 0);
  restart.wrote(hermes, 1, 0);
  restart.opened(hermes, 1000, 0);
  // The broker stops 100 ms after: the point it keeps covers the replay, dated when it was sent.
  assert.deepEqual(restart.keptWrites(hermes, 1100), [{ firstId: 1, at: 1000 }]);
});

test("RecentWrites dates what a restarted broker restored from when it was written, however often it is sent again", () => {
  const writes = new RecentWrites(WINDOW_MS, NOTICE_MS);
  // Restarted at 1,000 s with 41.. written at 950 s: while its client is away, another restart keeps it.
  writes.restore(hermes, [{ firstId: 41, at: 950_000 }], 1_000_000);
  assert.deepEqual(writes.keptWrites(hermes, 1_020_000), [{ firstId: 41, at: 950_999 }]);
  // The client comes back and is sent 41.. again.
  assert.equal(writes.replayAfter(hermes, 1_030_000, true), 40);
  writes.opened(hermes, 1_030_000, 40);
  // A restart now keeps it, with its time: this stream's link may be dead (before: nothing kept, and those messages
  // lost for an id-less client, red team 62)...
  assert.deepEqual(writes.keptWrites(hermes, 1_040_000), [{ firstId: 41, at: 950_999 }]);
  // ...until the window of that time has passed (dated at each restart, it came at every one, for ever: red team 61).
  assert.equal(writes.keptWrites(hermes, 1_131_000), undefined);
  // What this process writes first is kept as ever, and within the process a resume after a dead link gets both.
  writes.wrote(hermes, 60, 1_050_000);
  assert.deepEqual(writes.keptWrites(hermes, 1_060_000), [{ firstId: 41, at: 950_999 }, { firstId: 60, at: 1_050_999 }]);
  writes.ended(hermes, 1_100_000);
  assert.equal(writes.replayAfter(hermes, 1_150_000, true), 40);
});

test("RecentWrites keeps at most 32 writes for a restart, merging neighbours at the later time", () => {
  const writes = new RecentWrites(3_600_000, NOTICE_MS);
  writes.opened(hermes, 0);
  for (let second = 0; second < 100; second++) writes.wrote(hermes, 10 * second + 1, second * 1000);
  const kept = writes.keptWrites(hermes, 100_000)!;
  assert.ok(kept.length <= 32, String(kept.length));
  assert.equal(kept[0].firstId, 1);
  // Nothing starts later or ages sooner than the write it stands for.
  for (let second = 0; second < 100; second++) {
    const standsFor = kept.findLast((write) => write.firstId <= 10 * second + 1)!;
    assert.ok(standsFor.at >= second * 1000 + 999, `${second}`);
  }
});

/** Brokers one after another on one data dir, with a resume window of `windowMs`: `restart` stops the running one. */
function restartedBrokers(t: TestContext, windowMs: number) {
  const dir = tempDir();
  let broker: Broker | undefined;
  // Registered before the first start, and before the directory's removal: a failure midway leaves no broker open.
  t.after(() => broker?.close());
  t.after(dir.cleanup);
  return async () => {
    const previous = broker;
    broker = undefined;
    await previous?.close();
    return broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { resumeWindowMs: windowMs }));
  };
}

test("a broker restarted twice within the resume window sends an id-less reader the window at each restart, and not once it has passed", async (t) => {
  const restart = restartedBrokers(t, 3_000);
  const leo = parseAgentName("leo");
  let running = await restart();
  let stream = await streamFromCursor(running, hermes);
  const ids: number[] = [];
  for (const text of ["one", "two", "three"]) ids.push((await running.publish(leo, hermes, { text })).envelopes[0].id);
  await waitFor(() => stream.ids().length === 3, 5_000, "the first stream's writes");
  const written = performance.now();
  // Restarted: the window's writes come again (a dead link may have swallowed them).
  running = await restart();
  stream = await streamFromCursor(running, hermes);
  await waitFor(() => stream.ids().length === 3, 5_000, "the resume to send them again");
  assert.deepEqual(stream.ids(), ids);
  // Restarted again within the window: this stream's link may have died too (before: not sent again, lost).
  running = await restart();
  stream = await streamFromCursor(running, hermes);
  await waitFor(() => stream.ids().length === 3, 5_000, "the second resume to send them again");
  assert.deepEqual(stream.ids(), ids);
  // Restarted once the window of their first write has passed: they do not come again. Before stop 61 each restart
  // dated them anew, and they came at every one (Hermes handled them twice once it had forgotten their ids).
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, written + 4_500 - performance.now())));
  running = await restart();
  stream = await streamFromCursor(running, hermes);
  const next = (await running.publish(leo, hermes, { text: "four" })).envelopes[0].id;
  await waitFor(() => stream.ids().length > 0, 5_000, "the next message");
  assert.deepEqual(stream.ids(), [next]);
});

/** A broker whose wall clock (`now`) the test steps by hand, with a resume window of `windowMs`; closed after `t`. */
async function steppedBroker(t: TestContext, windowMs: number) {
  const dir = tempDir();
  t.after(dir.cleanup);
  const clock = handClock();
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { now: clock.now, resumeWindowMs: windowMs }));
  t.after(() => broker.close());
  const hermes = parseAgentName("hermes");
  /** A stream of hermes's inbox without an id, as an id-less client resumes, and the ids it was written. */
  const resume = () => streamFromCursor(broker, hermes);
  const send = async (text: string) => (await broker.publish(parseAgentName("leo"), hermes, { text })).envelopes[0].id;
  return { clock, resume, send };
}

test("the resume window sends a write again after the wall clock stepped an hour forward before its stream ended", async (t) => {
  // The window ran on the wall clock: the write looked an hour old when the stream ended, and was not sent again.
  const { clock, resume, send } = await steppedBroker(t, 60_000);
  const first = await resume();
  const id = await send("swallowed by a dead link");
  await waitFor(() => first.ids().length === 1, 5_000, "the first stream's write");
  clock.advance(3_600_000);
  first.close();
  const second = await resume();
  await waitFor(() => second.ids().length === 1, 5_000, "the resume to send it again");
  assert.deepEqual(second.ids(), [id]);
});

test("the resume window does not send again a write older than the window after the wall clock stepped back", async (t) => {
  // On the wall clock, the stream's end an hour back put a write 2 s old inside a 1 s window: sent again.
  const { clock, resume, send } = await steppedBroker(t, 1_000);
  const first = await resume();
  await send("delivered long ago");
  await waitFor(() => first.ids().length === 1, 5_000, "the first stream's write");
  await new Promise((resolve) => setTimeout(resolve, 2_100));
  clock.advance(-3_600_000);
  first.close();
  const second = await resume();
  const next = await send("new");
  await waitFor(() => second.ids().length > 0, 5_000, "the new message");
  assert.deepEqual(second.ids(), [next]);
});
