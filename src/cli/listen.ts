/** `interop listen`: follow an agent's inbox and hand each message on, exactly once, across restarts of either side. */
import { join } from "node:path";
import { BrokerClient } from "../client/broker_client.ts";
import { backoffDelay, DEFAULT_BACKOFF, sleep } from "../client/backoff.ts";
import { CursorFile } from "../client/cursor_file.ts";
import { follow } from "../client/follow.ts";
import { parseAgentName } from "../message.ts";
import { defaultListenStateDir } from "../paths.ts";
import { brokerUrl, parseDuration, parseFlags, usageError } from "./args.ts";
import type { Io } from "./io.ts";
import { execSink, fileSink, lastIdInFile, type MessageSink, pipeSink, stdoutSink } from "./listen_sinks.ts";
import { createLogger } from "./logger.ts";

export const HELP = `interop listen — follow an agent's inbox

Usage: interop listen --agent AGENT [--pipe FIFO | --out FILE | --exec CMD]

Writes each message as one JSON line (the posted fields plus "interop": {id, from,
to, timestamp}) to stdout, or:
  --pipe FIFO         a named pipe, opened per message as the old hermes-sse-client.py
                      did (created if missing; with no reader it waits, nothing is dropped)
  --out FILE          appended to FILE
  --exec CMD          CMD run by sh once per message, the JSON line on its stdin and
                      INTEROP_MESSAGE_ID in its environment; a non-zero exit is retried

Reconnects with capped exponential backoff and jitter, resumes with Last-Event-ID, and
keeps the last written id in a state file, so a restarted listen neither loses nor
repeats a message. The id advances only after the message was written.

Options:
  --agent AGENT       whose inbox (default $INTEROP_AGENT)
  --state FILE        where the last id is kept (default
                      $XDG_STATE_HOME/interop/listen/AGENT.json)
  --idle-timeout DUR  reconnect when not even a heartbeat came for DUR (default 45s)
  --url URL           broker (default $INTEROP_URL, else http://127.0.0.1:18900)
  --verbose           log reconnect details
  -h, --help          show this help

Stops cleanly on SIGINT/SIGTERM after finishing the message in hand.
Exit codes: 0 stopped by a signal, 2 bad usage, 4 broker refused the agent,
8 another listen for the same agent took over the stream.
`;

const OPTIONS = {
  agent: { type: "string" },
  pipe: { type: "string" },
  out: { type: "string" },
  exec: { type: "string" },
  state: { type: "string" },
  "idle-timeout": { type: "string", default: "45s" },
  url: { type: "string" },
  verbose: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("listen", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const agent = parseAgentName(values.agent ?? io.env.INTEROP_AGENT, "--agent");
  const outputs = [values.pipe, values.out, values.exec].filter((value) => value !== undefined);
  if (outputs.length > 1) throw usageError("listen", "Give at most one of --pipe, --out, --exec");
  const idleTimeoutMs = parseDuration("listen", "--idle-timeout", values["idle-timeout"]);
  const url = brokerUrl(values.url, io.env);
  const log = createLogger(io, "listen", values.verbose);
  const cursor = new CursorFile(values.state ?? join(defaultListenStateDir(io.env), `${agent}.json`), url, agent);
  const sink: MessageSink = values.pipe !== undefined
    ? pipeSink(values.pipe, io.shutdown)
    : values.out !== undefined
    ? fileSink(values.out)
    : values.exec !== undefined
    ? execSink(values.exec, io)
    : stdoutSink(io);

  await follow({
    client: new BrokerClient(url),
    agent,
    lastEventId: resumeAfter(cursor.load(), values.out === undefined ? undefined : lastIdInFile(values.out)),
    deliver: (message) => deliverUntilWritten(sink, message, io.shutdown, log),
    delivered: (id) => cursor.save(id),
    log,
    signal: io.shutdown,
    idleTimeoutMs,
  });
  return 0;
}

/** The later of the state file's id and the output file's own last line: a kill between the two writes repeats nothing. */
function resumeAfter(saved: number | undefined, written: number | undefined): number | undefined {
  if (saved === undefined) return written;
  return written === undefined ? saved : Math.max(saved, written);
}

/** Retries a failing sink with backoff; the message is never skipped (the stream waits behind it). */
async function deliverUntilWritten(
  sink: MessageSink,
  message: Parameters<MessageSink>[0],
  shutdown: AbortSignal,
  log: { warn(message: string): void },
): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      return await sink(message);
    } catch (error) {
      if (shutdown.aborted) throw error;
      const delay = backoffDelay(attempt, DEFAULT_BACKOFF);
      log.warn(`delivering message ${message.id} failed: ${(error as Error).message}; retrying in ${delay} ms`);
      await sleep(delay, shutdown);
    }
  }
}
