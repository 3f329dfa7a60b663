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
import { parseAgentName, type WireMessage } from "../src/message.ts";
import { registerTools } from "../src/mcp/tools.ts";

/** An MCP client (the SDK's, as OpenClaw uses) talking in memory to the tools over `broker`. */
async function connectTools(broker: BrokerClient): Promise<{ client: Client; server: McpServer; parkUnreturned: () => Promise<void> }> {
  const server = new McpServer({ name: "interop", version: "test" });
  const parkUnreturned = registerTools(server, broker, parseAgentName("openclaw", "agent"));
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "test", version: "1" });
  await client.connect(clientSide);
  return { client, server, parkUnreturned };
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
  const parked: Array<{ agent: string; id: number; reason: string }> = [];
  let cancelled!: () => void;
  const cancelArrived = new Promise<void>((resolve) => (cancelled = resolve));
  let polling!: () => void;
  const pollStarted = new Promise<void>((resolve) => (polling = resolve));
  // The poll is in flight when the cancel comes: the broker has taken the message by then.
  const broker = {
    poll: async () => {
      polling();
      await cancelArrived;
      return [{ text: "taken", interop: { id: 7, from: "hermes" } } as unknown as WireMessage];
    },
    parkDeadLetter: (agent: string, id: number, reason: string) => {
      parked.push({ agent, id, reason });
      return Promise.resolve({});
    },
  } as unknown as BrokerClient;
  const { client, server, parkUnreturned } = await connectTools(broker);
  const aborting = new AbortController();
  const inbox = client.callTool({ name: "inbox", arguments: {} }, undefined, { signal: aborting.signal });
  await pollStarted;
  aborting.abort("the turn was aborted");
  await assert.rejects(inbox, /the turn was aborted/);
  cancelled();
  await client.close();
  await server.close();
  await parkUnreturned();

  assert.equal(parked.length, 1);
  assert.equal(parked[0].agent, "openclaw");
  assert.equal(parked[0].id, 7);
  assert.match(parked[0].reason, /taken for an MCP call its client cancelled/);
});
