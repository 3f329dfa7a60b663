/**
 * Each agent's share of the requests in progress (--max-requests-per-agent), so that one agent, even with a token
 * of its own, cannot hold every --max-connections place with hour-long waits and streams on its own inbox; and, with
 * a refusal of their own, of anything else counted per agent (live feeds).
 */
import { InteropError } from "../errors.ts";
import type { OutgoingResponse } from "../runtime/types.ts";
import { heldUntilAnswered } from "./request_limits.ts";

/** The default share: a quarter of --max-connections, so that one agent always leaves three quarters to the others. */
export function defaultAgentShare(maxConnections: number): number {
  return Math.max(1, Math.floor(maxConnections / 4));
}

/** The 429 an agent past its share gets: `held` places of `max` are its. */
export type ShareRefusal = (agent: string, held: number, max: number) => InteropError;

/** The refusal of --max-requests-per-agent. */
function requestsRefusal(agent: string, held: number, max: number): InteropError {
  return new InteropError(
    "too_many_requests",
    `Too many requests in progress for ${agent === "" ? "callers naming no agent" : `agent ${agent}`}: ${held} (waits, asks ` +
      `and streams included), the limit per agent is ${max} (--max-requests-per-agent); end some or retry later`,
    { retryAfter: 1 },
  );
}

export class AgentShares {
  #max: number;
  #refusal: ShareRefusal;
  /** Requests in progress per agent; an agent with none has no entry, so made-up names hold nothing. */
  #held = new Map<string, number>();

  /** `max` places per agent; past them, `refusal` (by default --max-requests-per-agent's). */
  constructor(max: number, refusal: ShareRefusal = requestsRefusal) {
    this.#max = max;
    this.#refusal = refusal;
  }

  /**
   * Answers with `answer()` while `agent` holds one of its places, from now until the answer (or its stream) ends;
   * past its share, the refusal (429 `too_many_requests`) without calling `answer`.
   */
  hold(agent: string, answer: () => Promise<OutgoingResponse>): Promise<OutgoingResponse> {
    const held = this.#held.get(agent) ?? 0;
    if (held >= this.#max) throw this.#refusal(agent, held, this.#max);
    this.#held.set(agent, held + 1);
    return heldUntilAnswered(answer(), () => {
      const left = this.#held.get(agent)! - 1;
      if (left === 0) this.#held.delete(agent);
      else this.#held.set(agent, left);
    });
  }
}
