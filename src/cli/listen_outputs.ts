/** The output `interop listen` hands messages to (stdout, a file, a command, a push URL or an A2A server), chosen from its flags. */
import { A2aOutbound } from "../a2a/outbound.ts";
import { followedTasks, OutboundState } from "../a2a/outbound_state.ts";
import { A2aRpcClient } from "../a2a/rpc_client.ts";
import type { BrokerClient } from "../client/broker_client.ts";
import { hermesWebhookTarget, OPENCLAW_MAX_BODY_BYTES, openclawTarget, plainTarget } from "../client/push_targets.ts";
import type { AgentName } from "../message.ts";
import { parseByteSize, parseCount, parseDuration, usageError } from "./args.ts";
import { followedSecret } from "./followed_secret.ts";
import type { Io } from "./io.ts";
import type { ListenValues as Values } from "./listen.ts";
import { pipeSink } from "./listen_fifo_sink.ts";
import { execSink, fileSink, type MessageSink, pushSink, stdoutSink } from "./listen_sinks.ts";
import type { Logger } from "./logger.ts";
import { PUSH_URL_VARIABLES } from "./push_url_variables.ts";

/** How long a push waits for its receiver's answer unless --post-timeout says otherwise. */
const PUSH_POST_TIMEOUT = "30s";
/** For --a2a, past Hermes's A2A server's own wait: it answers a SendMessage only when its turn ends (300 s at most). */
const A2A_POST_TIMEOUT = "330s";
/**
 * For --openclaw-wait, whose answer comes when the turn ended: a turn may run for hours (OpenClaw's own limit is 48 h),
 * and a push retried meanwhile only waits on for the same turn (the gateway replays it by Idempotency-Key).
 */
const OPENCLAW_TURN_POST_TIMEOUT = "600s";
/** The outputs, of which a listener takes one. */
export const OUTPUTS = ["pipe", "out", "exec", "post", "openclaw", "hermes-webhook", "a2a"] as const;

/** Where `--a2a` keeps what it follows: next to the state file. */
function a2aStatePath(cursorPath: string): string {
  return `${cursorPath.replace(/\.json$/, "")}.a2a.json`;
}

/**
 * Warns when a listen on another output starts on the state of one that ran with `--a2a` and still follows tasks
 * (`interop integrate` prints both lines): their senders get no answer until a `--a2a` listen runs again, where the
 * switch left them waiting without a word (OpenClaw run, red team 63).
 */
export function warnOfFollowedTasks(cursorPath: string, log: Logger): void {
  const path = a2aStatePath(cursorPath);
  const followed = followedTasks(path);
  if (followed === 0) return;
  log.warn(
    `${path} holds ${followed} A2A task(s) a listen with --a2a sent and still follows: their senders get no ` +
      "answer until 'interop listen --a2a' runs again on this state",
  );
}

/** The --a2a output: each message sent to the agent's A2A server, its task followed and the answer sent back as a reply. */
export function a2aOutbound(
  values: Values,
  io: Io,
  context: { agent: AgentName; client: BrokerClient; log: Logger; cursorPath: string },
): A2aOutbound {
  const url = values.a2a!;
  const state = new OutboundState(a2aStatePath(context.cursorPath), url, context.agent);
  const rpc = new A2aRpcClient({
    url,
    token: followedSecret(values["a2a-token-file"], io.env.INTEROP_A2A_TOKEN, "$INTEROP_A2A_TOKEN"),
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

/** The output the flags name (every one but --a2a), or stdout when none does. */
export function chooseSink(values: Values, io: Io): MessageSink {
  const defaultPostTimeout = values["openclaw-wait"] === true ? OPENCLAW_TURN_POST_TIMEOUT : PUSH_POST_TIMEOUT;
  const postTimeoutMs = parseDuration("listen", "--post-timeout", values["post-timeout"] ?? defaultPostTimeout, { min: 1 });
  if (values.pipe !== undefined) return pipeSink(values.pipe, io.shutdown);
  if (values.out !== undefined) return fileSink(values.out);
  if (values.exec !== undefined) {
    return execSink(values.exec, io, parseCount("listen", "--exec-attempts", values["exec-attempts"], 1, 1_000_000));
  }
  if (values.post !== undefined) {
    return pushSink(plainTarget(values.post, followedSecret(values["push-token-file"], io.env.INTEROP_POST_TOKEN, "$INTEROP_POST_TOKEN")), postTimeoutMs);
  }
  if (values.openclaw !== undefined) {
    const token = followedSecret(values["push-token-file"], io.env.OPENCLAW_HOOKS_TOKEN, "$OPENCLAW_HOOKS_TOKEN");
    if (token === undefined) throw usageError("listen", "--openclaw needs the hooks token: --push-token-file FILE or $OPENCLAW_HOOKS_TOKEN");
    if (values["openclaw-wake"] && values["openclaw-wait"]) {
      throw usageError("listen", "--openclaw-wait waits for an agent turn, which --openclaw-wake does not start: give one of them");
    }
    const options = {
      agentId: values["openclaw-agent"],
      wake: values["openclaw-wake"] === true,
      waitForTurn: values["openclaw-wait"] === true,
      maxBodyBytes: values["openclaw-max-body"] === undefined
        ? OPENCLAW_MAX_BODY_BYTES
        : parseByteSize("listen", "--openclaw-max-body", values["openclaw-max-body"]),
    };
    return pushSink(openclawTarget(values.openclaw, token, options), postTimeoutMs);
  }
  if (values["hermes-webhook"] !== undefined) {
    const key = followedSecret(values["secret-file"], io.env.HERMES_WEBHOOK_SECRET, "$HERMES_WEBHOOK_SECRET", "key");
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
  "openclaw-wait": ["openclaw"],
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
