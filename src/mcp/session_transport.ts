/** How a session's tools are wired into its MCP transport: they see what the client sends, and each answer written. */
// @ts-types: see src/cli/mcp.ts.
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/shared/transport.d.ts"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { SessionTools } from "./tools.ts";

/**
 * Before `server.connect(transport)`: the tools see each message from the client first (the SDK's connect keeps a
 * handler set before it and calls it first), and each message to the client once the transport's send is done
 * (what a call's answer shows is taken then) or failed.
 */
export function wireTools(transport: Transport, tools: SessionTools): void {
  transport.onmessage = tools.observe;
  const send = transport.send.bind(transport);
  transport.send = (message, options) =>
    send(message, options).then(() => tools.sent(message, true), (error) => {
      tools.sent(message, false);
      throw error;
    });
}
