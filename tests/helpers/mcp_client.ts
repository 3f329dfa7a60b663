/** An MCP client (the SDK's) of `interop mcp` run as a child process, for end-to-end tests of the MCP server. */
// @ts-types: the SDK's subpath types need pointing at for Deno's checker (see src/cli/mcp.ts).
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.d.ts"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/client/stdio.d.ts"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import process from "node:process";
import { cliCommand } from "./cli.ts";

/** `interop mcp --agent AGENT --url URL` started and connected; the caller closes the client (which stops it). */
export async function connect(url: string, agent: string): Promise<Client> {
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

export type ToolResult = { content: Array<{ type: string; text: string }>; isError?: boolean };

/** Calls tool `name` with `args`. */
export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
  return await client.callTool({ name, arguments: args }) as ToolResult;
}
