/** `interop send`: publish one message. */
import type { SendReply } from "../client/broker_client.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags, usageError } from "./args.ts";
import { MAX_IDEMPOTENCY_KEY_LENGTH, SENDABLE_KEY } from "../message.ts";
import { InteropError } from "../errors.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { legacyBodyFlag, MESSAGE_OPTIONS, readMessageInput } from "./message_input.ts";

export const HELP = `interop send — publish a message

Usage: interop send -f AGENT [-t AGENT] [--reply-to ID] [TEXT | -d JSON]
       echo TEXT | interop send -f AGENT -t AGENT

Sends TEXT as {"text": TEXT}, or --data as the JSON object given (every field is
delivered as posted), or standard input when neither is given; empty or blank text, and
an empty --data object, are refused (exit 2). Without --to the message goes to every
other known agent (the old bridge's broadcast). Prints the new message id (or with
--json the broker's whole reply).

Options:
  -f, --from AGENT    sender (default $INTEROP_AGENT)
  -t, --to AGENT      recipient (default: every other known agent; for a reply, the sender
                      of ID, or its recipient when you sent ID yourself)
  --reply-to ID       answer message ID (one sent to or by --from): the reply carries
                      reply_to, the conversation id and a hop count (the broker refuses
                      replies past serve --max-hops)
  --key KEY           an idempotency key: sending again with the same --from and --key
                      (a retry after a timeout, say) prints the first message's id instead
                      of storing it twice, while the broker keeps the message (see --retention)
  -d, --data JSON     send this JSON object instead of text
  -j, --json          print the broker's JSON reply instead of the id
${CLIENT_HELP}
  -h, --help          show this help

Deprecated: --json JSON (a value starting with { or [) still sends JSON as --data does,
and --print-json still means --json.

Exit codes: 0 sent (committed), 2 bad usage or message, 3 not sent: the broker is
unreachable or busy (429; retry), 4 broker refused (the reason is printed), 11 in doubt:
sent but no answer came (it may be stored: retry with the --key the error names, which
stores it once), 10 sent to some only: a broadcast left out
agents whose inbox is full (one "warning: not delivered to AGENT" line each on stderr;
the others have it, so do not send it again without --key), or a --key retry cannot
tell whether the first attempt did. The message is stored either way: a retry loop must
treat 10 as done (\`until interop send …\` would never end).
`;

export const OPTIONS = {
  from: { type: "string", short: "f" },
  to: { type: "string", short: "t" },
  "reply-to": { type: "string" },
  key: { type: "string" },
  ...MESSAGE_OPTIONS,
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("send", legacyBodyFlag(args), OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const from = agentFlag("send", "--from", values.from, io.env);
  const to = values.to === undefined ? undefined : agentFlag("send", "--to", values.to);
  const replyTo = values["reply-to"] === undefined
    ? undefined
    : parseCount("send", "--reply-to", values["reply-to"], 1, Number.MAX_SAFE_INTEGER);
  const client = brokerClient("send", values, io.env);
  const payload = await readMessageInput("send", positionals, values.data, io);
  if (values.key !== undefined && !SENDABLE_KEY.test(values.key)) {
    throw usageError("send", `Invalid --key: ${JSON.stringify(values.key)}; use 1-${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`);
  }
  // Always a key, so that a send whose answer was lost can be retried without storing it twice.
  const key = values.key ?? crypto.randomUUID();
  let reply: SendReply;
  try {
    reply = await client.send(from, to, payload, { replyTo, key });
  } catch (error) {
    if (!(error instanceof InteropError) || error.code !== "in_doubt") throw error;
    throw new InteropError("in_doubt", `${error.message}; to store it once, send it again with --key ${key}`, { cause: error });
  }
  io.stdout(values.json || values["print-json"] ? JSON.stringify(reply) + "\n" : reply.ids.join("\n") + "\n");
  return reportMissed(reply, io);
}

/** A broadcast that did not reach everyone must not look like one that did: to a reader, and to a script. */
function reportMissed(reply: SendReply, io: Io): number {
  for (const refusal of reply.refused ?? []) io.stderr(`warning: not delivered to ${refusal.agent}: ${refusal.reason}\n`);
  if (reply.refusals_unknown) {
    io.stderr(
      "warning: this retry found the messages the first attempt with its idempotency key stored; whether that " +
        "attempt left out full inboxes was not kept (a broker restart, or another broker took it)\n",
    );
  }
  return (reply.refused?.length ?? 0) > 0 || reply.refusals_unknown ? EXIT.partial : EXIT.ok;
}
