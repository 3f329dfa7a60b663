/** Messages the MCP tools took from the broker for calls whose answer the client never read: the next call returns them. */
import type { WireMessage, WireMetadata } from "../message.ts";

/** A JSON-RPC request id, as the client chose it. */
export type RequestId = string | number;

/**
 * A message a call returns. `interop.redelivered`: it was in an earlier call's answer, written before that call's
 * cancel came, so the client may have read it (see `TakenMessages.cancelled`): an agent that acted on its id skips it.
 */
export type McpMessage = WireMessage & { interop: WireMetadata & { redelivered?: true } };

/** A message held for the next call; `written`: the answer it was taken for was written before its call's cancel. */
export interface HeldMessage {
  message: WireMessage;
  written: boolean;
}

/**
 * How long, and for how many calls, an answer's messages are remembered. A cancel for an answered call crossed the
 * answer on the wire (a client cancels only a call it still awaits), so it comes within a round trip; a cancel much
 * later would be from a client that did read the answer, and putting its messages back would repeat them.
 */
const ANSWER_MEMORY_MS = 30_000;
const ANSWER_MEMORY_CALLS = 100;
/** How many messages shown and left untaken (`untaken`) are remembered, the oldest forgotten first. */
const UNTAKEN_MEMORY = 1000;

/**
 * What the session's calls took and the client did not get. MCP's sender of `notifications/cancelled` ignores any
 * later response (the SDK client drops it), so messages taken for a call cancelled before or just after its answer
 * are held here and returned by the next inbox or wait call, or parked as dead letters at the session's end.
 */
export class TakenMessages {
  #held: HeldMessage[] = [];
  #answered = new Map<RequestId, { messages: WireMessage[]; at: number }>();
  /** Ids of messages an answer showed whose take then failed: still in the inbox, shown again marked. */
  #untaken = new Set<number>();
  #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Up to `count` held messages, oldest first, now returned by a call; marked `redelivered` if they may have been read. */
  takeHeld(count: number): McpMessage[] {
    return this.#held.splice(0, count).map(({ message, written }) =>
      written ? { ...message, interop: { ...message.interop, redelivered: true } } : message
    );
  }

  /**
   * Call `requestId` answers with `messages`: held again if its client cancelled it already, otherwise remembered in
   * case the cancel is on its way.
   */
  answering<T extends WireMessage | null>(requestId: RequestId, signal: AbortSignal, messages: T[]): T[] {
    const taken = messages.filter((message) => message !== null) as WireMessage[];
    if (signal.aborted) this.#hold(taken, false);
    else if (taken.length > 0) this.#remember(requestId, taken);
    return messages;
  }

  /**
   * The client cancelled `requestId`: if it was answered with messages lately, they may never have reached it (a
   * cancel that crossed the answer). Or they did: the SDK's client sends a cancel for every call made with a signal
   * aborted later, answered or not (a turn's signal, aborted seconds after its inbox call was read), so they come back
   * marked `redelivered`, and parked at the session's end with a reason that says so.
   */
  cancelled(requestId: RequestId): void {
    this.#forgetOld();
    const answer = this.#answered.get(requestId);
    if (answer === undefined) return;
    this.#answered.delete(requestId);
    // One returned marked already was written twice: held again at every cancel (a host that cancels each call
    // after reading its answer), it came back in every answer, and a wait never got past it to newer messages.
    this.#hold(answer.messages.filter((message) => !(message as McpMessage).interop.redelivered), true);
  }

  /**
   * An answer that was written showed `messages`, and their take failed (a full disk, the broker away past the lease):
   * they stay in the inbox, and the call that shows them again marks them `redelivered` (`marked`).
   */
  untaken(messages: WireMessage[]): void {
    for (const { interop } of messages) this.#untaken.add(interop.id);
    for (const id of this.#untaken) {
      if (this.#untaken.size <= UNTAKEN_MEMORY) break;
      this.#untaken.delete(id);
    }
  }

  /** `messages` as a call returns them: one an earlier answer showed and could not take is marked `redelivered`. */
  marked(messages: WireMessage[]): McpMessage[] {
    return messages.map((message) =>
      this.#untaken.delete(message.interop.id) ? { ...message, interop: { ...message.interop, redelivered: true } } : message
    );
  }

  /** A new call came with `requestId`: the answer of an earlier call with it was read. */
  forget(requestId: RequestId): void {
    this.#answered.delete(requestId);
  }

  /** Everything held, taken out (for parking at the session's end). */
  drain(): HeldMessage[] {
    return this.#held.splice(0);
  }

  #hold(messages: WireMessage[], written: boolean): void {
    // By id, which is the broker's order: a call answered earlier may come back after one cancelled later.
    this.#held.push(...messages.map((message) => ({ message, written })));
    this.#held.sort((a, b) => a.message.interop.id - b.message.interop.id);
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
