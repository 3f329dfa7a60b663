/** `interop ask`: send a question and wait for the reply to it. */
import { InteropError } from "../errors.ts";
import { fromWire, parseAgentName } from "../message.ts";
import { brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { readMessageInput } from "./message_input.ts";

export const HELP = `interop ask — send a question and wait for its reply

Usage: interop ask --from AGENT --to AGENT [--timeout SECONDS] [TEXT | --json JSON]

Sends the question (as 'interop send' does) and waits for the message that answers it
(one sent with --reply-to its id). Prints the reply's text, or with --print-json the
whole reply as JSON. The reply is taken: the asking agent's listen or poll does not
get it again. Replying agents use: interop send --from B --reply-to ID "answer"

Options:
  --from AGENT        who asks (default $INTEROP_AGENT)
  --to AGENT          who is asked
  --timeout SECONDS   how long to wait for the reply (default 120)
  --json JSON         ask with this JSON object instead of text
  --print-json        print the reply as JSON
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 the reply came, 7 no reply within --timeout (a later reply lands in the
asker's inbox), 2 bad usage, 3 broker unreachable, 4 broker refused.
`;

const OPTIONS = {
  from: { type: "string" },
  to: { type: "string" },
  timeout: { type: "string", default: "120" },
  json: { type: "string" },
  "print-json": { type: "boolean", default: false },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("ask", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return EXIT.ok;
  }
  const from = parseAgentName(values.from ?? io.env.INTEROP_AGENT, "--from");
  const to = parseAgentName(values.to, "--to");
  const timeout = parseCount("ask", "--timeout", values.timeout, 1, 3600);
  const payload = await readMessageInput("ask", positionals, values.json, io);
  let reply;
  try {
    ({ reply } = await brokerClient(values, io.env).ask(from, to, payload, timeout));
  } catch (error) {
    if (error instanceof InteropError && error.code === "reply_timeout") {
      io.stderr(`error: ${error.message.replace(/^Broker refused \(HTTP 504\): /, "")}\n`);
      return EXIT.timeout;
    }
    throw error;
  }
  const { payload: answer } = fromWire(reply);
  const text = typeof answer.text === "string" ? answer.text : JSON.stringify(answer);
  io.stdout((values["print-json"] ? JSON.stringify(reply) : text) + "\n");
  return EXIT.ok;
}
