/** The `interop` command: dispatches to a subcommand, reports its error, and is the only place that exits. */
import process from "node:process";
import * as ask from "./cli/ask.ts";
import * as integrate from "./cli/integrate.ts";
import * as listen from "./cli/listen.ts";
import * as mcp from "./cli/mcp.ts";
import * as poll from "./cli/poll.ts";
import * as send from "./cli/send.ts";
import * as serve from "./cli/serve.ts";
import * as service from "./cli/service.ts";
import * as status from "./cli/status.ts";
import * as token from "./cli/token.ts";
import { EXIT, exitCodeFor } from "./cli/exit_codes.ts";
import type { Io } from "./cli/io.ts";
import { InteropError } from "./errors.ts";
import { VERSION } from "./version.ts";

const SUBCOMMANDS: Record<string, { run(args: string[], io: Io): Promise<number> }> = {
  serve,
  listen,
  send,
  ask,
  poll,
  status,
  mcp,
  integrate,
  token,
  service,
};

const HELP = `interop ${VERSION} — a real-time message bridge between AI agents

Usage: interop <command> [options]

Commands:
  serve     run the broker (127.0.0.1:18900)
  listen    follow an agent's inbox into a pipe, a file, a command or stdout
  send      publish a message (--reply-to ID answers one)
  ask       send a question and wait for the reply
  poll      print an agent's pending messages once
  status    show the broker's health (table, --json, exit codes for cron)
  mcp       an MCP server on stdio for one agent (send, inbox, wait, ask, agents)
  integrate print (or --write) what plugs Hermes or OpenClaw into interop here
  token     create, list and revoke access tokens
  service   install the broker as a systemd service (or --dry-run to see the unit)

Run 'interop <command> --help' for a command's options.
Environment: INTEROP_URL (broker URL), INTEROP_AGENT (default agent),
INTEROP_TOKEN (access token), INTEROP_DATA_DIR (serve's data dir),
INTEROP_DATABASE_URL (serve's PostgreSQL).
`;

async function main(args: string[], io: Io): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    (command === undefined ? io.stderr : io.stdout)(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === "--version" || command === "-V") {
    io.stdout(`interop ${VERSION}\n`);
    return EXIT.ok;
  }
  try {
    const subcommand = SUBCOMMANDS[command];
    if (subcommand === undefined) {
      throw new InteropError("usage", `Unknown command: ${JSON.stringify(command)}; run 'interop --help' for the list`);
    }
    return await subcommand.run(rest, io);
  } catch (error) {
    io.stderr(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return exitCodeFor(error);
  }
}

function processIo(): Io {
  const shutdown = new AbortController();
  const stop = (signal: string) => {
    // A second signal means "now": exit without waiting for the clean stop.
    if (shutdown.signal.aborted) process.exit(signal === "SIGINT" ? 130 : 143);
    shutdown.abort();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    async readStdin() {
      if (process.stdin.isTTY) return null;
      let text = "";
      for await (const chunk of process.stdin) text += chunk;
      return text;
    },
    env: process.env,
    shutdown: shutdown.signal,
  };
}

// No top-level await: the single executable is bundled as CommonJS.
void main(process.argv.slice(2), processIo()).then((code) => {
  // stdout may be a pipe still draining: exit once it has taken everything.
  process.stdout.write("", () => process.exit(code));
});
