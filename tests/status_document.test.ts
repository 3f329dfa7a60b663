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
  // One record, changed in place, as the broker changes its inboxes.
  const per = { streaming: false, waiting: 0, redelivered: 0 };
  const state = input({}, per);
  state.streaming = () => per.streaming;
  state.waiting = () => per.waiting;
  state.redelivered = () => per.redelivered;
  const record = state.inboxes.get(hermes)!;
  const changes: [string, () => void][] = [
    ["nothing yet", () => {}],
    ["pending", () => (record.pending = 1)],
    ["delivered_id", () => (record.deliveredId = 1)],
    ["delivered_id past 2^32", () => (record.deliveredId = 2 ** 32 + 1)],
    ["last_seen", () => (record.lastSeen = NOW - 1000)],
    ["dead_letters", () => (record.deadLetters = 1)],
    ["expired", () => (record.expired = 1)],
    ["a stream", () => (per.streaming = true)],
    ["waiting", () => (per.waiting = 1)],
    ["redelivered", () => (per.redelivered = 1)],
  ];
  let previous = "";
  for (const [what, change] of changes) {
    change();
    const text = new TextDecoder().decode(document.bytes(state));
    assert.equal(text, JSON.stringify(buildStatus(state)), what);
    assert.notEqual(text, previous, `${what} shows`);
    previous = text;
  }
});

test("StatusDocument answers anew when an agent is replaced by another with the same figures (one removed, one added)", () => {
  const document = new StatusDocument();
  const before = input({});
  document.bytes(before);
  const alice = parseAgentName("alice", "agent");
  const after = { ...before, inboxes: new Map([[alice, { ...before.inboxes.get(hermes)!, agent: alice }]]) };
  assert.deepEqual(Object.keys(JSON.parse(new TextDecoder().decode(document.bytes(after))).agents), ["alice"]);
});

test("StatusDocument follows time (uptime, an agent leaving the online window) and a shared store's brokers and streams", () => {
  const document = new StatusDocument();
  const seen = input({ lastSeen: NOW - 59_500 });
  const broker = { id: "b1", pid: 1, host: "h", listening: "h:1", version: "1", startedAt: NOW - 9000, heartbeatAt: NOW - 1000, alive: true, self: true };
  const states: [string, StatusInput][] = [
    ["online", seen],
    ["a second later: offline, uptime moved", { ...seen, now: NOW + 1000 }],
    ["on a shared store", { ...seen, now: NOW + 1000, cluster: { brokers: [broker], streams: new Map(), cursors: new Map(), pending: new Map() } }],
    ["its stream on a broker", { ...seen, now: NOW + 1000, cluster: { brokers: [broker], streams: new Map([[hermes, "b1"]]), cursors: new Map(), pending: new Map() } }],
    ["a broker's heartbeat", {
      ...seen,
      now: NOW + 1000,
      cluster: { brokers: [{ ...broker, heartbeatAt: NOW }], streams: new Map([[hermes, "b1"]]), cursors: new Map(), pending: new Map() },
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
