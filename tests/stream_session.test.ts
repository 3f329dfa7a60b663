/** A stream session's live delivery: what an offered commit writes to the stream, and what it leaves out. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate } from "node:timers";
import { StreamSession } from "../src/broker/stream_session.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import type { AgentName, Envelope } from "../src/message.ts";
import { TextSink } from "./helpers/text_sink.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

const envelope = (id: number): Envelope => ({ id, from: hermes, to: openclaw, timestamp: "2026-12-01T00:00:00.000Z", payload: { n: id } });
const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));

test("StreamSession.offer writes only the offered messages the stream has not sent and no other reader took", async () => {
  const sink = new TextSink();
  const delivered: number[][] = [];
  const takenByAWait = new Set([7]);
  const session = new StreamSession(openclaw, 5, sink, {
    id: "stream-1",
    readAfter: () => Promise.resolve([]),
    isDelivered: (offered) => takenByAWait.has(offered.id),
    isTaken: () => false,
    delivered: (_agent, envelopes) => delivered.push(envelopes.map((sent) => sent.id)),
    ended: () => {},
    format: sseFormat(2000, true),
    writeTimeoutMs: 60_000,
    pageSize: 500,
  });
  session.start();
  // The replay (nothing to read) ends a few turns later; then the stream takes live messages.
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  sink.writes.length = 0;

  session.offer([envelope(4), envelope(6), envelope(7)]);
  session.offer([envelope(8)]);
  session.offer([envelope(8), envelope(9)]);
  session.offer([envelope(9)]);

  assert.deepEqual(sink.writes.map(ids), [[6], [8], [9]], "each commit's fresh messages in one write, none twice");
  assert.deepEqual(delivered, [[6], [8], [9]]);
});
