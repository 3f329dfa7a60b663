// The MCP tools against a stand-in broker client: what happens to messages taken for a call its client cancelled.
// @ts-types: the SDK's subpath types need pointing at for Deno's checker (see src/cli/mcp.ts).
// @ts-types="../node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.d.ts"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="../node_modules/@modelcontextprotocol/sdk/dist/esm/server/mcp.d.ts"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="../node_modules/@modelcontextprotocol/sdk/dist/esm/inMemory.d.ts"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import assert from "node:assert/strict";
import { test } from "node:test";
import type { BrokerClient } from "../src/client/broker_client.ts";
import type { Logger } from "../src/cli/logger.ts";
import { InteropError } from "../src/errors.ts";
import { parseAgentName, type WireMessage } from "../src/message.ts";
import { type HeldMessage, TakenMessages } from "../src/mcp/taken_messages.ts";
import { wireTools } from "../src/mcp/session_transport.ts";
import { registerTools } from "../src/mcp/tools.ts";
import { waitFor } from "./helpers/broker.ts";

interface Session {
  client: Client;
  server: McpServer;
  /** The tools' end of session, logging into `errors`; resolves whether everything taken was returned or parked. */
  parkUnreturned: () => Promise<boolean>;
  errors: string[];
}

/** An MCP client (the SDK's, as OpenClaw uses) talking in memory to the tools over `broker`. */
async function connectTools(broker: BrokerClient): Promise<Session> {
  const server = new McpServer({ name: "interop", version: "test" });
  const { serverSide, parkUnreturned, errors } = await serveTools(server, broker);
  const client = new Client({ name: "test", version: "1" });
  await client.connect(serverSide.peer);
  return { client, server, parkUnreturned, errors };
}

/** The tools over `broker` on `server`, connected as src/cli/mcp.ts connects them; `peer` is the client's end. */
async function serveTools(server: McpServer, broker: BrokerClient, held?: HeldMessage[]) {
  const kept = held === undefined ? undefined : { file: { keep: () => true }, held };
  const tools = registerTools(server, withStatus(broker), parseAgentName("openclaw", "agent"), kept);
  const errors: string[] = [];
  const ignore = () => {};
  const log: Logger = { info: ignore, warn: ignore, debug: ignore, error: (message) => errors.push(message) };
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  wireTools(serverSide, tools);
  await server.connect(serverSide);
  return { serverSide: Object.assign(serverSide, { peer: clientSide }), parkUnreturned: () => tools.endSession(log), errors };
}

/** `broker`, answering `/status` as a broker where no stream is open unless it has a status of its own. */
function withStatus(broker: BrokerClient): BrokerClient {
  if ("status" in broker) return broker;
  return Object.assign(Object.create(broker), { status: () => Promise.resolve({ agents: {} }) });
}

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/**
 * A stand-in broker older than leased peeks, so the tools take before they answer: it shows `ids` to a peek at once
 * and, once its take is called, hands them out (taken) when `answer` resolves; it parks all but `refused`. (Under a
 * lease the take comes after the answer was written, and a cancel that crosses it is the crossed-answer case below.)
 */
function slowPollBroker(ids: number[], answer: Promise<void>, refused: number[] = []) {
  const pollStarted = signal();
  const parked: Array<{ agent: string; id: number; reason: string }> = [];
  const messages = ids.map((id) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage);
  const broker = {
    peek: () => Promise.resolve({ messages, more: false }),
    poll: async (_agent: string, _limit: number, upTo?: number) => {
      pollStarted.resolve();
      await answer;
      return messages.filter((message) => upTo === undefined || message.interop.id <= upTo);
    },
    parkDeadLetter: (agent: string, id: number, reason: string) => {
      if (refused.includes(id)) return Promise.reject(new InteropError("not_found", `message ${id} is gone`));
      parked.push({ agent, id, reason });
      return Promise.resolve({});
    },
  } as unknown as BrokerClient;
  return { broker, pollStarted: pollStarted.promise, parked };
}

/** Calls inbox and cancels the call once its take has reached the broker, as OpenClaw does when a turn is aborted. */
async function cancelInboxWhilePolling(client: Client, pollStarted: Promise<void>): Promise<void> {
  const aborting = new AbortController();
  const inbox = client.callTool({ name: "inbox", arguments: {} }, undefined, { signal: aborting.signal });
  await pollStarted;
  aborting.abort("the turn was aborted");
  await assert.rejects(inbox, /the turn was aborted/);
}

