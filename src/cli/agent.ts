/** `interop agent`: list, add and remove the broker's agents (their inboxes), and see to their dead letters. */
import type { ListedDeadLetter } from "../broker/dead_letters.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags, usageError } from "./args.ts";
import type { Io } from "./io.ts";
import { formatAgo } from "./relative_time.ts";
import { formatTable } from "./table.ts";
import { counted } from "../counted.ts";
import { DEFAULT_POLL_LIMIT, fromWire, MAX_POLL_LIMIT } from "../message.ts";

export const HELP = `interop agent — the agents the broker knows

Usage: interop agent list [--json]
       interop agent add NAME [--json]
       interop agent remove NAME [--force] [--json]
       interop agent dead-letters NAME [--acknowledged] [--limit N] [--json]
       interop agent acknowledge NAME (ID... | --all) [--json]

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
it too): a question's wait and its A2A task still answer that it was refused. Send one
again with interop send if it should be delivered after all. These need the agent's
token or an admin token.

Options:
  --force             remove even with messages pending or a stream open (they are lost)
  --all               acknowledge every dead letter of the agent
  --acknowledged      list the dead letters acknowledged already too
  --limit N           list at most the last N dead letters (default ${DEFAULT_POLL_LIMIT}, at most ${MAX_POLL_LIMIT})
  -j, --json          print JSON: the agents (list), the letters (dead-letters), what was done
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 done, 2 bad usage, 3 broker unreachable (nothing sent), 4 broker refused
(unknown agent, messages pending, no admin token), 11 in doubt: the request went out but
no answer came (it may have been done; running it again is harmless).
`;

const OPTIONS = {
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
  if (extra.length > 0 && action !== "acknowledge") throw usageError("agent", `Unexpected argument ${JSON.stringify(extra[0])}`);
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
  } else if (action === "dead-letters") {
    const agent = agentFlag("agent", "NAME", name ?? refuseNoName(action));
    const limit = values.limit === undefined ? DEFAULT_POLL_LIMIT : parseCount("agent", "--limit", values.limit, 1, MAX_POLL_LIMIT);
    const letters = await client.deadLetters(agent, limit, values.acknowledged);
    io.stdout(values.json ? JSON.stringify(letters) + "\n" : formatDeadLetters(agent, letters, values.acknowledged));
  } else if (action === "acknowledge") {
    const agent = agentFlag("agent", "NAME", name ?? refuseNoName(action));
    if (values.all === (extra.length > 0)) {
      throw usageError("agent", `Say which dead letters: interop agent acknowledge ${agent} ID... (their message ids) or --all`);
    }
    const ids = values.all ? undefined : extra.map((id) => parseCount("agent", "ID", id, 1, Number.MAX_SAFE_INTEGER));
    const { acknowledged, dead_letters: left } = await client.acknowledgeDeadLetters(agent, ids);
    const missed = ids?.filter((id) => !acknowledged.includes(id)) ?? [];
    io.stdout(
      values.json
        ? JSON.stringify({ agent, acknowledged, dead_letters: left }) + "\n"
        : `acknowledged ${counted(acknowledged.length, "dead letter")} of ${agent}; ${left} left` +
          (missed.length > 0 ? ` (not dead letters, or acknowledged already: ${missed.join(", ")})` : "") + "\n",
    );
  } else {
    throw usageError("agent", "Say what to do: list, add NAME, remove NAME, dead-letters NAME or acknowledge NAME");
  }
  return 0;
}

function refuseNoName(action: string): never {
  throw usageError("agent", `Say which agent: interop agent ${action} NAME`);
}

/** Each letter as a heading (its id, when and whom from), then why, then the start of its message. */
function formatDeadLetters(agent: string, letters: ListedDeadLetter[], withAcknowledged: boolean): string {
  if (letters.length === 0) return `${agent} has no dead letters${withAcknowledged ? "" : " to see to"}\n`;
  const now = Date.now();
  return letters.map((letter) => {
    const message = letter.message === null ? undefined : fromWire(letter.message);
    const from = message === undefined ? "its message removed by retention" : `from ${message.from}`;
    const seen = letter.acknowledged_at === null ? "" : `, acknowledged ${formatAgo(letter.acknowledged_at, now)}`;
    const shown = typeof message?.payload.text === "string" ? message.payload.text : JSON.stringify(message?.payload);
    const text = message === undefined ? "" : `\n  message: ${cut(shown)}`;
    return `${letter.id}  parked ${formatAgo(letter.parked_at, now)}, ${from}${seen}\n  reason: ${letter.reason}${text}\n`;
  }).join("");
}

/** Characters of a letter's message shown: enough to tell it; --json has it whole. */
const MESSAGE_SHOWN = 200;

function cut(text: string): string {
  return text.length > MESSAGE_SHOWN ? `${text.slice(0, MESSAGE_SHOWN)}… (${text.length} characters)` : text;
}
