/** The `interop` command: dispatches to a subcommand, reports its error, and is the only place that exits. */
import { Buffer } from "node:buffer";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { EXIT, exitCodeFor } from "./cli/exit_codes.ts";
import { type Subcommand, SUBCOMMANDS } from "./cli/commands.ts";
import type { Io } from "./cli/io.ts";
import { closestWord } from "./cli/suggest.ts";
import { oneLine, visibleControls } from "./cli/terminal_text.ts";
import { redactCredentials } from "./url_redaction.ts";
import { InteropError } from "./errors.ts";
import { VERSION } from "./version.ts";

const HELP = `interop ${VERSION} — a real-time message bridge between AI agents

Usage: interop <command> [options]

Commands:
  serve       run the broker (127.0.0.1:18900)
  listen      follow an agent's inbox into a pipe, a file, a command or stdout
  send        publish a message (--reply-to ID answers one)
  ask         send a question and wait for the reply
  poll        print an agent's pending messages once
  status      show the broker's health (table, --json, exit codes for cron)
  mcp         an MCP server on stdio for one agent (send, inbox, wait, ask, agents)
  integrate   print (or --write) what plugs Hermes or OpenClaw into interop here
  token       create, list and revoke access tokens
  agent       list, add and remove agents (their inboxes)
  service     run the broker or a listener under systemd (--dry-run shows the unit)
  migrate     move a SQLite broker's store into PostgreSQL (run again, it checks)
  completion  print a shell completion script: interop completion bash|zsh|fish
  version     print the version (as --version does)
  help        show a command's options: interop help COMMAND (= interop COMMAND --help)

A command that takes one of these takes it in this form: -a/--agent, -f/--from, -t/--to,
-u/--url (HOST:PORT or http://HOST:PORT), -j/--json (print JSON), -d/--data (a JSON
message body), -h/--help (each command's --help lists the ones it takes).
Durations take units (500ms, 90s, 2m, 24h; a bare number is seconds). Bad usage is one
'error:' line on stderr and exit 2.
Environment: INTEROP_URL (broker URL), INTEROP_AGENT (default agent),
INTEROP_TOKEN (access token), INTEROP_DATA_DIR (serve's data dir),
INTEROP_DATABASE_URL (serve's PostgreSQL).
`;

async function main(args: string[], io: Io): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined) {
    io.stderr(HELP);
    return EXIT.usage;
  }
  try {
    const isHelp = (word: string | undefined) => word === "--help" || word === "-h";
    if (isHelp(command) || (command === "help" && (rest.length === 0 || isHelp(rest[0])))) {
      io.stdout(HELP);
      return EXIT.ok;
    }
    if (command === "--version" || command === "-V") return await (await load("version")).run(rest, io);
    if (command === "help") return await (await load(rest[0])).run(["--help"], io);
    const subcommand = await load(command);
    setTitle(command, args);
    return await subcommand.run(rest, io);
  } catch (error) {
    io.stderr(`error: ${oneLine(error instanceof Error ? error.message : String(error))}\n`);
    return exitCodeFor(error);
  }
}

function load(command: string): Promise<Subcommand> {
  const subcommand = Object.hasOwn(SUBCOMMANDS, command) ? SUBCOMMANDS[command] : undefined;
  if (subcommand === undefined) throw unknownCommand(command);
  return subcommand();
}

/** A command interop does not have: the one it looks like a typo of, or, for an option, where options go. */
function unknownCommand(command: string): InteropError {
  if (command.startsWith("-")) {
    return new InteropError(
      "usage",
      `Unknown option ${command} before the command: options go after it (interop COMMAND ${command} …); 'interop --version' prints the version, 'interop --help' lists the commands`,
    );
  }
  const near = closestWord(command, [...Object.keys(SUBCOMMANDS), "help"]);
  const hint = near === undefined ? "" : ` (did you mean 'interop ${near}'?)`;
  return new InteropError("usage", `Unknown command: ${JSON.stringify(command)}${hint}; run 'interop --help' for the list`);
}

