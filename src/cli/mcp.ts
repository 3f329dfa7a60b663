/** `interop mcp`: an MCP server on stdio that lets an agent use its interop inbox through tools. */
// The SDK's subpath types resolve through `typesVersions`, which Deno 2.9's type checker does not read: the
// @ts-types lines point it at the declarations. Node and esbuild ignore them.
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/server/mcp.d.ts"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/server/stdio.d.ts"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/types.d.ts"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import process from "node:process";
import type { Writable } from "node:stream";
import { HeldFile } from "../mcp/held_file.ts";
import { keptLines } from "../mcp/kept_lines.ts";
import { answerUnreadable, wireTools } from "../mcp/session_transport.ts";
import { registerTools } from "../mcp/tools.ts";
import { defaultMcpStateDir } from "../paths.ts";
import { VERSION } from "../version.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseFlags } from "./args.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { createLogger } from "./logger.ts";

export const HELP = `interop mcp — an MCP server for one agent's inbox

Usage: interop mcp -a AGENT [-u URL]

Speaks MCP over stdin/stdout (start it from the agent's MCP client config). Tools:
  send     send a message (to, text or json, reply_to)
  inbox    the waiting messages, marked read
  wait     block until the next message arrives (how an agent waits without polling)
  ask      send a question and wait for the reply to it
  agents   who exists, who is online, pending counts

Hermes (~/.hermes/config.yaml):
  mcp_servers:
    interop:
      command: interop
      args: ["mcp", "--agent", "hermes"]

OpenClaw (~/.openclaw/openclaw.json, or: openclaw mcp add):
  "mcp": { "servers": { "interop": { "command": "interop", "args": ["mcp", "--agent", "openclaw"] } } }

Options:
  -a, --agent AGENT   the agent the tools act as (default $INTEROP_AGENT)
${CLIENT_HELP}
  -h, --help          show this help

A tool's messages are marked read once its answer is written to stdout: killed before
that, they stay in the inbox; killed after it, before they were marked, they are shown
again (at least once, never lost). What a cancel that crossed an answer leaves taken is
kept in $XDG_STATE_HOME/interop/mcp (else ~/.local/state/interop/mcp) until returned or
parked: the agent's next session returns what a killed one kept. wait and ask keep polling
through 503 storage_unavailable (the broker's PostgreSQL away) until their timeout.

Exit codes: 0 the client closed the session, 1 it did, but a message taken for a cancelled
call could not be parked as a dead letter (each such message is named on stderr) or a call
was still running 30 s after the close, 2 bad usage.
`;

export const OPTIONS = {
  agent: { type: "string", short: "a" },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("mcp", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const agent = agentFlag("mcp", "--agent", values.agent, io.env);
  const log = createLogger(io, "mcp", false);
  const server = new McpServer({ name: "interop", version: VERSION });
  const client = brokerClient("mcp", values, io.env);
  const file = new HeldFile(defaultMcpStateDir(io.env), agent, client.urls.all, () => client.inboxStore(agent), (error) => {
    log.error(`cannot keep the messages held for the next call in ${file.path}: ${error.message}; held in memory alone, a kill loses them`);
  });
  // What a session that died held, from the broker's store as it is now: unknown (the broker away), left for a later one.
  const held = await file.takeOverDead(() => client.status().then((report) => report.store_id, () => undefined));
  const tools = registerTools(server, client, agent, { file, held });
  const input = keptLines(process.stdin, (answer) => void writeLine(process.stdout, answer).catch(() => {}));
  const transport = new StdioServerTransport(input);
  // The SDK's send (1.32) resolves once stdout accepted the line, which may still be in this process's buffer; a
  // take after an answer needs it in the pipe, where the client reads it even if this process is killed.
  transport.send = (message) => writeLine(process.stdout, message);
  wireTools(transport, tools);
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    // The SDK's stdio transport (1.30) does not watch for the end of stdin, which is how MCP clients close a
    // session: the process would just run out of work and exit, skipping the close below. The end of the lines, not
    // of stdin: it comes once the SDK was handed every line.
    input.once("end", () => resolve());
    io.shutdown.addEventListener("abort", () => resolve(), { once: true });
  });
  await server.connect(transport);
  answerUnreadable(transport, (message) => writeLine(process.stdout, message));
  await closed;
  // The close cancels the calls still running; endSession waits for them, as a poll's answer may still come.
  await server.close();
  return await tools.endSession(log) ? EXIT.ok : EXIT.failure;
}

/** Writes `message` as one JSON line (as the SDK's stdio transport does), resolving once the stream wrote it out. */
function writeLine(stdout: Writable, message: JSONRPCMessage): Promise<void> {
  return new Promise((resolve, reject) => stdout.write(`${JSON.stringify(message)}\n`, (error) => error ? reject(error) : resolve()));
}