test("an inbox call cancelled before it reaches the broker takes nothing", async () => {
  // OpenClaw cancels a tool call when its turn is aborted, and later stops the server: what such a call took
  // would be answered to nobody.
  let reads = 0;
  const read = () => {
    reads++;
    return Promise.resolve([{ text: "taken", interop: { id: 7, from: "hermes" } } as unknown as WireMessage]);
  };
  const broker = { poll: read, peek: read } as unknown as BrokerClient;
  const { client, server } = await connectTools(broker);
  const aborting = new AbortController();
  const inbox = client.callTool({ name: "inbox", arguments: {} }, undefined, { signal: aborting.signal });
  aborting.abort("the turn was aborted");
  await assert.rejects(inbox, /the turn was aborted/);
  await client.close();
  await server.close();
  assert.equal(reads, 0);
});

test("a message taken while its inbox call was being cancelled is parked as a dead letter when the session ends", async () => {
  // The take is in flight when the cancel comes: the broker has taken the message by then.
  const cancelArrived = signal();
  const { broker, pollStarted, parked } = slowPollBroker([7], cancelArrived.promise);
  const { client, server, parkUnreturned } = await connectTools(broker);
  await cancelInboxWhilePolling(client, pollStarted);
  cancelArrived.resolve();
  await client.close();
  await server.close();
  await parkUnreturned();

  assert.equal(parked.length, 1);
  assert.equal(parked[0].agent, "openclaw");
  assert.equal(parked[0].id, 7);
  assert.match(parked[0].reason, /taken for an MCP call its client cancelled/);
});

test("a poll still in flight when the session ends: its messages are parked once it answers", async () => {
  const answer = signal();
  const { broker, pollStarted, parked } = slowPollBroker([7], answer.promise);
  const { client, server, parkUnreturned, errors } = await connectTools(broker);
  await cancelInboxWhilePolling(client, pollStarted);
  // As src/cli/mcp.ts does on stdin's end: close, then park — and the poll answers only while parking waits.
  await client.close();
  await server.close();
  const parking = parkUnreturned();
  answer.resolve();
  const allParked = await parking;
  assert.deepEqual(parked.map((message) => message.id), [7]);
  assert.equal(allParked, true);
  assert.deepEqual(errors, []);
});

test("a cancelled call that ends while the session's end parks what was held: what it took is parked too", async () => {
  // OpenClaw ends the session right after aborting a turn: a cancelled call may still be ending (its take answering)
  // while the end of the session parks what an earlier cancelled call left held.
  const polled = new Map([[7, signal()], [8, signal()]]);
  const answered = new Map([[7, signal()], [8, signal()]]);
  const message = (id: number) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage;
  let shown = 6;
  const parked: number[] = [];
  const broker = {
    // Older than leased peeks, as slowPollBroker.
    peek: () => Promise.resolve({ messages: [message(++shown)], more: false }),
    poll: async (_agent: string, _limit: number, upTo: number) => {
      polled.get(upTo)!.resolve();
      await answered.get(upTo)!.promise;
      return [message(upTo)];
    },
    parkDeadLetter: async (_agent: string, id: number) => {
      if (id === 7) {
        // 8's take answers while 7 is being parked, and its call ends (the rest of it runs in microtasks).
        answered.get(8)!.resolve();
        await new Promise((resolve) => setImmediate(resolve));
      }
      parked.push(id);
      return {};
    },
  } as unknown as BrokerClient;
  const { client, server, parkUnreturned, errors } = await connectTools(broker);
  await cancelInboxWhilePolling(client, polled.get(7)!.promise);
  await cancelInboxWhilePolling(client, polled.get(8)!.promise);
  // 7's take answers after its cancel: held, for the end of the session to park.
  answered.get(7)!.resolve();
  await new Promise((resolve) => setImmediate(resolve));
  await client.close();
  await server.close();
  assert.equal(await parkUnreturned(), true);
  assert.deepEqual(parked, [7, 8]);
  assert.deepEqual(errors, []);
});

test("a message the session's end cannot park while the broker answers 503 storage_unavailable is parked once it can", async () => {
  // The park failed at once with the 503 (PostgreSQL away for a moment): the message, taken, was lost.
  const answer = signal();
  const { broker, pollStarted, parked } = slowPollBroker([7], answer.promise);
  const { parkDeadLetter } = broker as unknown as { parkDeadLetter: (...args: unknown[]) => Promise<unknown> };
  let refusals = 2;
  Object.assign(broker, {
    parkDeadLetter: (...args: unknown[]) =>
      refusals-- > 0
        ? Promise.reject(new InteropError("storage_unavailable", "Broker refused (HTTP 503): Storage unavailable", { status: 503, retryAfter: 0.01 }))
        : parkDeadLetter(...args),
  });
  const { client, server, parkUnreturned, errors } = await connectTools(broker);
  await cancelInboxWhilePolling(client, pollStarted);
  answer.resolve();
  await client.close();
  await server.close();
  assert.equal(await parkUnreturned(), true);
  assert.deepEqual(parked.map((message) => message.id), [7]);
  assert.deepEqual(errors, []);
});

