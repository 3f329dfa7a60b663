/**
 * Replies held from their question's commit (`POST /broadcast?hold_reply=SECONDS`) until a leased reply wait for
 * them takes the hold over, or the hold's seconds pass.
 */
import type { AgentName } from "../message.ts";

export class ReplyHolds {
  /** Per agent and question, how the hold ends: its release, and the timer that runs it. */
  #held = new Map<string, { release: () => void; timer: ReturnType<typeof setTimeout> }>();

  /**
   * Keeps the hold of the reply to `agent`'s message `questionId` (`release` ends it) for `ms` at most. A question
   * published again (a keyed retry) replaces the hold it had.
   */
  add(agent: AgentName, questionId: number, ms: number, release: () => void): void {
    const key = keyOf(agent, questionId);
    this.#end(key);
    const timer = setTimeout(() => this.#end(key), ms);
    // Bounded by the hold's seconds, and cleared by `close`: it need not keep a process alive.
    (timer as { unref?: () => void }).unref?.();
    this.#held.set(key, { release, timer });
  }

  /**
   * A wait for the reply now holds it itself: the hold made at the commit ends here (on this broker), and the
   * wait's own rules apply from now on.
   */
  takeOver(agent: AgentName, questionId: number): void {
    this.#end(keyOf(agent, questionId));
  }

  /**
   * The broker stops: its timers go, nothing is released (its memory goes with it, and a shared store's records
   * end by themselves, or when the broker counts as gone).
   */
  close(): void {
    for (const { timer } of this.#held.values()) clearTimeout(timer);
    this.#held.clear();
  }

  #end(key: string): void {
    const held = this.#held.get(key);
    if (held === undefined) return;
    this.#held.delete(key);
    clearTimeout(held.timer);
    held.release();
  }
}

function keyOf(agent: AgentName, questionId: number): string {
  return `${questionId} ${agent}`;
}
