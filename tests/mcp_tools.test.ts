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
import { registerTools } from "../src/mcp/tools.ts";

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
  const park = registerTools(server, broker, parseAgentName("openclaw", "agent"));
  const errors: string[] = [];
  const ignore = () => {};
  const log: Logger = { info: ignore, warn: ignore, debug: ignore, error: (message) => errors.push(message) };
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "test", version: "1" });
  await client.connect(clientSide);
  return { client, server, parkUnreturned: () => park(log), errors };
}

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/**
 * A stand-in broker whose poll, once called, hands out `ids` (taken) when `answer` resolves; it parks all but
 * `refused`.
 */
function slowPollBroker(ids: number[], answer: Promise<void>, refused: number[] = []) {
  const pollStarted = signal();
  const parked: Array<{ agent: string; id: number; reason: string }> = [];
  const broker = {
    poll: async () => {
      pollStarted.resolve();
      await answer;
      return ids.map((id) => ({ text: `m${id}`, interop: { id, from: "hermes" } }) as unknown as WireMessage);
    },
    parkDeadLetter: (agent: string, id: number, reason: string) => {
      if (refused.includes(id)) return Promise.reject(new InteropError("not_found", `message ${id} is gone`));
      parked.push({ agent, id, reason });
      return Promise.resolve({});
    },
  } as unknown as BrokerClient;
  return { broker, pollStarted: pollStarted.promise, parked };
}

/** Calls inbox and cancels the call once its poll has reached the broker, as OpenClaw does when a turn is aborted. */
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
  let polls = 0;
  const broker = {
    poll: () => {
      polls++;
      return Promise.resolve([{ text: "taken", interop: { id: 7, from: "hermes" } } as unknown as WireMessage]);
    },
  } as unknown as BrokerClient;
  const { client, server } = await connectTools(broker);
  const aborting = new AbortController();
  const inbox = client.callTool({ name: "inbox", arguments: {} }, undefined, { signal: aborting.signal });
  aborting.abort("the turn was aborted");
  await assert.rejects(inbox, /the turn was aborted/);
  await client.close();
  await server.close();
  assert.equal(polls, 0);
});

test("a message taken while its inbox call was being cancelled is parked as a dead letter when the session ends", async () => {
  // The poll is in flight when the cancel comes: the broker has taken the message by then.
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
