/** `interop listen`: follow an agent's inbox and hand each message on, exactly once, across restarts of either side. */
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { A2aOutbound } from "../a2a/outbound.ts";
import { OutboundState } from "../a2a/outbound_state.ts";
import { A2aRpcClient } from "../a2a/rpc_client.ts";
import type { BrokerClient, StreamPosition } from "../client/broker_client.ts";
import { CursorFile } from "../client/cursor_file.ts";
import { follow, type StreamedMessage } from "../client/follow.ts";
import { redactUrl } from "../url_redaction.ts";
import { retryUntilDone as retry } from "../client/retry.ts";
import { hermesWebhookTarget, OPENCLAW_MAX_BODY_BYTES, openclawTarget, plainTarget } from "../client/push_targets.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, fromWire, messageKey } from "../message.ts";
import { defaultListenStateDir, makeDirectory } from "../paths.ts";
import { PRIVATE_DIR_MODE } from "../private_files.ts";
import {
  agentFlag,
  brokerClient,
  CLIENT_HELP,
  CLIENT_OPTIONS,
  parseByteSize,
  parseCount,
  parseDuration,
  parseFlags,
  readSecret,
  usageError,
} from "./args.ts";
import type { Io } from "./io.ts";
import { execSink, fileSink, lastMessageInFile, type MessageSink, pipeSink, pushSink, stdoutSink } from "./listen_sinks.ts";
import { createLogger, type Logger } from "./logger.ts";
import { PUSH_URL_VARIABLES, pushUrlFromEnv } from "./push_url_variables.ts";