test("a message that cannot be parked at the session's end does not stop the others being parked", async () => {
  const answer = signal();
  // 5 was removed by retention meanwhile (or the broker blipped): the broker refuses to park it.
  const { broker, pollStarted, parked } = slowPollBroker([5, 6, 7], answer.promise, [5]);
  const { client, server, parkUnreturned, errors } = await connectTools(broker);
  await cancelInboxWhilePolling(client, pollStarted);
  answer.resolve();
  await client.close();
  await server.close();
  const allParked = await parkUnreturned().catch(() => "rejected");
  assert.deepEqual(parked.map((message) => message.id), [6, 7]);
  assert.equal(allParked, false);
  assert.equal(errors.length, 1);
  assert.match(errors[0], /could not park message 5 .*message 5 is gone/);
});

/**
 * A client speaking raw JSON-RPC frames to the tools, to put a cancel on the wire after the answer it crossed (the
 * SDK client cannot: it cancels only calls it still awaits, and then ignores their answer).
 */
async function rawSession(broker: BrokerClient, held?: HeldMessage[]) {
  const server = new McpServer({ name: "interop", version: "test" });
  const { serverSide, parkUnreturned } = await serveTools(server, broker, held);
  const wire = serverSide.peer;
  const answers = new Map<number, PromiseWithResolvers<unknown>>();
  const answerTo = (id: number) => answers.get(id) ?? answers.set(id, Promise.withResolvers()).get(id)!;
  /** The ids of the calls whose answer reached the client, in order. */
  const answered: number[] = [];
  wire.onmessage = (frame) => {
    if (!("id" in frame) || "method" in frame) return;
    answered.push(frame.id as number);
    answerTo(frame.id as number).resolve("result" in frame ? frame.result : frame);
  };
  await wire.start();
  const request = (id: number, method: string, params: Record<string, unknown>) => {
    wire.send({ jsonrpc: "2.0", id, method, params });
    return answerTo(id).promise;
  };
  await request(1, "initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } });
  await wire.send({ jsonrpc: "2.0", method: "notifications/initialized" });
  /** Calls `tool` as request `id`; resolves with the ids of the messages its answer holds. */
  const call = async (id: number, tool: string, args: Record<string, unknown> = {}) => {
    const result = await request(id, "tools/call", { name: tool, arguments: args }) as { content: Array<{ text: string }> };
    const value = JSON.parse(result.content[0].text);
    const messages = (Array.isArray(value) ? value : [value.message ?? value.reply]).filter((message) => message !== null);
    return messages.map((message: WireMessage) => message.interop.id);
  };
  const cancel = (id: number) => wire.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "aborted" } });
  const close = async () => {
    await wire.close();
    await server.close();
  };
  /** Calls `tool` as request `id` without waiting for an answer (one to be cancelled). */
  const start = (id: number, tool: string, args: Record<string, unknown> = {}) => void request(id, "tools/call", { name: tool, arguments: args });
  return { call, start, cancel, close, parkUnreturned, request, answered };
}

/**
 * A stand-in broker whose peeks and waits show the next of `batches` (then nothing; a batch given as a promise once
 * it resolves) under a lease, and whose take with that lease takes what was shown up to its `upTo`: the rest goes
 * back to the head of the inbox. `reading` resolves once a read reached it; `pending` is what the inbox holds.
 * It parks all.
 */
function scriptedBroker(batches: Array<number[] | Promise<number[]>>) {
  const parked: number[] = [];
  const reading = Promise.withResolvers<void>();
  const messages = (ids: number[]) => ids.map((id) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage);
  let shown: number[] = [];
  const show = async () => {
    reading.resolve();
    shown = await (batches.shift() ?? []);
    return messages(shown);
  };
  const broker = {
    // Without a lease, a take as the tools made it before they read under one.
    poll: async (_agent: string, _limit: number, upTo?: number, lease?: string) => {
      if (lease === undefined) return await show();
      const [taken, left] = [shown.filter((id) => id <= upTo!), shown.filter((id) => id > upTo!)];
      if (left.length > 0) batches.unshift(left);
      shown = [];
      return messages(taken);
    },
    peek: async () => ({ messages: await show(), more: false, lease: "lease" }),
    waitLeased: async () => {
      const [message] = await show();
      return message === undefined ? null : { message, lease: "lease" };
    },
    parkDeadLetter: (_agent: string, id: number) => {
      parked.push(id);
      return Promise.resolve({});
    },
  } as unknown as BrokerClient;
  return { broker, parked, reading: reading.promise, pending: () => batches };
}

