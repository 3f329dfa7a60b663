import assert from "node:assert/strict";
import { test } from "node:test";
import { buildStatus, StatusDocument, type StatusInput } from "../src/broker/status.ts";
import { parseAgentName } from "../src/message.ts";
import type { InboxRecord } from "../src/store/store.ts";

const hermes = parseAgentName("hermes", "agent");
const NOW = Date.parse("2026-11-30T01:00:00Z");

function input(inbox: Partial<InboxRecord>, per: { streaming?: boolean; waiting?: number; redelivered?: number } = {}): StatusInput {
  const record: InboxRecord = { agent: hermes, deliveredId: 0, purgedId: 0, pending: 0, lastSeen: null, deadLetters: 0, expired: 0, ...inbox };
  return {
    now: NOW,
    startedAt: NOW - 5000,
    dataDir: "/data",
    store: { kind: "sqlite", location: "/data/interop.db", available: true },
    lastId: 7,
    storeId: "store",
    inboxes: new Map([[hermes, record]]),
    streaming: () => per.streaming ?? false,
    waiting: () => per.waiting ?? 0,
    redelivered: () => per.redelivered ?? 0,
  };
}

test("StatusDocument answers anew when any one figure of an agent changes, and is the report as JSON", () => {
  const document = new StatusDocument();
  const changes: [string, StatusInput][] = [
    ["nothing yet", input({})],
    ["pending", input({ pending: 1 })],
    ["delivered_id", input({ pending: 1, deliveredId: 1 })],
    ["delivered_id past 2^32", input({ pending: 1, deliveredId: 2 ** 32 + 1 })],
    ["last_seen", input({ pending: 1, deliveredId: 2 ** 32 + 1, lastSeen: NOW - 1000 })],
    ["dead_letters", input({ pending: 1, deliveredId: 2 ** 32 + 1, lastSeen: NOW - 1000, deadLetters: 1 })],
    ["expired", input({ pending: 1, deliveredId: 2 ** 32 + 1, lastSeen: NOW - 1000, deadLetters: 1, expired: 1 })],
  ];
  const last = changes.at(-1)![1].inboxes.get(hermes)!;
  changes.push(
    ["a stream", input(last, { streaming: true })],
    ["waiting", input(last, { streaming: true, waiting: 1 })],
    ["redelivered", input(last, { streaming: true, waiting: 1, redelivered: 1 })],
  );
  let previous = "";
  for (const [what, state] of changes) {
    const text = new TextDecoder().decode(document.bytes(state));
    assert.equal(text, JSON.stringify(buildStatus(state)), what);
    assert.notEqual(text, previous, `${what} shows`);
    previous = text;
  }
});

test("StatusDocument follows time (uptime, an agent leaving the online window) and a shared store's brokers and streams", () => {
  const document = new StatusDocument();
  const seen = input({ lastSeen: NOW - 59_500 });
  const broker = { id: "b1", pid: 1, host: "h", listening: "h:1", version: "1", startedAt: NOW - 9000, heartbeatAt: NOW - 1000, alive: true, self: true };
  const states: [string, StatusInput][] = [
    ["online", seen],
    ["a second later: offline, uptime moved", { ...seen, now: NOW + 1000 }],
    ["on a shared store", { ...seen, now: NOW + 1000, cluster: { brokers: [broker], streams: new Map(), cursors: new Map() } }],
    ["its stream on a broker", { ...seen, now: NOW + 1000, cluster: { brokers: [broker], streams: new Map([[hermes, "b1"]]), cursors: new Map() } }],
    ["a broker's heartbeat", {
      ...seen,
      now: NOW + 1000,
      cluster: { brokers: [{ ...broker, heartbeatAt: NOW }], streams: new Map([[hermes, "b1"]]), cursors: new Map() },
    }],
  ];
  let previous = "";
  for (const [what, state] of states) {
    const text = new TextDecoder().decode(document.bytes(state));
    assert.equal(text, JSON.stringify(buildStatus(state)), what);
    assert.notEqual(text, previous, `${what} shows`);
    previous = text;
  }
  assert.equal(JSON.parse(previous).agents.hermes.stream_broker, "b1");
});