export const HELP = `interop listen — follow an agent's inbox

Usage: interop listen -a AGENT [OUTPUT]

Writes each message as one JSON line (the posted fields plus "interop": {id, from,
to, timestamp}) to stdout, or to one OUTPUT:
  --pipe FIFO         a named pipe, opened per message as the old hermes-sse-client.py
                      did (created if missing; with no reader it waits). What is in the pipe
                      counts as written: a reader that dies loses what it had not read yet,
                      up to the pipe's 64 KiB (use --exec, --post or --out, or interop
                      poll, where that matters)
  --out FILE          appended to FILE (its directory must exist)
  --exec CMD          CMD run by sh once per message, the JSON line on its stdin and
                      INTEROP_MESSAGE_ID in its environment; a non-zero exit is retried
                      with backoff, up to --exec-attempts runs, then the message is parked
                      as a dead letter (with the exit code and the end of CMD's stderr)
  --post URL          an HTTP POST of the JSON line (Bearer token from --push-token-file
                      or $INTEROP_POST_TOKEN)
  --openclaw URL      OpenClaw's gateway (e.g. http://127.0.0.1:18789): POST /hooks/agent
                      {"message", "agentId"} starts a turn per message (lossless: the gateway
                      de-duplicates by Idempotency-Key); hooks token from --push-token-file or
                      $OPENCLAW_HOOKS_TOKEN
  --hermes-webhook URL  Hermes's webhook adapter (http://HOST:8644/webhooks/ROUTE), signed
                      with X-Webhook-Signature-V2; secret from --secret-file or
                      $HERMES_WEBHOOK_SECRET
  --a2a URL           the agent's own A2A server (JSON-RPC endpoint: OpenClaw
                      http://127.0.0.1:18789/a2a/v1, Hermes http://127.0.0.1:9900/):
                      SendMessage per message, its task followed with GetTask, and the
                      answer published back to the sender as a reply (see A2A below)
With no OUTPUT flag, a push URL may come from $INTEROP_POST_URL, $INTEROP_OPENCLAW_URL,
$INTEROP_HERMES_WEBHOOK_URL or $INTEROP_A2A_URL (one of them): a URL with a password
stays off the command line ('service install listen' puts it in the unit's env file).

Pushes carry the message's key (its id and creation time, e.g. 17-mfx3k2a1: unique across
data dirs, where ids start again at 1) in Idempotency-Key and X-Request-ID. They are retried with
backoff until a 2xx (no answer within --post-timeout, 408, 429, 5xx and OpenClaw's 409
"hook configuration changed; retry request" are retried, after Retry-After if sent; so are
401, 403 and 404, which mean a wrong token or URL, and redirects (3xx: never followed,
a redirected POST arrives as a GET), with a warning each time); any other
4xx is final: the message is parked as a dead letter on the broker (see 'interop status'
and GET /dead-letters?agent=AGENT) and listen goes on.

A2A (--a2a): sends v1.0 (A2A-Version: 1.0, returnImmediately), falling back to
message/send for good after -32601 or -32009. Retried with backoff: connection refused,
408, 429, 5xx, rate limits (-32000 "Peer is rate limited", Hermes -32051), 401/403 and
redirects (with a warning). Final, parked as dead letters: other 4xx, JSON-RPC errors
such as -32602, answers that are not JSON-RPC. A send that may have reached the server
with no answer (timeout, cut connection, listen killed mid-request) is never sent again:
a repeated messageId makes OpenClaw open a task that never ends and Hermes run a second
turn; it is parked as a dead letter "in doubt" instead. Up to --a2a-max-in-flight tasks
are followed at once (sends stay in order); a task the server forgot (-32001, e.g. after
a gateway restart) is answered to the sender as TASK_STATE_FAILED. Replies in the inbox
are sent and followed, never answered back (answering answers would loop); one whose
task ends FAILED or REJECTED (the agent never saw it) is parked as a dead letter. Tasks
being followed are kept in STATE's .a2a.json sibling and followed again after a restart,
not re-sent.

Reconnects with capped exponential backoff and jitter, resumes with Last-Event-ID, and
keeps the last written id in a state file, so a restarted listen neither loses nor
repeats a message. The id advances only after the message was written (or pushed).

Options:
  -a, --agent AGENT   whose inbox (default $INTEROP_AGENT)
  -j, --json          JSON lines (always: accepted like on every command that prints)
  --state FILE        where the last id is kept (default
                      $XDG_STATE_HOME/interop/listen/AGENT.json)
  --push-token-file FILE  Bearer token for --post and --openclaw (never pass secrets as
                      flags: they show in ps)
  --secret-file FILE  signing secret for --hermes-webhook
  --a2a-token-file FILE  Bearer token for --a2a (default $INTEROP_A2A_TOKEN): the
                      token the agent's A2A server expects from its peer "interop"
  --a2a-max-in-flight N  tasks followed at once before the next send waits (default 8)
  --openclaw-agent ID with --openclaw: the agent whose turn it starts (default main)
  --openclaw-wake     with --openclaw: POST /hooks/wake {"text", "mode": "now"} instead.
                      LOSSY: the gateway keeps wake events in memory only (at most 20 per
                      session, gone on a restart) and ignores Idempotency-Key, so events are
                      dropped or doubled; a multi-agent gateway also needs --openclaw-agent
  --openclaw-max-body BYTES  the gateway's hooks body limit (default 256KiB, fixed in
                      OpenClaw 2026.9.x): a larger request is parked as a dead letter
                      instead of sent
  --exec-attempts N   runs of --exec CMD per message before it is a dead letter (default 5)
  --post-timeout DUR  a push with no answer after DUR is retried (default 30s; with --a2a
                      330s: Hermes's A2A server answers a SendMessage only when its turn
                      ends, within its A2A_REPLY_TIMEOUT of 300 s)
  --idle-timeout DUR  reconnect when not even a heartbeat came for DUR (default 45s; at
                      least 1s, and longer than the broker's --heartbeat)
  --limit N           exit 0 after writing N messages, the state saved up to the Nth
                      (for scripts: 'listen --limit 1' rather than 'listen | head -1');
                      messages parked as dead letters do not count; with --a2a it
                      exits once the answers to those N went back to their senders
  --exit-if-replaced  exit 8 when another reader takes the stream, instead of waiting
${CLIENT_HELP}
  --verbose           log reconnect details
  -h, --help          show this help

A reader that exits or closes ('| head -1', a FIFO reader that closes without reading
to end-of-file) loses what listen wrote after its last read: no writer can know what a
reader read, and the state has moved past it. Use --limit N, 'interop poll --limit N'
or --exec CMD instead.

Another reader of the agent's stream (a second listen, a 'curl /subscribe' peek) takes
it over: listen says so once and waits, asking the broker every few seconds at most,
until the agent has no stream open, then resumes after its own last id (so it writes
what the other reader took too).

Stops cleanly on SIGINT/SIGTERM after finishing the message in hand; a --pipe reader
that holds the FIFO open without reading does not hold it up (the message it could not
take is not saved: the next listen writes it).
The operator removing the agent (interop agent remove) stops listen, exit 9: going on
would create its inbox again.

Exit codes: 0 stopped by a signal or --limit reached, 2 bad usage (also an --out it
cannot append to, a --state it cannot write, a push flag such as --push-token-file
without its push output), 4 broker refused the agent, 8 another reader took over the stream
(with --exit-if-replaced), 9 the agent was removed by the operator.
`;