test("an inbox call cancelled while its read is at the broker takes nothing: what it was shown stays in the inbox", async () => {
  // OpenClaw cancels a call when its turn is aborted and closes the session soon after. The call's poll took the
  // messages, and the session's end parked them as dead letters: the agent never got them unless an operator acted.
  // Now they are only shown (under a lease) to the read, and the cancelled call takes nothing.
  const read = Promise.withResolvers<number[]>();
  const { broker, parked, reading, pending } = scriptedBroker([read.promise]);
  const session = await rawSession(broker);
  session.start(2, "inbox");
  await reading;
  await session.cancel(2);
  read.resolve([7, 8]);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, []);
  assert.deepEqual(pending(), [[7, 8]]);
});

test("a wait answers what it was shown and takes it once the answer is written; a take refused leaves it in the inbox", async () => {
  // Taken before the answer, a message was lost when interop mcp was killed between the take and the answer's write.
  // A take refused 409 inbox_leased (the lease ran out, or a broker of its own restarted, and another reader leased
  // the inbox) leaves it to that reader: shown again, the at-least-once side.
  const takes: string[] = [];
  const message = { text: "m7", interop: { id: 7, from: "hermes" } } as unknown as WireMessage;
  const taken = Promise.withResolvers<void>();
  let answered: number[] = [];
  const broker = {
    waitLeased: () => Promise.resolve({ message, lease: "lost" }),
    poll: (_agent: string, _limit: number, upTo: number, lease: string) => {
      takes.push(`up to ${upTo} under ${lease}, answered: ${answered}`);
      taken.resolve();
      return Promise.reject(new InteropError("inbox_leased", "Another reader is polling openclaw's inbox", { status: 409 }));
    },
  } as unknown as BrokerClient;
  const session = await rawSession(broker);
  answered = session.answered;
  assert.deepEqual(await session.call(2, "wait", { timeout_seconds: 10 }), [7]);
  await taken.promise;
  // Then a take of nothing, which ends the lease a failed take leaves (refused too, here).
  await waitFor(() => takes.length === 2, 5000, "the take of nothing");
  assert.deepEqual(takes, ["up to 7 under lost, answered: 1,2", "up to 0 under lost, answered: 1,2"], "taken once the answer reached the client");
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
});

// Red team 54: a take refused by a full disk (507) after the answer was written left the message in the inbox, and
// the next call showed it as new, though the tool descriptions say a message comes again only marked.
test("a message whose take fails after its answer was written (a full disk) is shown again marked redelivered, its lease ended", async () => {
  const takes: number[] = [];
  const message = { text: "m7", interop: { id: 7, from: "hermes" } } as unknown as WireMessage;
  const broker = {
    peek: () => Promise.resolve({ messages: [message], more: false, lease: "lease" }),
    poll: (_agent: string, _limit: number, upTo: number) => {
      takes.push(upTo);
      return upTo === 0 ? Promise.resolve([]) : Promise.reject(new InteropError("storage_full", "No room on the disk", { status: 507 }));
    },
  } as unknown as BrokerClient;
  const session = await rawSession(broker);
  const shown = async (id: number) => {
    const result = await session.request(id, "tools/call", { name: "inbox", arguments: {} }) as { content: Array<{ text: string }> };
    return JSON.parse(result.content[0].text).map((m: { interop: { id: number; redelivered?: boolean } }) => [m.interop.id, m.interop.redelivered ?? false]);
  };
  assert.deepEqual(await shown(2), [[7, false]]);
  await waitFor(() => takes.length === 2, 5000, "the take and the take of nothing").catch(() => {});
  assert.deepEqual(takes, [7, 0], "the take, refused, then the take of nothing that ends the lease");
  assert.deepEqual(await shown(3), [[7, true]]);
  await session.close();
});

/**
 * A stand-in broker for an ask whose question is message 5: its leased reply wait shows reply 7 under a lease once
 * `replied` resolves, and takes it only with take=7 (a taking wait, as before leased reply waits, takes it at once).
 * `inbox` is what the agent's inbox holds; it parks all.
 */
