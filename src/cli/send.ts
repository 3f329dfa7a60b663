/** `interop send`: publish one message. */
import { parseAgentName } from "../message.ts";
import { brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import type { Io } from "./io.ts";
import { readMessageInput } from "./message_input.ts";

export const HELP = `interop send — publish a message

Usage: interop send --from AGENT [--to AGENT] [--reply-to ID] [TEXT | --json JSON]
       echo TEXT | interop send --from AGENT --to AGENT

Sends TEXT as {"text": TEXT}, or --json as the JSON object given (every field is
delivered as posted), or standard input when neither is given. Without --to the
message goes to every other known agent (the old bridge's broadcast).
Prints the new message id (or the whole reply with --print-json).

Options:
  --from AGENT        sender (default $INTEROP_AGENT)
  --to AGENT          recipient (default: every other known agent; for a reply, the sender
                      of ID, or its recipient when you sent ID yourself)
  --reply-to ID       answer message ID (one sent to or by --from): the reply carries
                      reply_to, the conversation id and a hop count (the broker refuses
                      replies past serve --max-hops)
  --key KEY           an idempotency key: sending again with the same --from and --key
                      (a retry after a timeout, say) prints the first message's id instead
                      of storing it twice, while the broker keeps the message (see --retention)
  --json JSON         send this JSON object instead of text
  --print-json        print the broker's JSON reply instead of the id
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 sent (committed), 2 bad usage or message, 3 broker unreachable,
4 broker refused (the reason is printed).
`;

const OPTIONS = {
  from: { type: "string" },
  to: { type: "string" },
  "reply-to": { type: "string" },
  key: { type: "string" },
  json: { type: "string" },
  "print-json": { type: "boolean", default: false },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("send", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const from = parseAgentName(values.from ?? io.env.INTEROP_AGENT, "--from");
  const to = values.to === undefined ? undefined : parseAgentName(values.to, "--to");
  const payload = await readMessageInput("send", positionals, values.json, io);
  const replyTo = values["reply-to"] === undefined
    ? undefined
    : parseCount("send", "--reply-to", values["reply-to"], 1, Number.MAX_SAFE_INTEGER);
  const reply = await brokerClient(values, io.env).send(from, to, payload, { replyTo, key: values.key });
  io.stdout(values["print-json"] ? JSON.stringify(reply) + "\n" : reply.ids.join("\n") + "\n");
  return 0;
}
