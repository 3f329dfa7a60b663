import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveStart } from "../src/broker/stream_start.ts";
import { parseAgentName } from "../src/message.ts";
import type { InboxRecord, MessageStore } from "../src/store/store.ts";

const inbox: InboxRecord = { agent: parseAgentName("hermes", "agent"), deliveredId: 20, purgedId: 10, pending: 0, lastSeen: null, deadLetters: 0, expired: 0 };
/** A resume by id reads nothing of the store before it is refused. */
const store = {} as MessageStore;

test("resolveStart() refuses an expired or unknown id saying what the client is to leave out: since= for ntfy, else Last-Event-ID", async () => {
  await assert.rejects(resolveStart(store, inbox, { from: "id", afterId: 5, sentAs: "since=" }, 30), {
    code: "event_id_expired",
    message: "Event id 5 expired: messages for hermes up to 10 were removed by retention; reconnect without since= to read pending messages",
  });
  await assert.rejects(resolveStart(store, inbox, { from: "id", afterId: 5 }, 30), {
    code: "event_id_expired",
    message: /; reconnect without Last-Event-ID to read pending messages$/,
  });
  await assert.rejects(resolveStart(store, inbox, { from: "id", afterId: 99, sentAs: "since=" }, 30), {
    code: "unknown_event_id",
    message: "Unknown event id 99: this broker has assigned ids up to 30; reconnect without since= to read pending messages",
  });
});