function askedBroker(replied: Promise<void>) {
  const parked: number[] = [];
  const inbox = [7];
  const waiting = Promise.withResolvers<void>();
  const reply = { text: "yes", interop: { id: 7, from: "hermes", reply_to: 5 } } as unknown as WireMessage;
  const broker = {
    send: () => Promise.resolve({ id: 5, ids: [5], to: ["hermes"] }),
    wait: async () => {
      waiting.resolve();
      await replied;
      inbox.splice(0);
      return reply;
    },
    waitLeasedReply: async () => {
      waiting.resolve();
      await replied;
      return { message: reply, lease: "lease" };
    },
    takeOne: (_agent: string, id: number) => Promise.resolve(inbox.splice(inbox.indexOf(id), 1).length === 1 ? reply : null),
    // The take of nothing that ends the lease.
    poll: () => Promise.resolve([]),
    parkDeadLetter: (_agent: string, id: number) => {
      parked.push(id);
      return Promise.resolve({});
    },
  } as unknown as BrokerClient;
  return { broker, parked, inbox, waiting: waiting.promise };
}

test("an ask cancelled while its reply was on its way takes nothing: the reply stays in the inbox, not held or parked", async () => {
  // The ask's long poll took the reply that came in the moment of the cancel, and the session's end parked it as a
  // dead letter. Now the reply is only shown (under a lease), and the cancelled call takes nothing.
  const replied = Promise.withResolvers<void>();
  const { broker, parked, inbox, waiting } = askedBroker(replied.promise);
  const session = await rawSession(broker);
  session.start(2, "ask", { to: "hermes", text: "deploy?", timeout_seconds: 30 });
  await waiting;
  await session.cancel(2);
  replied.resolve();
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, []);
  assert.deepEqual(inbox, [7]);
});

test("a live ask takes its reply alone, with the lease it was shown under", async () => {
  const replied = Promise.withResolvers<void>();
  replied.resolve();
  const { broker, parked, inbox } = askedBroker(replied.promise);
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "ask", { to: "hermes", text: "deploy?" }), [7]);
  assert.deepEqual(inbox, []);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, []);
});

// Red team, session 50: the token revoked while an ask waited, the tool failed with the broker's "nothing was taken from
// the inbox" alone: a model reading it asks again, and the other agent gets the question twice.
test("an ask whose wait for the reply fails says the question was sent, and which message it is", async () => {
  const replied = Promise.withResolvers<void>();
  const { broker } = askedBroker(replied.promise);
  Object.assign(broker, {
    waitLeasedReply: () => Promise.reject(new InteropError("unauthorized", "Invalid token: it was revoked while this request waited; nothing was taken from the inbox")),
  });
  const { client } = await connectTools(broker);
  const result = await client.callTool({ name: "ask", arguments: { to: "hermes", text: "deploy?" } }) as { isError?: boolean; content: Array<{ text: string }> };
  assert.equal(result.isError, true);
  assert.match(result.content[0].text, /Message 5 was sent to hermes, but waiting for its reply failed: Invalid token: it was revoked/);
  await client.close();
});

test("an ask on a broker older than leased reply waits (400 invalid_query) waits for its reply as before, taking it", async () => {
  const replied = Promise.withResolvers<void>();
  replied.resolve();
  const { broker, inbox } = askedBroker(replied.promise);
  Object.assign(broker, {
    waitLeasedReply: () => Promise.reject(new InteropError("invalid_query", "A /wait with peek=1 needs lease=S (1-300 seconds), and takes no reply_to")),
  });
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "ask", { to: "hermes", text: "deploy?" }), [7]);
  assert.deepEqual(inbox, [], "taken by the wait");
  await session.close();
});

test("an ask sends its question holding its reply (hold_reply), and plainly on a broker older than that (400 invalid_query)", async () => {
  // Sent plainly, a reply committed before the ask's first wait arrived went to the agent's stream ("No reply").
  for (const older of [false, true]) {
    const replied = Promise.withResolvers<void>();
    replied.resolve();
    const { broker } = askedBroker(replied.promise);
    const sends: (number | undefined)[] = [];
    Object.assign(broker, {
      send: (_from: string, _to: string, _payload: unknown, options: { holdReplySeconds?: number } = {}) => {
        sends.push(options.holdReplySeconds);
        if (older && options.holdReplySeconds !== undefined) return Promise.reject(new InteropError("invalid_query", "Unknown hold_reply"));
        return Promise.resolve({ id: 5, ids: [5], to: ["hermes"] });
      },
    });
    const session = await rawSession(broker);
    assert.deepEqual(await session.call(2, "ask", { to: "hermes", text: "deploy?" }), [7]);
    assert.deepEqual(sends, older ? [30, undefined] : [30]);
    await session.close();
  }
});

