/** `interop poll`: take an agent's pending messages, once. */
import { DEFAULT_POLL_LIMIT, parseAgentName } from "../message.ts";
import { brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import type { Io } from "./io.ts";

export const HELP = `interop poll — print an agent's pending messages

Usage: interop poll --agent AGENT [--limit N]

Prints each undelivered message as one JSON line (the posted fields plus "interop"
metadata) and marks it delivered: the same inbox and cursor as 'listen' and
/subscribe, so a message is delivered once whichever way it is read.

Options:
  --agent AGENT       whose inbox (default $INTEROP_AGENT)
  --limit N           at most N messages (default: all, fetched ${DEFAULT_POLL_LIMIT} at a time)
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 done (also when there was nothing), 2 bad usage, 3 broker unreachable,
4 broker refused.
`;

const OPTIONS = {
  agent: { type: "string" },
  limit: { type: "string" },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("poll", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const agent = parseAgentName(values.agent ?? io.env.INTEROP_AGENT, "--agent");
  let remaining = values.limit === undefined ? Infinity : parseCount("poll", "--limit", values.limit, 1, 1_000_000);
  const client = brokerClient(values, io.env);
  while (remaining > 0) {
    const page = await client.poll(agent, Math.min(remaining, DEFAULT_POLL_LIMIT));
    if (page.length > 0) io.stdout(page.map((message) => JSON.stringify(message) + "\n").join(""));
    remaining -= page.length;
    if (page.length < DEFAULT_POLL_LIMIT) break;
  }
  return 0;
}
