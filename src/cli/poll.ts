/** `interop poll`: take an agent's pending messages, once. */
import { InteropError } from "../errors.ts";
import type { BrokerClient } from "../client/broker_client.ts";
import { type AgentName, DEFAULT_POLL_LIMIT, type WireMessage } from "../message.ts";
import { agentFlag, brokerClient, CLIENT_HELP, CLIENT_OPTIONS, parseCount, parseFlags } from "./args.ts";
import { EXIT } from "./exit_codes.ts";
import type { Io } from "./io.ts";
import { sleep } from "../sleep.ts";

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
  -j, --json          JSON lines (always); with it, a warning on stderr is JSON too
${CLIENT_HELP}
  -h, --help          show this help

Exit codes: 0 done (also when there was nothing), 2 bad usage, 3 broker unreachable,
4 broker refused, 10 printed some messages this run did not take: another reader
took them after its lease on the inbox was lost (it outlived it, or the broker
restarted), or a stream took them (both: they may be handled twice), or they
expired (--pending-ttl holds them under a lease one more TTL at most). Their ids are
on stderr in a "warning: printed but not taken by this run" line (with --json:
{"warning":"not_taken","ids":[…],"lease_lost":true|false}); the run went on.
A take the broker cannot record (its store full or failing) is tried again for up to
5 minutes; then the same line names what was printed and stays in the inbox (with
--json, "error" says why), and the run exits 3 (try again later; 4 for a store's
I/O error); Ctrl-C or SIGTERM ends the retries at once the same way (Ctrl-C: 130).
Ctrl-C or SIGTERM while the run waits for another run's lease exits 130, having
printed and taken nothing.
`;

/** How long a run holds the inbox for a page it prints: a run that dies holding it delays the next this long at most. */
const LEASE_SECONDS = 60;
/** How often a run renews its lease while it prints, or while its take is tried again. */
const LEASE_RENEW_MS = (LEASE_SECONDS * 1000) / 3;
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
  let exitCode: number = EXIT.ok;
  while (remaining > 0) {
    // Read without taking, print, then take exactly what stdout accepted; the inbox is leased to this run meanwhile,
    // or another run would print the same messages.
    const size = Math.min(remaining, DEFAULT_POLL_LIMIT);
    let read: Awaited<ReturnType<BrokerClient["peek"]>>;
    try {
      read = values.peek ? await client.peek(agent, size) : await leasedPeek(client, agent, size, io.shutdown);
    } catch (error) {
      if (!io.shutdown.aborted) throw error;
      io.stderr(`error: Interrupted while waiting for another reader's lease on ${agent}'s inbox; nothing was printed or taken\n`);
      return EXIT.interrupted;
    }
    const { messages: page, more, lease } = read;
    const printed = await whileRenewing(client, agent, lease, () => printUntilClosed(page, io));
    const shown = page.slice(0, printed);
    if (!values.peek) {
      let took: Awaited<ReturnType<typeof takePrinted>>;
      try {
        took = await takePrinted(client, agent, shown, lease, io.shutdown);
      } catch (error) {
        // Printed, yet still in the inbox: a script that handled them must know which the next run prints again.
        reportUntaken(shown, { taken: [], leaseLost: false, failure: error as Error }, values.json, io);
        if (io.shutdown.aborted) return EXIT.interrupted;
        throw error;
      }
      if (!reportUntaken(shown, took, values.json, io)) exitCode = EXIT.partial;
    }
    if (printed < page.length) break;
    remaining -= page.length;
    // A page the broker's answer budget cut short is not the last.
    if ((page.length < DEFAULT_POLL_LIMIT && !more) || values.peek) break;
  }
  return exitCode;
}

/**
 * Refusals of a take that a later try may not meet: load (429, 503: the broker's memory for answers, the agent's
 * requests in progress) and a store that cannot write now (a full disk: 507; an I/O error, PostgreSQL away: 503).
 */
const RETRIED_TAKE_REFUSALS = new Set(["too_many_requests", "server_busy", "storage_full", "storage_failed", "storage_unavailable"]);

/**
 * Takes what was printed (`shown`) under the run's `lease`, which the take ends; with nothing printed it takes
 * nothing (up to id 0) and only lets the next reader in. A take refused because another reader holds the inbox
 * means this run's lease was lost (it expired, or the broker restarted): it waits for that lease to end, then takes
 * what that reader left of what was printed. One refused for load or by a store that cannot write now
 * (RETRIED_TAKE_REFUSALS) is asked again when the broker says, for 5 minutes at most: failing then, the run left what
 * it printed for the next run to print again, and says which (`run`). A signal (Ctrl-C, SIGTERM) ends the retries.
 */
async function takePrinted(client: BrokerClient, agent: AgentName, shown: WireMessage[], lease: string | undefined, shutdown: AbortSignal) {
  const upTo = shown.length > 0 ? shown[shown.length - 1].interop.id : 0;
  const giveUpAt = performance.now() + MAX_LEASE_WAIT_MS;
  let renewedAt = performance.now();
  for (;;) {
    try {
      return await client.takeShown(agent, Math.max(shown.length, 1), upTo, lease);
    } catch (error) {
      if (lease === undefined || !(error instanceof InteropError) || performance.now() > giveUpAt || shutdown.aborted) throw error;
      if (error.code === "inbox_leased") await sleep(LEASE_RETRY_MS, shutdown);
      else if (RETRIED_TAKE_REFUSALS.has(error.code)) await sleep((error.retryAfter ?? 1) * 1000, shutdown);
      else throw error;
      // The retries outlast the lease (5 minutes against 60 s): it is renewed between them (red team 54: a second
      // run printed the same messages after a minute of a full disk). Between tries, never during one: a renewal
      // that reached the broker after the take would lease the inbox to no one. A lease that ran out and was given
      // to no one is this run's again, under the id the renewal returns; another run's makes the take wait.
      if (performance.now() - renewedAt >= LEASE_RENEW_MS && !shutdown.aborted) {
        lease = (await client.peek(agent, 1, { seconds: LEASE_SECONDS, id: lease }).catch(() => undefined))?.lease ?? lease;
        renewedAt = performance.now();
      }
    }
  }
}

/**
 * Says which printed messages this run did not take (another reader had them: one that took them after this run's
 * lease was lost, or a stream, which heeds no lease; or they outlived the lease's hold on expiry), so they may have
 * been handled twice; false when there were any.
 */
function reportUntaken(
  shown: WireMessage[],
  { taken, leaseLost, failure }: { taken: WireMessage[]; leaseLost: boolean; failure?: Error },
  json: boolean,
  io: Io,
): boolean {
  const takenIds = new Set(taken.map((message) => message.interop.id));
  const untaken = shown.map((message) => message.interop.id).filter((id) => !takenIds.has(id));
  if (untaken.length === 0) return true;
  if (json) {
    io.stderr(JSON.stringify({ warning: "not_taken", ids: untaken, lease_lost: leaseLost, ...(failure && { error: failure.message }) }) + "\n");
  } else {
    const why = failure !== undefined
      ? "the take failed, so they stay in the inbox and the next run prints them again"
      : leaseLost
      ? "this run's lease on the inbox was lost (it expired, or the broker restarted) and another reader took them: they may be handled twice"
      : "a stream, which heeds no lease, took them (they may be handled twice), or they expired under the lease (--pending-ttl)";
    io.stderr(`warning: printed but not taken by this run: ${untaken.join(", ")}; ${why}\n`);
  }
  return false;
}

/**
 * A page read under a lease on the inbox, once no other reader holds one: other runs' peeks and polls' takes wait
 * or are refused until this run's take.
 */
async function leasedPeek(
  client: BrokerClient,
  agent: AgentName,
  limit: number,
  shutdown: AbortSignal,
): Promise<Awaited<ReturnType<BrokerClient["peek"]>>> {
  const giveUpAt = performance.now() + MAX_LEASE_WAIT_MS;
  for (;;) {
    try {
      return await client.peek(agent, limit, { seconds: LEASE_SECONDS });
    } catch (error) {
      if (!(error instanceof InteropError) || error.code !== "inbox_leased" || performance.now() > giveUpAt || shutdown.aborted) throw error;
      await sleep(LEASE_RETRY_MS, shutdown);
    }
  }
}

/**
 * Runs `work` (printing a page) with the lease renewed every third of its length: a reader slower than the lease
 * (a pipe into a busy consumer) would otherwise let the next run in to print the same messages.
 */
async function whileRenewing<T>(client: BrokerClient, agent: AgentName, lease: string | undefined, work: () => Promise<T>): Promise<T> {
  if (lease === undefined) return await work();
  // Failures are left to the take: it is refused if another run holds the inbox by then.
  const renew = setInterval(() => void client.peek(agent, 1, { seconds: LEASE_SECONDS, id: lease }).catch(() => {}), LEASE_RENEW_MS);
  try {
    return await work();
  } finally {
    clearInterval(renew);
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
