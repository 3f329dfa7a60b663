/** `interop listen`: follow an agent's inbox and hand each message on, exactly once, across restarts of either side. */
import { join } from "node:path";
import { CursorFile } from "../client/cursor_file.ts";
import { follow } from "../client/follow.ts";
import { InteropError } from "../errors.ts";
import { withFileLock } from "../file_lock.ts";
import { defaultListenStateDir } from "../paths.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseDuration, parseFlags, usageError } from "./args.ts";
import type { Io } from "./io.ts";
import { deliverUntilDone } from "./listen_delivery.ts";
import { a2aOutbound, chooseSink, OUTPUTS, refuseFlagsWithoutTheirOutput, warnOfFollowedTasks } from "./listen_outputs.ts";
import { checkWritable, positionSaver, resumeAfter, STATE_LOCK_TIMES, stateLockWording, stateTakenOver } from "./listen_resume.ts";
import { createLogger } from "./logger.ts";
import { pushUrlFromEnv, refuseBadPushUrls } from "./push_url_variables.ts";

export const HELP = `interop listen — follow an agent's inbox

Usage: interop listen -a AGENT [OUTPUT]

Writes each message as one JSON line (the posted fields plus "interop": {id, from,
to, timestamp}) to stdout, or to one OUTPUT:
  --pipe FIFO         a named pipe, opened per message as the old hermes-sse-client.py
                      did (created if missing or removed; with no reader it waits). What is in the pipe
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
"hook configuration changed; retry request" are retried, after Retry-After if sent (up to
5 minutes); so are
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
                      flags: they show in ps); read again when the file changes
  --secret-file FILE  signing secret for --hermes-webhook
  --a2a-token-file FILE  Bearer token for --a2a (default $INTEROP_A2A_TOKEN): the
                      token the agent's A2A server expects from its peer "interop"
  --a2a-max-in-flight N  tasks followed at once before the next send waits (default 8)
  --openclaw-agent ID with --openclaw: the agent whose turn it starts (default main)
  --openclaw-wake     with --openclaw: POST /hooks/wake {"text", "mode": "now"} instead.
                      LOSSY: the gateway keeps wake events in memory only (at most 20 per
                      session, gone on a restart) and ignores Idempotency-Key, so events are
                      dropped or doubled; a multi-agent gateway also needs --openclaw-agent
  --openclaw-wait     with --openclaw: the gateway answers once the turn ENDED, not once it
                      took it, and only then does listen move on: a gateway killed (SIGKILL,
                      a crash) drops the turns it took and had not ended (it keeps them in
                      memory); with this flag listen pushes the cut one again after the
                      restart. Turns then run one at a time
  --openclaw-max-body BYTES  the gateway's hooks body limit (default 256KiB, fixed in
                      OpenClaw 2026.9.x): a larger request is parked as a dead letter
                      instead of sent
  --exec-attempts N   runs of --exec CMD per message before it is a dead letter (default 5)
  --post-timeout DUR  a push with no answer after DUR is retried (default 30s; with --a2a
                      330s: Hermes's A2A server answers a SendMessage only when its turn
                      ends, within its A2A_REPLY_TIMEOUT of 300 s; with --openclaw-wait
                      600s, the retry waiting on for the same turn)
  --idle-timeout DUR  reconnect when not even a heartbeat came for DUR (default 45s; at
                      least 1s, and longer than the broker's --heartbeat)
  --limit N           exit 0 after writing N messages, the state saved up to the Nth
                      (for scripts: 'listen --limit 1' rather than 'listen | head -1'):
                      what the stream sent past it only a listen with this --state gets;
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
what the other reader took too). Each listen needs its own --state: one whose state file
another listen uses waits up to 20 s for it to stop, then exits 6.

Stops cleanly on SIGINT/SIGTERM after finishing the message in hand; a --pipe reader
that holds the FIFO open without reading does not hold it up (the message it could not
take is not saved: the next listen writes it).
The operator removing the agent (interop agent remove) stops listen, exit 9: going on
would create its inbox again.

Exit codes: 0 stopped by a signal or --limit reached, 2 bad usage (also an --out it
cannot append to, a --state it cannot write, a push flag such as --push-token-file
without its push output), 4 broker refused the agent, 6 another listen uses its --state,
8 another reader took over the stream
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
  "openclaw-wait": { type: "boolean" },
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

/** The parsed flags, which choose the output. */
export type ListenValues = ReturnType<typeof parseFlags<typeof OPTIONS>>["values"];
export async function run(args: string[], io: Io): Promise<number> {
  const flags = parseFlags("listen", args, OPTIONS).values;
  if (flags.help) {
    io.stdout(HELP);
    return 0;
  }
  const agent = agentFlag("listen", "--agent", flags.agent, io.env);
  const outputs = OUTPUTS.filter((output) => flags[output] !== undefined);
  if (outputs.length > 1) throw usageError("listen", `Give at most one output, not --${outputs.join(" and --")}`);
  const values: ListenValues = outputs.length === 0 ? { ...flags, ...pushUrlFromEnv(io.env) } : flags;
  refuseFlagsWithoutTheirOutput("listen", values);
  refuseBadPushUrls("listen", flags);
  const idleTimeoutMs = parseDuration("listen", "--idle-timeout", values["idle-timeout"], { min: 1000 });
  const client = brokerClient("listen", values, io.env);
  const log = createLogger(io, "listen", values.verbose);
  const cursor = new CursorFile(values.state ?? join(defaultListenStateDir(io.env), `${agent}.json`), client.urls.all.join(","), agent);
  checkWritable(cursor.path);
  const savePosition = positionSaver(cursor, log, io.shutdown);
  const a2a = values.a2a === undefined ? undefined : a2aOutbound(values, io, { agent, client, log, cursorPath: cursor.path });
  if (a2a === undefined) warnOfFollowedTasks(cursor.path, log);
  const sink = a2a?.deliver ?? chooseSink(values, io);
  const limit = values.limit === undefined ? Infinity : parseCount("listen", "--limit", values.limit, 1, 1_000_000);
  // --limit ends the follow as a signal does: after the Nth message is written and saved, before the next is read.
  const limitReached = new AbortController();
  let written = 0;

  return await withFileLock(cursor.path, async (lock) => {
    // Read right before each write: a listen thawed after its state was taken over may run a message's delivery or
    // save before its lock's refresh does, repeating what its successor handed on, or saving an older position.
    const stillOurs = () => {
      if (!lock.confirm()) throw stateTakenOver(cursor.path);
    };
    // A push retried while this listen's state was taken over is given up: its successor hands the message on.
    const retriesEnd = AbortSignal.any([io.shutdown, lock.lost]);
    try {
      await a2a?.resume();
      await follow({
        client,
        agent,
        from: await resumeAfter(cursor, values.out, { agent, client, log }),
        deliver: async (message, letGo) => {
          stillOurs();
          // A message parked as a dead letter was handled, not written: --limit counts what reached the output.
          if (await deliverUntilDone(sink, message, { agent, client, shutdown: retriesEnd, log, letGo })) written++;
        },
        delivered: async (position) => {
          stillOurs();
          await savePosition(position);
          a2a?.handedOver(position?.id);
          if (written >= limit) limitReached.abort();
        },
        log,
        signal: AbortSignal.any([io.shutdown, limitReached.signal, lock.lost]),
        idleTimeoutMs,
        exitIfReplaced: values["exit-if-replaced"],
      });
      if (lock.lost.aborted) throw stateTakenOver(cursor.path);
      // --a2a: what was handed over is done once its answer went back to the sender; a signal does not wait for that.
      if (limitReached.signal.aborted) await a2a?.settled();
    } catch (error) {
      // `listen | head -1`: the pipeline is done; the next listen resumes after the last line written (which head may
      // not have read: no writer can know; --limit N is the lossless way).
      if (!(error instanceof InteropError && error.code === "output_closed")) throw error;
      log.info("stdout closed: stopping");
    }
    return 0;
  }, STATE_LOCK_TIMES, stateLockWording(cursor.path, log));
}
