/** A stream session's live delivery (what an offered commit writes, what it leaves out) and its reads failing. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate } from "node:timers";
import { StreamSession, type StreamSessionDeps } from "../src/broker/stream_session.ts";
import { InteropError } from "../src/errors.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import type { AgentName, Envelope } from "../src/message.ts";
import { TextSink } from "./helpers/text_sink.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

const envelope = (id: number): Envelope => ({ id, from: hermes, to: openclaw, timestamp: "2026-12-01T00:00:00.000Z", payload: { n: id } });
const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
const turns = async (count: number) => {
  for (let turn = 0; turn < count; turn++) await new Promise((resolve) => setImmediate(resolve));
};

function session(startAfter: number, sink: TextSink, deps: Partial<StreamSessionDeps>): StreamSession {
  return new StreamSession(openclaw, startAfter, sink, {
    id: "stream-1",
    readAfter: () => Promise.resolve([]),
    isDelivered: () => false,
    isTaken: () => false,
    delivered: () => {},
    ended: () => {},
    format: sseFormat(2000, true),
    writeTimeoutMs: 60_000,
    pageSize: 500,
    ...deps,
  });
}

test("StreamSession.offer writes only the offered messages the stream has not sent and no other reader took", async () => {
  const sink = new TextSink();
  const delivered: number[][] = [];
  const takenByAWait = new Set([7]);
  const stream = session(5, sink, {
    isDelivered: (offered) => takenByAWait.has(offered.id),
    delivered: (_agent, envelopes) => delivered.push(envelopes.map((sent) => sent.id)),
  });
  stream.start();
  // The replay (nothing to read) ends a few turns later; then the stream takes live messages.
  await turns(5);
  sink.writes.length = 0;

  stream.offer([envelope(4), envelope(6), envelope(7)]);
  stream.offer([envelope(8)]);
  stream.offer([envelope(8), envelope(9)]);
  stream.offer([envelope(9)]);

  assert.deepEqual(sink.writes.map(ids), [[6], [8], [9]], "each commit's fresh messages in one write, none twice");
  assert.deepEqual(delivered, [[6], [8], [9]]);
});

test("a stream whose read finds the store unreachable stays open, and reads on from its last id at the next wake-up", async () => {
  const sink = new TextSink();
  const stored = [envelope(1), envelope(2), envelope(3)];
  let reachable = false;
  const reads: number[] = [];
  const stream = session(1, sink, {
    readAfter: (_agent, afterId) => {
      reads.push(afterId);
      if (!reachable) return Promise.reject(new InteropError("storage_unavailable", "Storage unavailable: retry shortly"));
      return Promise.resolve(stored.filter((candidate) => candidate.id > afterId));
    },
  });
  stream.start();
  await turns(5);
  stream.wake();
  await turns(5);
  assert.equal(stream.closed, false, "an outage does not end the stream");
  assert.doesNotMatch(sink.text, /event: error/);
  assert.deepEqual(reads, [1, 1], "each wake-up during the outage reads once; none spins");

  reachable = true;
  stream.wake();
  await turns(5);
  assert.deepEqual(ids(sink.text), [2, 3], "what it missed, from its last id");
  stream.offer([envelope(4)]);
  assert.deepEqual(ids(sink.text), [2, 3, 4], "then live again");
});

test("a stream whose read fails otherwise ends, telling the client to resume", async () => {
  const sink = new TextSink();
  const stream = session(0, sink, { readAfter: () => Promise.reject(new Error("disk I/O error")) });
  stream.start();
  await turns(5);
  assert.equal(stream.closed, true);
  assert.match(sink.text, /event: error\ndata: \{"reason":"storage failed while replaying; reconnect to resume"\}/);
});