/**
 * What ps, top, pgrep and systemd show: `interop listen --agent hermes …` rather than `node …/main.ts …`, and
 * `interop listen` rather than Node's thread name `MainThread` where only the name is shown (top, pgrep).
 */
function setTitle(command: string, args: string[]): void {
  // Node rewrites the command line in place (up to its original length); Deno 2 sets only the name. Anyone on
  // the machine can read a command line, so a password in a URL (--database-url, --url) is not written back.
  process.title = redactCredentials(["interop", ...args].join(" "));
  // The name holds 15 bytes: the title's first 15 would read "interop serve -".
  try {
    writeFileSync("/proc/self/comm", `interop ${command}`.slice(0, 15));
  } catch {
    // Not Linux: the title above is all there is.
  }
}

/** Why stdout took no more of what a command printed, but its reader leaving (`| head -1`). */
let stdoutFailure: Error | undefined;

function processIo(): Io {
  const shutdown = new AbortController();
  const stop = (signal: string) => {
    // A second signal means "now": exit without waiting for the clean stop.
    if (shutdown.signal.aborted) process.exit(signal === "SIGINT" ? 130 : 143);
    shutdown.abort();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // A reader that went away (`| head -1`) is how pipelines end, not a crash: writers see output_closed. Any other
  // failure (a full disk: `> /dev/full`) ends the writes alike, and fails the command as it exits (see below).
  let stdoutClosed = false;
  const failed = (error: NodeJS.ErrnoException) => {
    stdoutClosed = true;
    if (error.code !== "EPIPE") stdoutFailure ??= error;
  };
  process.stdout.on("error", failed);
  const closed = () => new InteropError("output_closed", "stdout was closed: its reader is gone");
  // A script reads what other agents wrote as they sent it; a terminal is shown its control characters written out
  // (a reply's, a message's: JSON leaves DEL and the C1 controls as they are, and writing them out keeps it JSON).
  const shown = process.stdout.isTTY ? visibleControls : (text: string) => text;
  /** Writes to stdout; `done` hears whether it was taken (Node calls back with a failed write's error, Deno throws it). */
  const write = (text: string, done: (error?: Error | null) => void) => {
    try {
      process.stdout.write(shown(text), (error) => {
        if (error) failed(error);
        done(error);
      });
    } catch (error) {
      failed(error as Error);
      done(error as Error);
    }
  };
  return {
    stdout: (text) => void (stdoutClosed || write(text, () => {})),
    writeStdout: (text) =>
      new Promise((resolve, reject) => {
        if (stdoutClosed) return reject(closed());
        write(text, (error) => error ? reject(closed()) : resolve());
      }),
    // Every error and log line leaves here: a password in a URL (--url, $INTEROP_URL, --database-url), which
    // errors quote, never does. On a terminal, control characters in what others wrote (a receiver's answer, a
    // broker's error) are written out.
    stderr: (text) => process.stderr.write(process.stderr.isTTY ? visibleControls(redactCredentials(text)) : redactCredentials(text)),
    async readStdin() {
      if (process.stdin.isTTY) return null;
      const chunks: Uint8Array[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk);
      return Buffer.concat(chunks);
    },
    env: process.env,
    shutdown: shutdown.signal,
  };
}

// No top-level await: the single executable is bundled as CommonJS.
void main(process.argv.slice(2), processIo()).then((code) => {
  // stdout may be a pipe still draining: exit once it has taken everything.
  const exit = () => {
    // What the command printed did not all arrive: a script reading it (`id=$(interop send …)`) must not take it
    // for done. `poll` and `listen` took only what was written before (they stop at output_closed). A command that
    // failed anyway has said why.
    if (stdoutFailure === undefined || code !== EXIT.ok) return process.exit(code);
    process.stderr.write(`error: Cannot write to stdout: ${stdoutFailure.message}; what this command printed is incomplete\n`);
    process.exit(EXIT.failure);
  };
  // Deno never calls back a write to a stdout that failed.
  if (stdoutFailure !== undefined) return exit();
  try {
    process.stdout.write("", exit);
  } catch {
    exit();
  }
});
