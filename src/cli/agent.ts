/** `interop agent`: list, add and remove the broker's agents (their inboxes), and see to their dead letters. */
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseFlags, usageError } from "./args.ts";
import { oneOf } from "./commands.ts";
import type { Io } from "./io.ts";
import { formatAgo } from "./relative_time.ts";
import { formatTable } from "./table.ts";
import { counted } from "../counted.ts";
import { DEFAULT_POLL_LIMIT, MAX_POLL_LIMIT } from "../message.ts";
import { isDeadLetterAction, runDeadLetterAction } from "./agent_dead_letters.ts";

export const HELP = `interop agent — the agents the broker knows

Usage: interop agent list [--json]
       interop agent add NAME [--json]
       interop agent remove NAME [--force] [--json]
       interop agent dead-letters NAME [--acknowledged] [--limit N] [--json]
       interop agent acknowledge NAME (ID... | --all) [--json]
       interop agent redeliver NAME (ID... | --all) [--json]

An agent is known (has an inbox) once it is named by serve --agents, has a token, was
added here, or connected to read its inbox (listen, poll, a stream, an ntfy subscription,
or an ask, whose reply comes to the asker's inbox).
Sending to any other name is refused (404 unknown_agent), so a typo in --to creates
nothing. A reader's typo does (poll -a hemres makes an inbox that then gets a copy of
every broadcast): 'agent remove hemres' deletes it. With tokens, only the agents named by
serve --agents, a token or 'agent add' get an inbox.

'list' shows each agent's pending messages, last request and whether a stream is open.
'remove' deletes the inbox for good, its messages and dead letters included, and the name
is unknown again, unless a live token names it: a request with that token creates the
inbox again (revoke it: interop token revoke). It refuses while messages are pending or a
stream is open (saying how many), unless --force. With tokens, these need an admin token
(interop token create --admin).

'dead-letters' lists the messages the agent's receiver refused for good (listen parks
them: a push the receiver answered 4xx, an A2A task that failed), newest last, each with
why and the message. They count in status until acknowledged: 'acknowledge' marks the
letters named (by the message ids listed) or --all as seen to, so interop status
--max-dead-letters is healthy again. An acknowledged letter is kept (--acknowledged lists
it too): a question's wait and its A2A task still answer that it was refused.
'redeliver', once the receiver is fixed, sends the letters' messages to the agent again
as new messages (from the same sender, a reply still a reply) and acknowledges them; run
again, it sends none twice. These need the agent's token or an admin token.

Options:
  --force             remove even with messages pending or a stream open (they are lost)
  --all               acknowledge or redeliver every dead letter not acknowledged
  --acknowledged      list the dead letters acknowledged already too
  --limit N           list at most the last N dead letters (default ${DEFAULT_POLL_LIMIT}, at most ${MAX_POLL_LIMIT})
  -j, --json          print JSON: the agents (list), the letters (dead-letters), what was done
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 done, 2 bad usage, 3 broker unreachable (nothing sent), 4 broker refused
(unknown agent, messages pending, no admin token), 11 in doubt: the request went out but
no answer came (it may have been done; running it again is harmless).
`;

export const WORDS = ["list", "add", "remove", "dead-letters", "acknowledge", "redeliver"] as const;

export const OPTIONS = {
  force: { type: "boolean", default: false },
  all: { type: "boolean", default: false },
  acknowledged: { type: "boolean", default: false },
  limit: { type: "string" },
  json: { type: "boolean", short: "j", default: false },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags("agent", args, OPTIONS, true);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const [action, name, ...extra] = positionals;
  // Only acknowledge and redeliver take words after the name (the letters' ids).
  if (extra.length > 0 && action !== "acknowledge" && action !== "redeliver") {
    throw usageError("agent", `Unexpected argument ${JSON.stringify(extra[0])}`);
  }
  refuseFlagsElsewhere(action, values);
  const client = brokerClient("agent", values, io.env);
  if (action === "list") {
    if (name !== undefined) throw usageError("agent", `Unexpected argument ${JSON.stringify(name)}: 'list' takes none`);
    const { agents, now } = await client.agents();
    if (values.json) io.stdout(JSON.stringify(agents) + "\n");
    else {
      // As `interop status` shows it: a time ago on the broker's clock (this host's may be skewed).
      const brokerNow = now === undefined ? Date.now() : Date.parse(now);
      const rows = agents.map((entry) => [entry.agent, String(entry.pending), formatAgo(entry.last_seen, brokerNow), entry.stream ? "open" : "-"]);
      io.stdout(formatTable([["AGENT", "PENDING", "LAST SEEN", "STREAM"], ...rows]) + "\n");
    }
  } else if (action === "add" || action === "remove") {
    if (name === undefined) throw usageError("agent", `Say which agent: interop agent ${action} NAME`);
    const agent = agentFlag("agent", "NAME", name);
    if (action === "add") {
      const created = await client.addAgent(agent);
      io.stdout(values.json ? JSON.stringify({ agent, created }) + "\n" : `${created ? "added" : "already known:"} ${agent}\n`);
    } else {
      const deleted = await client.removeAgent(agent, values.force);
      io.stdout(
        values.json
          ? JSON.stringify({ agent, removed: true, deleted }) + "\n"
          : `removed ${agent} (${counted(deleted, "message")} deleted)\n`,
      );
    }
  } else if (isDeadLetterAction(action)) {
    const agent = agentFlag("agent", "NAME", name ?? refuseNoName(action));
    await runDeadLetterAction(action, agent, extra, values, client, io);
  } else {
    throw usageError("agent", `Say what to do: ${oneOf(WORDS)}`);
  }
  return 0;
}

/** The actions each flag is for: another's is a mistake to say, not to ignore (`list --acknowledged`). */
const FLAG_ACTIONS: Record<string, readonly string[]> = {
  force: ["remove"],
  all: ["acknowledge", "redeliver"],
  acknowledged: ["dead-letters"],
  limit: ["dead-letters"],
};

function refuseFlagsElsewhere(action: string | undefined, values: Record<string, unknown>): void {
  for (const [flag, actions] of Object.entries(FLAG_ACTIONS)) {
    if (values[flag] === undefined || values[flag] === false || action === undefined || actions.includes(action)) continue;
    throw usageError("agent", `--${flag} is for ${oneOf(actions)}, not ${action}`);
  }
}

function refuseNoName(action: string): never {
  throw usageError("agent", `Say which agent: interop agent ${action} NAME`);
}