/** A broker's 503 while its database cannot be reached (Retry-After short, for the test). */
const storageUnavailable = () =>
  new InteropError("storage_unavailable", "Broker refused (HTTP 503): Storage unavailable: PostgreSQL cannot be reached; retry shortly", {
    status: 503,
    retryAfter: 0.01,
  });

test("a wait whose long poll or take meets the broker's 503 storage_unavailable waits on, returning the message once it is back", async () => {
  // The wait call failed with the 503 at once, though it had a timeout to wait out and nothing was taken.
  const { broker } = scriptedBroker([[7]]);
  const { waitLeased, poll } = broker as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const failing = { waits: 2, takes: 1 };
  Object.assign(broker, {
    waitLeased: (...args: unknown[]) => failing.waits-- > 0 ? Promise.reject(storageUnavailable()) : waitLeased(...args),
    // The take under the lease, after the answer, fails too: nothing taken, it is asked again.
    poll: (...args: unknown[]) => {
      if (failing.takes-- > 0) {
        (broker as unknown as { waitLeased: unknown }).waitLeased = () => Promise.resolve({ message: { text: "m7", interop: { id: 7, from: "hermes" } }, lease: "lease" });
        return Promise.reject(storageUnavailable());
      }
      return poll(...args);
    },
  });
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "wait", { timeout_seconds: 30 }), [7]);
  await session.close();
});

test("a take after a wait's answer that meets the broker's 503 storage_unavailable is asked again, not given up", async () => {
  // Given up at once, the message the model had read stayed in the inbox and was shown to it again after the outage.
  const message = { text: "m7", interop: { id: 7, from: "hermes" } } as unknown as WireMessage;
  const takes: string[] = [];
  const taken = Promise.withResolvers<void>();
  const broker = {
    waitLeased: () => Promise.resolve({ message, lease: "lease" }),
    poll: (_agent: string, _limit: number, upTo: number, lease: string) => {
      takes.push(`up to ${upTo} under ${lease}`);
      if (takes.length === 1) return Promise.reject(storageUnavailable());
      taken.resolve();
      return Promise.resolve([message]);
    },
  } as unknown as BrokerClient;
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "wait", { timeout_seconds: 10 }), [7]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 20_000)));
  await Promise.race([taken.promise, gaveUp]);
  clearTimeout(timer);
  assert.deepEqual(takes, ["up to 7 under lease", "up to 7 under lease"]);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
});

test("an ask whose reply wait meets the broker's 503 storage_unavailable waits on for the reply: the question is sent once", async () => {
  // The ask failed with the 503 after its question was stored, and a model asks again: the question twice.
  const replied = Promise.withResolvers<void>();
  replied.resolve();
  const { broker, inbox } = askedBroker(replied.promise);
  let sends = 0;
  const { send, waitLeasedReply } = broker as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  let failures = 3;
  Object.assign(broker, {
    send: (...args: unknown[]) => (sends++, send(...args)),
    waitLeasedReply: (...args: unknown[]) => failures-- > 0 ? Promise.reject(storageUnavailable()) : waitLeasedReply(...args),
  });
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "ask", { to: "hermes", text: "deploy?", timeout_seconds: 30 }), [7]);
  assert.equal(sends, 1);
  assert.deepEqual(inbox, []);
  await session.close();
});

test("a wait whose broker answers 503 storage_unavailable until its timeout returns no message, and another error fails it at once", async () => {
  const { broker } = scriptedBroker([]);
  Object.assign(broker, { waitLeased: () => Promise.reject(storageUnavailable()) });
  const session = await rawSession(broker);
  const none = await session.request(2, "tools/call", { name: "wait", arguments: { timeout_seconds: 0.2 } }) as { content: Array<{ text: string }> };
  assert.deepEqual(JSON.parse(none.content[0].text), { message: null });
  Object.assign(broker, { waitLeased: () => Promise.reject(new InteropError("forbidden", "Forbidden: the token of hermes cannot read openclaw")) });
  const failed = await session.request(3, "tools/call", { name: "wait", arguments: { timeout_seconds: 30 } }) as { isError?: boolean; content: Array<{ text: string }> };
  assert.equal(failed.isError, true);
  assert.match(failed.content[0].text, /Forbidden/);
  await session.close();
});

