// @ts-types: the SDK's subpath types need pointing at for Deno's checker (see src/cli/mcp.ts).
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.d.ts"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/client/stdio.d.ts"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { startBroker } from "../helpers/broker.ts";
import { cliCommand } from "../helpers/cli.ts";

async function connect(url: string, agent: string): Promise<Client> {
  const [command, prefix] = cliCommand();
  const client = new Client({ name: "interop-test", version: "1.0.0" });
  const transport = new StdioClientTransport({
    command,
    args: [...prefix, "mcp", "--agent", agent, "--url", url],
    env: { ...process.env } as Record<string, string>,
    stderr: "pipe",
  });
  try {
    await client.connect(transport);
  } catch (error) {
    // The server process may be running although the handshake failed: no caller holds it to stop.
    await transport.close();
    throw error;
  }
  return client;
}

type ToolResult = { content: Array<{ type: string; text: string }>; isError?: boolean };

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
  return await client.callTool({ name, arguments: args }) as ToolResult;
}

const json = (result: ToolResult) => JSON.parse(result.content[0].text);

test("the MCP server, driven by the SDK's client, sends, waits, asks and lists agents", async () => {
  const broker = await startBroker();
  let hermes: Client | undefined;
  let openclaw: Client | undefined;
  try {
    hermes = await connect(broker.url, "hermes");
    openclaw = await connect(broker.url, "openclaw");
    const { tools } = await hermes.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["agents", "ask", "inbox", "send", "wait"]);
    for (const tool of tools) assert.ok((tool.description ?? "").length > 80, `${tool.name} is described for a model`);

    const sent = json(await call(hermes, "send", { to: "openclaw", text: "hello from hermes" }));
    assert.equal(sent.sent, true);
    const waited = json(await call(openclaw, "wait", { timeout_seconds: 10 }));
    assert.equal(waited.message.text, "hello from hermes");
    assert.equal(waited.message.interop.from, "hermes");
    assert.deepEqual(json(await call(openclaw, "wait", { timeout_seconds: 0.2 })), { message: null });

    const asking = call(hermes, "ask", { to: "openclaw", text: "what is 6 x 7?", timeout_seconds: 20 });
    const question = json(await call(openclaw, "wait", { timeout_seconds: 10 })).message;
    assert.equal(question.text, "what is 6 x 7?");
    await call(openclaw, "send", { json: { answer: 42 }, reply_to: question.interop.id });
    const { reply } = json(await asking);
    assert.equal(reply.answer, 42);
    assert.equal(reply.interop.reply_to, question.interop.id);

    await call(hermes, "send", { to: "openclaw", text: "one" });
    await call(hermes, "send", { to: "openclaw", json: { two: 2 } });
    const inbox = json(await call(openclaw, "inbox"));
    assert.deepEqual(inbox.map((message: { text?: string; two?: number }) => message.text ?? message.two), ["one", 2]);
    assert.deepEqual(json(await call(openclaw, "inbox")), []);

    const agents = json(await call(hermes, "agents"));
    assert.equal(agents.openclaw.online, true);
    assert.equal(agents.hermes.pending, 0);
  } finally {
    await hermes?.close();
    await openclaw?.close();
    await broker.cleanup();
  }
});

test("bad MCP tool arguments give tool errors, and the server keeps serving", async () => {
  const broker = await startBroker();
  let hermes: Client | undefined;
  try {
    hermes = await connect(broker.url, "hermes");
    const neither = await call(hermes, "send", { to: "openclaw" });
    assert.equal(neither.isError, true);
    assert.match(neither.content[0].text, /exactly one of text or json/);
    const badName = await call(hermes, "send", { to: "Bad Name", text: "x" });
    assert.equal(badName.isError, true);
    assert.match(badName.content[0].text, /Invalid agent name/);
    const badType = await call(hermes, "wait", { timeout_seconds: "soon" }).catch((error: Error) => ({
      isError: true,
      content: [{ type: "text", text: error.message }],
    }));
    assert.equal(badType.isError, true);
    const unknownReply = await call(hermes, "send", { text: "x", reply_to: 999 });
    assert.equal(unknownReply.isError, true);
    assert.match(unknownReply.content[0].text, /Cannot reply to message 999/);
    assert.equal(typeof json(await call(hermes, "agents")).hermes, "object", "still serving");
  } finally {
    await hermes?.close();
    await broker.cleanup();
  }
});
