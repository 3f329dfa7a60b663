/** `interop poll`: take an agent's pending messages, once. */
import { InteropError } from "../errors.ts";
import type { BrokerClient } from "../client/broker_client.ts";
import { type AgentName, DEFAULT_POLL_LIMIT, type WireMessage } from "../message.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import type { Io } from "./io.ts";

export const HELP = `interop poll — print an agent's pending messages

Usage: interop poll -a AGENT [--limit N] [--peek]

Prints each undelivered message as one JSON line (the posted fields plus "interop"
metadata) and marks it delivered: the same inbox and cursor as 'listen' and
/subscribe. What a poll took no stream gets afterwards; but a stream reader that
resumes by id ('listen', EventSource) gets what came after its id, also what another
stream reader took, and one that resumes without an id gets again what the agent's
last stream was sent within the broker's --resume-window. Only what was written to
stdout is marked, yet a reader that exits early ('| head -1') may drop lines it
read: use --limit N. Runs that overlap print each message once between them: the
inbox is leased to one run at a time (for the page it prints; the others wait).

Options:
  -a, --agent AGENT   whose inbox (default $INTEROP_AGENT)
  --limit N           at most N messages (default: all, fetched ${DEFAULT_POLL_LIMIT} at a time)
  --peek              print them and take nothing
  -j, --json          JSON lines (always: accepted like on every command that prints)
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 done (also when there was nothing), 2 bad usage, 3 broker unreachable,
4 broker refused.
`;

/** How long a run holds the inbox for a page it prints: a run that dies holding it delays the next this long at most. */
const LEASE_SECONDS = 60;
/** How often a run that finds the inbox leased to another asks again, and for how long at most. */
const LEASE_RETRY_MS = 250;
const MAX_LEASE_WAIT_MS = 5 * 60_000;

export const OPTIONS = {
  agent: { type: "string", short: "a" },
  json: { type: "boolean", short: "j", default: false },
  limit: { type: "string" },
  peek: { type: "boolean", default: false },
  ...CLIENT_OPTIONS,
  help: { type: "boolean", short: "h", default: false },
} as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags("poll", args, OPTIONS);
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const agent = agentFlag("poll", "--agent", values.agent, io.env);
  let remaining = values.limit === undefined ? Infinity : parseCount("poll", "--limit", values.limit, 1, 1_000_000);
  const client = brokerClient("poll", values, io.env);
  while (remaining > 0) {
    // Read without taking, print, then take exactly what stdout accepted; the inbox is leased to this run meanwhile,
    // or another run would print the same messages.
    const size = Math.min(remaining, DEFAULT_POLL_LIMIT);
    const { messages: page, more, lease } = values.peek ? await client.peek(agent, size) : await leasedPeek(client, agent, size);
    const printed = await printUntilClosed(page, io);
    // The take ends the lease; with nothing printed it takes nothing (up to id 0) and only lets the next reader in.
    if (!values.peek) await client.poll(agent, Math.max(printed, 1), printed > 0 ? page[printed - 1].interop.id : 0, lease);
    if (printed < page.length) break;
    remaining -= page.length;
    // A page the broker's answer budget cut short is not the last.
    if ((page.length < DEFAULT_POLL_LIMIT && !more) || values.peek) break;
  }
  return 0;
}

/**
 * A page read under a lease on the inbox, once no other reader holds one: other runs' peeks and polls' takes wait
 * or are refused until this run's take.
 */
async function leasedPeek(client: BrokerClient, agent: AgentName, limit: number): Promise<Awaited<ReturnType<BrokerClient["peek"]>>> {
  const giveUpAt = Date.now() + MAX_LEASE_WAIT_MS;
  for (;;) {
    try {
      return await client.peek(agent, limit, LEASE_SECONDS);
    } catch (error) {
      if (!(error instanceof InteropError) || error.code !== "inbox_leased" || Date.now() > giveUpAt) throw error;
      await new Promise((resolve) => setTimeout(resolve, LEASE_RETRY_MS));
    }
  }
}

/** Writes the messages as JSON lines until stdout closes; returns how many it took. */
async function printUntilClosed(messages: WireMessage[], io: Io): Promise<number> {
  for (let index = 0; index < messages.length; index++) {
    try {
      await io.writeStdout(JSON.stringify(messages[index]) + "\n");
    } catch (error) {
      if (error instanceof InteropError && error.code === "output_closed") return index;
      throw error;
    }
  }
  return messages.length;
}
