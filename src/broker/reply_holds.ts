/**
 * Replies held from their question's commit (`POST /broadcast?hold_reply=SECONDS`) until a leased reply wait for
 * them takes the hold over, or the hold's seconds pass.
 */
import type { AgentName } from "../message.ts";

/**
 * The most holds one agent keeps; a new one past it ends the agent's oldest. Each is ~750 bytes of memory until its
 * seconds pass (up to an hour): at the rate limit (1,000 publishes a second) one token held 2.7 GB within the hour.
 * An `interop mcp` ask holds one while it waits, and its wait takes the hold over at once: far fewer.
 */
export const MAX_HOLDS_PER_AGENT = 100;

export class ReplyHolds {
  /**
   * Per agent, then per question, oldest first: how the hold ends, its release, the timer that runs it, and who is
   * told once it has ended (`whenEnded`).
   */
  #held = new Map<AgentName, Map<number, { release: () => void; timer: ReturnType<typeof setTimeout>; ended?: () => void }>>();
  #maxPerAgent: number;

  constructor(maxPerAgent = MAX_HOLDS_PER_AGENT) {
    this.#maxPerAgent = maxPerAgent;
  }

  /**
   * Keeps the hold of the reply to `agent`'s message `questionId` (`release` ends it) for `ms` at most. A question
   * published again (a keyed retry) replaces the hold it had; past the agent's most holds, its oldest ends (that
   * reply then reaches the agent's readers in order, as one sent without a hold).
   */
  add(agent: AgentName, questionId: number, ms: number, release: () => void): void {
    this.end(agent, questionId);
    const held = this.#held.get(agent) ?? new Map();
    this.#held.set(agent, held);
    if (held.size >= this.#maxPerAgent) this.end(agent, held.keys().next().value!);
    const timer = setTimeout(() => this.end(agent, questionId), ms);
    // Bounded by the hold's seconds, and cleared by `close`: it need not keep a process alive.
    (timer as { unref?: () => void }).unref?.();
    held.set(questionId, { release, timer });
  }

  /**
   * Calls `ended` once the hold of the reply to `agent`'s message `questionId` ends, however it ends, and returns the
   * function that ends it; undefined (`ended` never called) when it is not held. What watches a hold for its token's
   * revocation stops with it: kept for the hold's hour instead, one per question, they outgrew the bound on holds
   * (580 MB after 100,000 questions).
   */
  whenEnded(agent: AgentName, questionId: number, ended: () => void): (() => void) | undefined {
    const hold = this.#held.get(agent)?.get(questionId);
    if (hold === undefined) return undefined;
    hold.ended = ended;
    return () => this.end(agent, questionId);
  }

  /** `agent` was removed: its questions went with its inbox, so their replies are ordinary messages now. */
  endAll(agent: AgentName): void {
    for (const questionId of [...this.#held.get(agent)?.keys() ?? []]) this.end(agent, questionId);
  }

  /**
   * The broker stops: its timers go, nothing is released (its memory goes with it, and a shared store's records
   * end by themselves, or when the broker counts as gone).
   */
  close(): void {
    for (const held of this.#held.values()) for (const { timer } of held.values()) clearTimeout(timer);
    this.#held.clear();
  }

  /**
   * Ends the hold of the reply to `agent`'s message `questionId` here (on this broker), if it is still held: a wait for
   * the reply now holds it itself (its own rules apply from now on), or the token that made the hold was revoked.
   */
  end(agent: AgentName, questionId: number): void {
    const held = this.#held.get(agent);
    const hold = held?.get(questionId);
    if (held === undefined || hold === undefined) return;
    held.delete(questionId);
    if (held.size === 0) this.#held.delete(agent);
    clearTimeout(hold.timer);
    hold.release();
    hold.ended?.();
  }
}
