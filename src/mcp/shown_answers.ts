/**
 * What an MCP call's answer shows under a lease on the inbox, and its take once the answer was written: a message is
 * taken only after the agent can read it, and one the client never got stays in the inbox (or held for the next call).
 */
import type { BrokerClient } from "../client/broker_client.ts";
import type { AgentName, WireMessage } from "../message.ts";
import type { AnswerTakes } from "./answer_takes.ts";
import type { RequestId, TakenMessages } from "./taken_messages.ts";
import { throughOutage } from "./through_outage.ts";

/**
 * How long the broker holds the inbox for what a wait or an inbox call was shown, until the call takes it (a round
 * trip): what the agent's other readers may wait at most if this process dies in between.
 */
export const SHOWN_LEASE_SECONDS = 30;

/** What a call shows: messages, and the lease they were shown under (none: a broker older than leased reads took them). */
export type Shown = { messages: WireMessage[]; lease?: string };

/** Answers a call with what it showed, returning the messages of its answer: see `answerShownFor`. */
export type AnswerShown = (
  requestId: RequestId,
  signal: AbortSignal,
  earlier: WireMessage[],
  shown: Shown | null,
  one?: number,
) => WireMessage[];

/**
 * What answers call `requestId` with `earlier` (held, taken already) and what it was `shown`, as `agent`: what was
 * shown under a lease is taken once the answer was written (`takes`; `one`: that message alone), the take passed to
 * `track` (the session's end waits for it). Remembered as answered as it is written, before the take: a cancel that
 * crossed the answer on the wire (its client drops it) is read after that, and holds them for the next call, as
 * every taken message is (`taken`).
 */
export function answerShownFor(
  client: BrokerClient,
  agent: AgentName,
  taken: TakenMessages,
  takes: AnswerTakes,
  track: (take: Promise<unknown>) => void,
): AnswerShown {
  return (requestId, signal, earlier, shown, one) => {
    // Taken with the rest (up to the last shown), but not shown twice: one returned from what was held already.
    const messages = taken.marked([...earlier, ...taken.unreturned(shown?.messages ?? [])]);
    const lease = shown?.lease;
    if (lease === undefined) {
      // Taken already (held for this session, or by a broker older than leased reads): held again unless written,
      // and kept (`KeptHeld`) until then, so a kill before the write loses none of them.
      if (messages.length > 0) {
        track(takes.after(requestId, signal, (written) => Promise.resolve(taken.answering(requestId, written ? signal : AbortSignal.abort(), messages))));
      }
      return messages;
    }
    track(takes.after(requestId, signal, async (written) => {
      // Not written: the client never got them, and what was held already is held again.
      taken.answering(requestId, written ? signal : AbortSignal.abort(), written ? messages : earlier);
      const failed = await takeShown(client, agent, shown!.messages, lease, written, one);
      if (failed && written) taken.untaken(shown!.messages);
    }));
    return messages;
  };
}

/**
 * Takes what a call showed under `lease` (up to the last of `shown`) once its answer was `written`, or nothing
 * (which ends the lease) once it never will be; `one` takes that message alone, out of order (an ask's reply).
 * It may take less than `shown`: a stream heeds no lease, and a lease lost (expired, or forgotten by a broker of its
 * own that restarted) lets another reader in, which may show those again. A take that fails (the broker
 * unreachable, another reader's lease since, the agent removed, a full disk) leaves them in the inbox, shown again
 * later, marked `redelivered` (red team 54: shown again as new): at least once, as the agent may have read them. Its
 * lease, which a failed take leaves, is ended by a take of nothing, or expires by itself. Resolves with whether the
 * take failed.
 */
async function takeShown(client: BrokerClient, agent: AgentName, shown: WireMessage[], lease: string, written: boolean, one?: number) {
  // Asked again through a 503 (PostgreSQL away a moment) while the lease lasts: given up at once, what the model has
  // read was shown to it again once the outage ended.
  const until = performance.now() + SHOWN_LEASE_SECONDS * 1000;
  try {
    if (!written || shown.length === 0) await throughOutage(() => client.poll(agent, 1, 0, lease), until);
    else if (one !== undefined) await throughOutage(() => client.takeOne(agent, one, lease), until);
    else await throughOutage(() => client.poll(agent, shown.length, shown[shown.length - 1].interop.id, lease), until);
    return false;
  } catch {
    // Shown again later (above); the next call's read would be refused while the lease holds.
    await client.poll(agent, 1, 0, lease).catch(() => {});
    return true;
  }
}
