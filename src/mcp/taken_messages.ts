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

/** Orders held messages by id, which is the broker's order. */
export function byId(a: HeldMessage, b: HeldMessage): number {
  return a.message.interop.id - b.message.interop.id;
}

/** Where the held messages are kept besides memory (`HeldFile`): what a session killed before it returned them left. */
export interface KeptHeld {
  /** Keeps `held`, replacing what it kept; false when it could not. */
  keep(held: HeldMessage[]): boolean;
}

/**
 * How long, and for how many calls, an answer's messages are remembered. A cancel for an answered call crossed the
 * answer on the wire (a client cancels only a call it still awaits), so it comes within a round trip; a cancel much
 * later would be from a client that did read the answer, and putting its messages back would repeat them.
 */
const ANSWER_MEMORY_MS = 30_000;
const ANSWER_MEMORY_CALLS = 100;
/** How many ids of messages left untaken (`untaken`), or returned from what was held, are remembered, the oldest forgotten first. */
const ID_MEMORY = 1000;

/**
 * What the session's calls took and the client did not get. MCP's sender of `notifications/cancelled` ignores any
 * later response (the SDK client drops it), so messages taken for a call cancelled before or just after its answer
 * are held here and returned by the next inbox or wait call, or parked as dead letters at the session's end.
 */
export class TakenMessages {
  #held: HeldMessage[] = [];
  /**
   * Held messages a call is returning, by id, until its answer was written (then `answering` tells): kept as held
   * until then, as a kill before the write would leave them unread.
   */
  #returning = new Map<number, HeldMessage>();
  /** Held messages the session's end is parking (`drain`), by id, kept until their park is done (`parked`). */
  #parking = new Map<number, HeldMessage>();
  #answered = new Map<RequestId, { messages: WireMessage[]; at: number }>();
  /** Ids of messages an answer showed whose take then failed: still in the inbox, shown again marked. */
  #untaken = new Set<number>();
  /**
   * Ids of the held messages calls returned (the last ID_MEMORY): the inbox may still have one, its take failed
   * or cut by a kill (a message taken over from a session that died), and a read that shows it again leaves it out.
   */
  #returned = new Set<number>();
  #now: () => number;
  #kept: KeptHeld | undefined;

  /**
   * `kept`: where every change to what is held is kept as well; `held`: what an earlier session held (taken over
   * from its file: kept there already).
   */
  constructor(options: { now?: () => number; kept?: KeptHeld; held?: HeldMessage[] } = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.#kept = options.kept;
    this.#held = [...options.held ?? []];
  }

  /** Up to `count` held messages, oldest first, now returned by a call; marked `redelivered` if they may have been read. */
  takeHeld(count: number): McpMessage[] {
    const returned = this.#held.splice(0, count);
    for (const held of returned) {
      this.#returning.set(held.message.interop.id, held);
      remember(this.#returned, held.message.interop.id);
    }
    return returned.map(({ message, written }) => written ? { ...message, interop: { ...message.interop, redelivered: true } } : message);
  }

  /**
   * Call `requestId` answers with `messages` (once its answer was written, or is known never to be: `signal`
   * aborted): held again if its client cancelled it already, otherwise remembered in case the cancel is on its way.
   */
  answering<T extends WireMessage | null>(requestId: RequestId, signal: AbortSignal, messages: T[]): T[] {
    const taken = messages.filter((message) => message !== null) as WireMessage[];
    if (signal.aborted) this.#hold(taken, false);
    else if (taken.length > 0) {
      this.#remember(requestId, taken);
      // Every one deleted (not `some`, which stops at the first: the others stayed kept and came back in every
      // later session, red team 62).
      const returned = taken.filter(({ interop }) => this.#returning.delete(interop.id));
      if (returned.length > 0) this.#keep();
    }
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
    for (const { interop } of messages) remember(this.#untaken, interop.id);
  }

  /** What a read `shown` has that no call returned from what was held already (see `#returned`). */
  unreturned(shown: WireMessage[]): WireMessage[] {
    return shown.filter(({ interop }) => !this.#returned.has(interop.id));
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

  /** Everything held, taken out for parking at the session's end: kept until each is `parked`. */
  drain(): HeldMessage[] {
    const drained = this.#held.splice(0);
    for (const held of drained) this.#parking.set(held.message.interop.id, held);
    return drained;
  }

  /** Message `id`, drained, was parked as a dead letter: no longer kept. */
  parked(id: number): void {
    if (this.#parking.delete(id)) this.#keep();
  }

  #hold(messages: WireMessage[], written: boolean): void {
    for (const { interop } of messages) this.#returning.delete(interop.id);
    // By id, which is the broker's order: a call answered earlier may come back after one cancelled later.
    this.#held.push(...messages.map((message) => ({ message, written })));
    this.#held.sort(byId);
    if (messages.length > 0) this.#keep();
  }

  /** Keeps what is held, being returned or being parked: what a kill now would otherwise lose. */
  #keep(): void {
    if (this.#kept === undefined) return;
    const all = [...this.#held, ...this.#returning.values(), ...this.#parking.values()];
    this.#kept.keep(all.sort(byId));
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

/** Adds `id` to `ids`, forgetting the oldest past ID_MEMORY (a Set iterates in insertion order). */
function remember(ids: Set<number>, id: number): void {
  ids.add(id);
  for (const old of ids) {
    if (ids.size <= ID_MEMORY) break;
    ids.delete(old);
  }
}
