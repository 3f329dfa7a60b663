/** `interop ask`: send a question and wait for the reply to it. */
import { InteropError } from "../errors.ts";
import { fromWire } from "../message.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseDuration, parseFlags } from "./args.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { legacyBodyFlag, MESSAGE_OPTIONS, readMessageInput } from "./message_input.ts";
import { oneLine } from "./terminal_text.ts";

export const HELP = `interop ask — send a question and wait for its reply

Usage: interop ask -f AGENT -t AGENT [--timeout DUR] [TEXT | -d JSON]

Sends the question (as 'interop send' does) and waits for the message that answers it
(one sent with --reply-to its id). Prints the reply's text (on a terminal with its control
characters written out, as \\u001b), or with --json the whole reply as JSON. The reply is
taken: the asking agent's listen or poll does not get it again. Replying agents use:
interop send --from B --reply-to ID "answer"

Options:
  -f, --from AGENT    who asks (default $INTEROP_AGENT)
  -t, --to AGENT      who is asked
  --timeout DUR       how long to wait for the reply (default 120s; e.g. 90s, 5m; 1s to 1h;
                      a bare number is seconds)
  -d, --data JSON     ask with this JSON object instead of text
  -j, --json          print the reply as JSON
${CLIENT_HELP}
  -h, --help          show this help

Deprecated: --json JSON (a value starting with { or [) still asks with JSON as --data
does, and --print-json still means --json.

Exit codes: 0 the reply came, 7 no reply within --timeout (a later reply lands in the
asker's inbox), 130 interrupted (Ctrl-C) before the reply, 2 bad usage, 3 broker
unreachable (nothing sent), 4 broker refused, 11 in doubt: the question went out but no
answer came (it may have been asked), 1 the reply came but stdout took none of it (a full
disk): it is written on stderr instead.
`;

export const OPTIONS = {
  from: { type: "string", short: "f" },
  to: { type: "string", short: "t" },
  timeout: { type: "string", default: "120" },
  ...MESSAGE_OPTIONS,
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("ask", legacyBodyFlag(args), OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return EXIT.ok;
  }
  const from = agentFlag("ask", "--from", values.from, io.env);
  const to = agentFlag("ask", "--to", values.to);
  const timeoutMs = parseDuration("ask", "--timeout", values.timeout, { min: 1000, max: 3_600_000 });
  const client = brokerClient("ask", values, io.env);
  const payload = await readMessageInput("ask", positionals, values.data, io);
  let reply;
  try {
    // Ctrl-C hangs up, so the broker stops waiting and keeps a later reply in the asker's inbox.
    ({ reply } = await client.ask(from, to, payload, timeoutMs / 1000, io.shutdown));
  } catch (error) {
    if (io.shutdown.aborted) {
      io.stderr(`error: Interrupted while waiting for ${to}'s reply; a reply that comes later lands in ${from}'s inbox\n`);
      return EXIT.interrupted;
    }
    // No reply while it waited: in time, or the wait ended early (the broker stopping). Asked either way, not
    // refused: exit 4 said so of an interrupted wait (red team 63).
    if (error instanceof InteropError && (error.code === "reply_timeout" || error.code === "ask_interrupted")) {
      io.stderr(`error: ${oneLine(error.message.replace(/^Broker refused \(HTTP \d+\): /, ""))}\n`);
      return EXIT.timeout;
    }
    throw error;
  }
  const { payload: answer } = fromWire(reply);
  const text = typeof answer.text === "string" ? answer.text : JSON.stringify(answer);
  const printed = (values.json || values["print-json"] ? JSON.stringify(reply) : text) + "\n";
  try {
    await io.writeStdout(printed);
  } catch (error) {
    if (!(error instanceof InteropError && error.code === "output_closed")) throw error;
    // The broker handed the reply over taken: stdout's failure must not lose it, so it goes where errors go.
    io.stderr(`error: Cannot write the reply to stdout; ${to}'s reply (id ${reply.interop.id}), taken from ${from}'s inbox, follows:\n${printed}`);
    return EXIT.failure;
  }
  return EXIT.ok;
}