test("messages answered to an inbox call whose cancel crossed the answer are returned by the next call", async () => {
  // The client cancelled before the answer reached it, so it drops the answer: the messages must come again.
  const { broker, parked } = scriptedBroker([[7, 8], [9]]);
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "inbox"), [7, 8]);
  await session.cancel(2);
  assert.deepEqual(await session.call(3, "inbox"), [7, 8, 9]);
  // Seen once by the client now: a second cancel for call 2 (or one for call 3, answered and read) repeats nothing.
  await session.cancel(2);
  assert.deepEqual(await session.call(4, "inbox"), []);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, []);
});

// MCP red team, stop 56: the SDK's client cancels every call whose signal is aborted later, answered or not (a turn's
// signal): each cancel held the redelivered message again, so it came back in every answer, and wait never moved on.
test("a message returned marked redelivered is not held again by a later cancel: the calls move on to newer messages", async () => {
  const { broker, parked } = scriptedBroker([[7], [8], [9]]);
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "inbox"), [7]);
  await session.cancel(2);
  assert.deepEqual(await session.call(3, "inbox"), [7, 8]);
  await session.cancel(3);
  assert.deepEqual(await session.call(4, "inbox"), [8, 9]);
  await session.cancel(4);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, [9], "only what no answer returned twice is parked");
});

test("a message answered to a wait call whose cancel crossed the answer is parked when the session ends first", async () => {
  const { broker, parked } = scriptedBroker([[7]]);
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "wait", { timeout_seconds: 1 }), [7]);
  await session.cancel(2);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, [7]);
});

test("a cancel for a call that was answered and is long forgotten puts nothing back", async () => {
  // Only the last 100 answers are remembered: a cancel for an older one is from a client that read it.
  const { broker, parked } = scriptedBroker(Array.from({ length: 101 }, (_, index) => [index + 1]));
  const session = await rawSession(broker);
  for (let id = 2; id <= 102; id++) await session.call(id, "inbox");
  await session.cancel(2);
  assert.deepEqual(await session.call(103, "inbox"), []);
  await session.cancel(3);
  assert.deepEqual(await session.call(104, "inbox"), [2]);
  await session.close();
  await session.parkUnreturned();
  assert.deepEqual(parked, []);
});

test("TakenMessages forgets an answer after 30 s: a cancel that late is from a client that read it", () => {
  let now = 0;
  const taken = new TakenMessages({ now: () => now });
  const message = (id: number) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage;
  const live = new AbortController().signal;
  taken.answering("a", live, [message(1)]);
  taken.answering("b", live, [message(2)]);
  now = 30_000;
  taken.cancelled("a");
  now = 30_001;
  taken.cancelled("b");
  assert.deepEqual(taken.drain().map((held) => held.message.interop.id), [1]);
});

test("TakenMessages marks redelivered what a cancel after its answer put back, not what a call cancelled before its answer took", () => {
  const taken = new TakenMessages({ now: () => 0 });
  const message = (id: number) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage;
  taken.answering("a", new AbortController().signal, [message(1)]);
  taken.cancelled("a");
  taken.answering("b", AbortSignal.abort(), [message(2)]);
  assert.deepEqual(taken.takeHeld(2).map(({ interop }) => [interop.id, interop.redelivered]), [[1, true], [2, undefined]]);
});

test("TakenMessages keeps what it holds until the answer returning it was written, or its park was done: a kill in between finds it kept", () => {
  const kept: number[][] = [];
  const taken = new TakenMessages({
    now: () => 0,
    kept: {
      keep: (held) => {
        kept.push(held.map(({ message }) => message.interop.id));
        return true;
      },
    },
  });
  const message = (id: number) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage;
  const live = new AbortController().signal;
  taken.answering("a", live, [message(1), message(2), message(3)]);
  assert.deepEqual(kept, [], "an answer written is the client's: nothing kept");
  taken.cancelled("a");
  assert.deepEqual(kept, [[1, 2, 3]]);
  const returned = taken.takeHeld(2);
  assert.deepEqual(kept, [[1, 2, 3]], "returned by a call whose answer is not written yet: still kept");
  // Both no longer kept once written (before: the first alone, the second came back in every later session).
  taken.answering("b", live, returned);
  assert.deepEqual(kept.at(-1), [3]);
  taken.drain();
  assert.deepEqual(kept.at(-1), [3], "being parked: still kept");
  taken.parked(3);
  assert.deepEqual(kept.at(-1), []);
});

