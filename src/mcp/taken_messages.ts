/** Messages the MCP tools took from the broker for calls whose answer the client never read: the next call returns them. */
import type { WireMessage } from "../message.ts";

/** A JSON-RPC request id, as the client chose it. */
export type RequestId = string | number;

/**
 * How long, and for how many calls, an answer's messages are remembered. A cancel for an answered call crossed the
 * answer on the wire (a client cancels only a call it still awaits), so it comes within a round trip; a cancel much
 * later would be from a client that did read the answer, and putting its messages back would repeat them.
 */
const ANSWER_MEMORY_MS = 30_000;
const ANSWER_MEMORY_CALLS = 100;

/**
 * What the session's calls took and the client did not get. MCP's sender of `notifications/cancelled` ignores any
 * later response (the SDK client drops it), so messages taken for a call cancelled before or just after its answer
 * are held here and returned by the next inbox or wait call, or parked as dead letters at the session's end.
 */
export class TakenMessages {
  #held: WireMessage[] = [];
  #answered = new Map<RequestId, { messages: WireMessage[]; at: number }>();
  #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Up to `count` held messages, oldest first, now returned by a call. */
  takeHeld(count: number): WireMessage[] {
    return this.#held.splice(0, count);
  }

  /**
   * Call `requestId` answers with `messages`: held again if its client cancelled it already, otherwise remembered in
   * case the cancel is on its way.
   */
  answering<T extends WireMessage | null>(requestId: RequestId, signal: AbortSignal, messages: T[]): T[] {
    const taken = messages.filter((message) => message !== null) as WireMessage[];
    if (signal.aborted) this.#hold(taken);
    else if (taken.length > 0) this.#remember(requestId, taken);
    return messages;
  }

  /** The client cancelled `requestId`: if it was answered with messages lately, they never reached it. */
  cancelled(requestId: RequestId): void {
    this.#forgetOld();
    const answer = this.#answered.get(requestId);
    if (answer === undefined) return;
    this.#answered.delete(requestId);
    this.#hold(answer.messages);
  }

  /** A new call came with `requestId`: the answer of an earlier call with it was read. */
  forget(requestId: RequestId): void {
    this.#answered.delete(requestId);
  }

  /** Everything held, taken out (for parking at the session's end). */
  drain(): WireMessage[] {
    return this.#held.splice(0);
  }

  #hold(messages: WireMessage[]): void {
    // By id, which is the broker's order: a call answered earlier may come back after one cancelled later.
    this.#held.push(...messages);
    this.#held.sort((a, b) => a.interop.id - b.interop.id);
  }

  #remember(requestId: RequestId, messages: WireMessage[]): void {
    this.#answered.delete(requestId);
    this.#answered.set(requestId, { messages, at: this.#now() });
    this.#forgetOld();
  }

  #forgetOld(): void {
    const oldest = this.#now() - ANSWER_MEMORY_MS;
    // A Map iterates in insertion order: the oldest answers come first.
    for (const [id, answer] of this.#answered) {
      if (answer.at >= oldest && this.#answered.size <= ANSWER_MEMORY_CALLS) break;
      this.#answered.delete(id);
    }
  }
}
