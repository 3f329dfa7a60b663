/**
 * How a session's tools are wired into its MCP transport: they see what the client sends, and each answer written;
 * and how a line that is no JSON-RPC message is answered.
 */
// @ts-types: see src/cli/mcp.ts.
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/shared/transport.d.ts"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/types.d.ts"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
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

/**
 * After `server.connect(transport)` (which sets `onerror`): a line from the client that is not JSON, or not a JSON-RPC
 * message, is answered with JSON-RPC's error for it (-32700, -32600; its id cannot be read, so null), as the spec
 * asks, where the SDK's stdio transport only reported it to `onerror` and the client waited for an answer that never
 * came (red team 53). `write` sends the answer.
 */
export function answerUnreadable(transport: Transport, write: (message: JSONRPCMessage) => Promise<void>): void {
  const reported = transport.onerror;
  transport.onerror = (error) => {
    reported?.(error);
    const refusal = error instanceof SyntaxError
      ? { code: -32700, message: `Parse error: ${error.message}` }
      : error.name === "ZodError"
      ? { code: -32600, message: "Invalid Request: the line is JSON, but not a JSON-RPC 2.0 request, notification or response" }
      : undefined;
    if (refusal === undefined) return;
    // A JSON-RPC error answer to no request: the SDK's types want an id, and the spec's is null.
    void write({ jsonrpc: "2.0", id: null, error: refusal } as unknown as JSONRPCMessage).catch(() => {});
  };
}