test("an inbox call whose read fails answers what was held for it (before: the call failed, and those messages, taken already, were gone)", async () => {
  const down = Promise.reject(new InteropError("unreachable", "Cannot reach the broker at http://b"));
  down.catch(() => {});
  const { broker, parked } = scriptedBroker([[7], down]);
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "inbox"), [7]);
  // A cancel that crossed the answer: 7 is held for the next call.
  await session.cancel(2);
  assert.deepEqual(await session.call(3, "inbox"), [7]);
  assert.deepEqual(await session.call(4, "inbox"), []);
  await session.close();
  assert.equal(await session.parkUnreturned(), true);
  assert.deepEqual(parked, []);
});

test("a message taken over from a session that died before its take shows once: returned from what was held, left out of the read that shows it again", async () => {
  const { broker, pending } = scriptedBroker([[7, 8], [9]]);
  const seven = { text: "m7", interop: { id: 7, from: "hermes" } } as unknown as WireMessage;
  const session = await rawSession(broker, [{ message: seven, written: true }]);
  const request = await session.request(2, "tools/call", { name: "inbox", arguments: {} }) as { content: Array<{ text: string }> };
  const shown = JSON.parse(request.content[0].text) as Array<{ interop: { id: number; redelivered?: true } }>;
  assert.deepEqual(shown.map(({ interop }) => [interop.id, interop.redelivered]), [[7, true], [8, undefined]]);
  // 7 was taken with 8 (up to the last shown): the next read starts after them.
  assert.deepEqual(await session.call(3, "inbox"), [9]);
  assert.deepEqual(pending(), []);
  await session.close();
  await session.parkUnreturned();
});

test("a cancel for a request id used again is for the new call: the earlier call's answer, read, is not put back", async () => {
  const polled = Promise.withResolvers<number[]>();
  const { broker } = scriptedBroker([[7], polled.promise]);
  const session = await rawSession(broker);
  assert.deepEqual(await session.call(2, "inbox"), [7]);
  // Id 2 again, once its first call was answered (JSON-RPC allows it); cancelled while its poll is at the broker.
  session.start(2, "inbox");
  await session.cancel(2);
  polled.resolve([8]);
  // One turn of the event loop: the cancelled call, all microtasks in memory, has held what its poll took.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(await session.call(3, "inbox"), [8]);
  await session.close();
  await session.parkUnreturned();
});

test("the send tool answers whom a broadcast left out, as the broker said", async () => {
  const refused = [{ agent: "bob", code: "inbox_full", reason: "Inbox full: bob has 1 undelivered messages (the cap is 1)" }];
  const broker = {
    send: () => Promise.resolve({ delivered: true, id: 7, ids: [7], to: ["carol"], timestamp: "t", refused }),
  } as unknown as BrokerClient;
  const { client } = await connectTools(broker);
  const result = await client.callTool({ name: "send", arguments: { text: "to everyone" } }) as { content: Array<{ text: string }> };
  assert.deepEqual(JSON.parse(result.content[0].text), { sent: true, ids: [7], to: ["carol"], refused });
  await client.close();
});

test("a send whose answer was lost names its key, and sent again with it the broker gets the same key", async () => {
  const keys: Array<string | undefined> = [];
  const broker = {
    send: (_from: string, _to: string, _payload: unknown, options: { key?: string }) => {
      keys.push(options.key);
      if (keys.length === 1) {
        return Promise.reject(new InteropError("in_doubt", "No answer from the broker at http://b (ECONNRESET) after the request went out: it may have been done"));
      }
      return Promise.resolve({ delivered: true, id: 7, ids: [7], to: ["bob"], timestamp: "t" });
    },
  } as unknown as BrokerClient;
  const { client } = await connectTools(broker);
  const failed = await client.callTool({ name: "send", arguments: { to: "bob", text: "pay invoice 42" } }) as {
    isError?: boolean;
    content: Array<{ text: string }>;
  };
  assert.equal(failed.isError, true);
  const key = /idempotency_key "([^"]+)"/.exec(failed.content[0].text)?.[1];
  assert.ok(key !== undefined && key === keys[0], failed.content[0].text);
  const again = await client.callTool({ name: "send", arguments: { to: "bob", text: "pay invoice 42", idempotency_key: key } }) as {
    content: Array<{ text: string }>;
  };
  assert.deepEqual(JSON.parse(again.content[0].text), { sent: true, ids: [7], to: ["bob"] });
  assert.deepEqual(keys, [key, key]);
  await client.close();
});
