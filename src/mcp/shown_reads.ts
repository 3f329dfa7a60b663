/**
 * How `interop mcp`'s inbox, wait and ask calls read the agent's inbox: what they find is shown under a lease and
 * taken only once the call's answer was written (shown_answers.ts), so a cancel or a kill in between loses nothing.
 */
import type { BrokerClient } from "../client/broker_client.ts";
import { InteropError } from "../errors.ts";
import type { AgentName, WireMessage } from "../message.ts";
import { SHOWN_LEASE_SECONDS, type Shown } from "./shown_answers.ts";
import { afterOutage } from "./through_outage.ts";
import { msUntil } from "../sleep.ts";

/** The longest single long poll of a wait call: how long a cancelled wait may still run, and take a message. */
const WAIT_SLICE_SECONDS = 5;

/**
 * What `poll` finds within `timeoutSeconds` in long polls of WAIT_SLICE_SECONDS at most, or null; after `cancel`
 * aborts, null once the long poll in flight ends. A poll is never hung up: the broker may have answered it in the
 * moment of the cancel, and a hang-up would drop that answer unread. A poll the broker answered 503
 * `storage_unavailable` (its database away) took nothing: the call polls again when Retry-After says, within its
 * timeout, rather than fail (a failed ask, its question stored, would be asked again by the model).
 */
async function longPollsUntilCancelled<T>(timeoutSeconds: number, cancel: AbortSignal, poll: (seconds: number) => Promise<T | null>) {
  const deadline = performance.now() + timeoutSeconds * 1000;
  while (!cancel.aborted) {
    const left = msUntil(deadline) / 1000;
    if (left <= 0) break;
    try {
      const found = await poll(Math.min(left, WAIT_SLICE_SECONDS));
      if (found !== null) return found;
    } catch (error) {
      await afterOutage(error, left * 1000, cancel);
    }
  }
  return null;
}

/**
 * The agent's next message within `timeoutSeconds`, shown under a lease on the inbox, or null. The long polls take
 * nothing: the call takes what it shows once its answer was written (AnswerTakes), and a message that a cancel
 * overtook on its way is not taken (the take of nothing ends the lease): it stays at the head of the inbox, in
 * order, for the next call or the agent's next session, where taken it would have waited for a next call of this
 * session, and been parked as a dead letter at its end.
 */
export function nextMessageUntilCancelled(client: BrokerClient, agent: AgentName, timeoutSeconds: number, cancel: AbortSignal) {
  return longPollsUntilCancelled(timeoutSeconds, cancel, async (seconds): Promise<Shown | null> => {
    const shown = await unlessRemoved(agent, client.waitLeased(agent, seconds, SHOWN_LEASE_SECONDS));
    return shown === null ? null : { messages: [shown.message], lease: shown.lease };
  });
}

/**
 * The reply to the agent's message `question` within `timeoutSeconds`, or null, read as wait reads: shown under a
 * lease on the inbox, to be taken alone (out of order) once the call's answer was written. One that a cancel
 * overtook on its way is not taken (the take of nothing ends the lease): it stays in the inbox as an ordinary
 * message, for the next inbox or wait call or the agent's next session. A long poll that found nothing holds the
 * reply from the agent's other readers a moment more (the broker's REPOLL_GRACE_MS), for the next.
 */
export function replyUntilCancelled(client: BrokerClient, agent: AgentName, question: number, timeoutSeconds: number, cancel: AbortSignal) {
  return longPollsUntilCancelled(timeoutSeconds, cancel, async (seconds): Promise<Shown | null> => {
    const shown = await unlessRemoved(agent, client.waitLeasedReply(agent, seconds, question, SHOWN_LEASE_SECONDS).catch((error) => {
      // A broker older than leased reply waits refuses the lease on a reply: its wait takes the reply, as before.
      if (error instanceof InteropError && error.code === "invalid_query") return client.wait(agent, seconds, question).then(asShown);
      throw error;
    }));
    return shown === null ? null : { messages: [shown.message], lease: shown.lease };
  });
}

/** A message a taking wait returned, as a leased wait would have shown it: taken already, under no lease. */
function asShown(message: WireMessage | null): { message: WireMessage; lease?: string } | null {
  return message === null ? null : { message };
}

/**
 * Up to `limit` of the agent's messages, read as wait reads them: shown under a lease on the inbox, to be taken
 * once the call's answer was written. What a cancel overtook while the read was at the broker stays at the head of
 * the inbox, where taken it would have been parked as a dead letter if the session ended before another call.
 */
export async function inboxShown(client: BrokerClient, agent: AgentName, limit: number): Promise<Shown> {
  const { messages, lease } = await unlessRemoved(agent, client.peek(agent, limit, { seconds: SHOWN_LEASE_SECONDS }));
  if (lease !== undefined) return { messages, lease };
  // A broker older than leased peeks holds nothing for this call, and one older still took them with the peek:
  // taken now whatever the cancel, and held if it came, as before.
  if (messages.length > 0) await unlessRemoved(agent, client.poll(agent, messages.length, messages[messages.length - 1].interop.id));
  return { messages };
}

/**
 * A read of the agent's inbox, said plainly when the broker refused it because the operator removed the agent
 * (`agent_removed`: this session read the inbox on that store, and reading on would create it again).
 */
export async function unlessRemoved<T>(agent: AgentName, read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (error) {
    if (!(error instanceof InteropError && error.code === "agent_removed")) throw error;
    throw new InteropError(
      "agent_removed",
      `${agent} was removed by the operator: this session no longer reads its inbox (reading would create it again); ` +
        `'interop agent add ${agent}' to go on`,
      { cause: error },
    );
  }
}