export const OPTIONS = {
  agent: { type: "string", short: "a" },
  json: { type: "boolean", short: "j", default: false },
  pipe: { type: "string" },
  out: { type: "string" },
  exec: { type: "string" },
  post: { type: "string" },
  openclaw: { type: "string" },
  "openclaw-agent": { type: "string" },
  "openclaw-wake": { type: "boolean" },
  "openclaw-max-body": { type: "string" },
  "hermes-webhook": { type: "string" },
  a2a: { type: "string" },
  "a2a-token-file": { type: "string" },
  "a2a-max-in-flight": { type: "string", default: "8" },
  "push-token-file": { type: "string" },
  "secret-file": { type: "string" },
  "post-timeout": { type: "string" },
  "exec-attempts": { type: "string", default: "5" },
  state: { type: "string" },
  "idle-timeout": { type: "string", default: "45s" },
  limit: { type: "string" },
  "exit-if-replaced": { type: "boolean", default: false },
  ...CLIENT_OPTIONS,
  verbose: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

type Values = ReturnType<typeof parseFlags<typeof OPTIONS>>["values"];

/** How long a push waits for its receiver's answer unless --post-timeout says otherwise. */
const PUSH_POST_TIMEOUT = "30s";
/** For --a2a, past Hermes's A2A server's own wait: it answers a SendMessage only when its turn ends (300 s at most). */
const A2A_POST_TIMEOUT = "330s";
/** The outputs, of which a listener takes one. */
export const OUTPUTS = ["pipe", "out", "exec", "post", "openclaw", "hermes-webhook", "a2a"] as const;

export async function run(args: string[], io: Io): Promise<number> {
  const flags = parseFlags("listen", args, OPTIONS).values;
  if (flags.help) {
    io.stdout(HELP);
    return 0;
  }
  const agent = agentFlag("listen", "--agent", flags.agent, io.env);
  const outputs = OUTPUTS.filter((output) => flags[output] !== undefined);
  if (outputs.length > 1) throw usageError("listen", `Give at most one output, not --${outputs.join(" and --")}`);
  const values: Values = outputs.length === 0 ? { ...flags, ...pushUrlFromEnv(io.env) } : flags;
  refuseFlagsWithoutTheirOutput("listen", values);
  const idleTimeoutMs = parseDuration("listen", "--idle-timeout", values["idle-timeout"], { min: 1000 });
  const client = brokerClient("listen", values, io.env);
  const log = createLogger(io, "listen", values.verbose);
  const cursor = new CursorFile(values.state ?? join(defaultListenStateDir(io.env), `${agent}.json`), client.urls.all.join(","), agent);
  checkWritable(cursor.path);
  const a2a = values.a2a === undefined ? undefined : a2aOutbound(values, io, { agent, client, log, cursorPath: cursor.path });
  const sink = a2a?.deliver ?? chooseSink(values, io);
  const limit = values.limit === undefined ? Infinity : parseCount("listen", "--limit", values.limit, 1, 1_000_000);
  // --limit ends the follow as a signal does: after the Nth message is written and saved, before the next is read.
  const limitReached = new AbortController();
  let written = 0;

  try {
    await a2a?.resume();
    await follow({
      client,
      agent,
      from: await resumeAfter(cursor, values.out, { agent, client, log }),
      deliver: async (message) => {
        // A message parked as a dead letter was handled, not written: --limit counts what reached the output.
        if (await deliverUntilDone(sink, message, { agent, client, shutdown: io.shutdown, log })) written++;
      },
      delivered: (position) => {
        cursor.save(position);
        a2a?.handedOver(position?.id);
        if (written >= limit) limitReached.abort();
      },
      log,
      signal: AbortSignal.any([io.shutdown, limitReached.signal]),
      idleTimeoutMs,
      exitIfReplaced: values["exit-if-replaced"],
    });
    // --a2a: what was handed over is done once its answer went back to the sender; a signal does not wait for that.
    if (limitReached.signal.aborted) await a2a?.settled();
  } catch (error) {
    // `listen | head -1`: the pipeline is done; the next listen resumes after the last line written (which head may
    // not have read: no writer can know; --limit N is the lossless way).
    if (!(error instanceof InteropError && error.code === "output_closed")) throw error;
    log.info("stdout closed: stopping");
  }
  return 0;
}

function a2aOutbound(
  values: Values,
  io: Io,
  context: { agent: AgentName; client: BrokerClient; log: Logger; cursorPath: string },
): A2aOutbound {
  const url = values.a2a!;
  if (!/^https?:\/\/./.test(url)) throw usageError("listen", `--a2a needs the http(s) URL of the agent's A2A JSON-RPC endpoint, not ${JSON.stringify(redactUrl(url))}`);
  const state = new OutboundState(`${context.cursorPath.replace(/\.json$/, "")}.a2a.json`, url, context.agent);
  const rpc = new A2aRpcClient({
    url,
    token: readSecret(values["a2a-token-file"], io.env.INTEROP_A2A_TOKEN, "$INTEROP_A2A_TOKEN"),
    timeoutMs: parseDuration("listen", "--post-timeout", values["post-timeout"] ?? A2A_POST_TIMEOUT, { min: 1 }),
    version: state.version,
  });
  return new A2aOutbound({
    ...context,
    rpc,
    state,
    shutdown: io.shutdown,
    maxInFlight: parseCount("listen", "--a2a-max-in-flight", values["a2a-max-in-flight"], 1, 10_000),
  });
}

function chooseSink(values: Values, io: Io): MessageSink {
  const postTimeoutMs = parseDuration("listen", "--post-timeout", values["post-timeout"] ?? PUSH_POST_TIMEOUT, { min: 1 });
  if (values.pipe !== undefined) return pipeSink(values.pipe, io.shutdown);
  if (values.out !== undefined) return fileSink(values.out);
  if (values.exec !== undefined) {
    return execSink(values.exec, io, parseCount("listen", "--exec-attempts", values["exec-attempts"], 1, 1_000_000));
  }
  if (values.post !== undefined) {
    return pushSink(plainTarget(values.post, readSecret(values["push-token-file"], io.env.INTEROP_POST_TOKEN, "$INTEROP_POST_TOKEN")), postTimeoutMs);
  }
  if (values.openclaw !== undefined) {
    const token = readSecret(values["push-token-file"], io.env.OPENCLAW_HOOKS_TOKEN, "$OPENCLAW_HOOKS_TOKEN");
    if (token === undefined) throw usageError("listen", "--openclaw needs the hooks token: --push-token-file FILE or $OPENCLAW_HOOKS_TOKEN");
    const options = {
      agentId: values["openclaw-agent"],
      wake: values["openclaw-wake"] === true,
      maxBodyBytes: values["openclaw-max-body"] === undefined
        ? OPENCLAW_MAX_BODY_BYTES
        : parseByteSize("listen", "--openclaw-max-body", values["openclaw-max-body"]),
    };
    return pushSink(openclawTarget(values.openclaw, token, options), postTimeoutMs);
  }
  if (values["hermes-webhook"] !== undefined) {
    const key = readSecret(values["secret-file"], io.env.HERMES_WEBHOOK_SECRET, "$HERMES_WEBHOOK_SECRET", "key");
    if (key === undefined) {
      throw usageError("listen", "--hermes-webhook needs the route's secret: --secret-file FILE or $HERMES_WEBHOOK_SECRET");
    }
    return pushSink(hermesWebhookTarget(values["hermes-webhook"], key), postTimeoutMs);
  }
  return stdoutSink(io);
}

/** The flags that mean something only with certain outputs, and those outputs. */
const OUTPUT_FLAGS = {
  "push-token-file": ["post", "openclaw"],
  "secret-file": ["hermes-webhook"],
  "openclaw-agent": ["openclaw"],
  "openclaw-wake": ["openclaw"],
  "openclaw-max-body": ["openclaw"],
  "a2a-token-file": ["a2a"],
  "post-timeout": ["post", "openclaw", "hermes-webhook", "a2a"],
} as const;

/**
 * Refuses a flag given without its output: a push token with no push URL (one meant to come from a variable the
 * shell or unit did not have) would otherwise print every message to stdout and move the cursor past them.
 */
export function refuseFlagsWithoutTheirOutput(command: string, values: Record<string, unknown>): void {
  for (const [flag, outputs] of Object.entries(OUTPUT_FLAGS)) {
    if (values[flag] === undefined || outputs.some((output) => values[output] !== undefined)) continue;
    throw usageError(command, `--${flag} goes with --${outputs.join(" or --")} URL, and none was given (nor $${outputs.map((output) => PUSH_URL_VARIABLES[output]).join(" or $")})`);
  }
}

/**
 * Whether the state file can be written, tried at start with a file beside it: one that cannot be (a directory that
 * cannot be made, a read-only one) would fail after the first message, again at every message, forever.
 */
function checkWritable(path: string): void {
  const probe = `${path}.${process.pid}.probe`;
  try {
    makeDirectory(dirname(path), PRIVATE_DIR_MODE);
    writeFileSync(probe, "");
    rmSync(probe);
  } catch (cause) {
    throw new InteropError("usage", `Cannot write --state ${path}: ${(cause as Error).message}`, { cause });
  }
}

/**
 * The state file's position, or the output file's last line when it is further on: a kill between the two writes
 * (the line first, then the state) repeats nothing. Without a state file, that line names no store (the file may
 * hold lines another store's broker sent, whose ids mean other messages here): it counts only when the broker holds
 * that very message (id and creation time) for the agent among its inbox's last HISTORY_CHECK. Otherwise listen
 * starts as without it, and says so.
 */
async function resumeAfter(
  cursor: CursorFile,
  out: string | undefined,
  context: { agent: AgentName; client: BrokerClient; log: Logger },
): Promise<StreamPosition | undefined> {
  const saved = cursor.load();
  const written = out === undefined ? undefined : lastMessageInFile(out);
  if (written === undefined || (saved !== undefined && written.id <= saved.id)) return saved;
  // The line this listen wrote before it was stopped between the two writes: not to be asked of a broker that may be
  // restarting too (chaos: broker and listener killed together), nor looked for among the newest messages only.
  if (saved !== undefined) return { id: written.id, store: saved.store };
  let held: boolean;
  try {
    held = (await context.client.history(context.agent, HISTORY_CHECK)).some((message) =>
      messageKey(fromWire(message)) === written.key
    );
  } catch (error) {
    context.log.warn(`cannot ask the broker whether ${out}'s last line (message ${written.id}) is its own: ${(error as Error).message}`);
    held = false;
  }
  if (held) return { id: written.id, store: undefined };
  context.log.warn(
    `${out}'s last line (message ${written.id}) is not one of ${context.agent}'s messages on this broker's store ` +
      `(another store's broker wrote it, or it is older than the inbox's last ${HISTORY_CHECK}): ` +
      `starting from ${context.agent}'s position on the broker`,
  );
  return undefined;
}

/** How many of the inbox's newest messages the broker is asked for to tie an --out file's last line to its store. */
const HISTORY_CHECK = 1000;

interface DeliveryContext {
  agent: AgentName;
  client: BrokerClient;
  shutdown: AbortSignal;
  log: Logger;
}

/**
 * Retries a failing sink with backoff; the message is never skipped (the stream waits behind it). A receiver's
 * final refusal parks the message as a dead letter on the broker, and then it counts as handled. Resolves with
 * whether the message was written (false: parked).
 */
async function deliverUntilDone(sink: MessageSink, message: StreamedMessage, context: DeliveryContext): Promise<boolean> {
  let refusal: InteropError | undefined;
  await retry(async () => {
    try {
      await sink(message);
    } catch (error) {
      if (!(error instanceof InteropError && error.code === "rejected")) throw error;
      refusal = error;
    }
  }, context, `delivering message ${message.id}`);
  if (refusal === undefined) return true;
  const reason = refusal.message;
  context.log.warn(`message ${message.id} refused for good (${reason}); parking it as a dead letter`);
  await retry(async () => {
    try {
      await context.client.parkDeadLetter(context.agent, message.id, reason);
    } catch (error) {
      // The broker parks only messages it still has: one that retention removed meanwhile cannot be parked.
      if (!(error instanceof InteropError && error.code === "unknown_message")) throw error;
      context.log.warn(`message ${message.id} was removed by the broker's retention meanwhile; it is not parked`);
    }
  }, context, `parking message ${message.id}`);
  return false;
}
