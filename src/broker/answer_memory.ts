/**
 * The memory held by answers of messages (`/poll`, `/history`, `/dead-letters`, ntfy `poll=1`) from the moment they
 * are built until their client has taken them, bounded per agent and for the whole broker: one agent's token asking
 * for many big answers and reading none of them must neither starve the others nor take the broker down.
 */
import { InteropError } from "../errors.ts";
import { DEFAULT_ANSWER_BUDGET } from "./message_answer.ts";

/** What one agent's answers may hold at once (characters): four full answers, far past what one reader asks for. */
export const DEFAULT_AGENT_ANSWER_MEMORY = 4 * DEFAULT_ANSWER_BUDGET;
/** What all answers may hold at once (characters): sixteen full answers, a quarter of a GiB or so. */
export const DEFAULT_BROKER_ANSWER_MEMORY = 16 * DEFAULT_ANSWER_BUDGET;

/** Seconds a client refused for memory is told to wait: the deadline to read an answer is what frees it at worst. */
const RETRY_AFTER_SECONDS = 1;

export class AnswerMemory {
  readonly #perAgent: number;
  readonly #total: number;
  /** Characters held per agent; an agent holding none has no entry. */
  readonly #held = new Map<string, number>();
  #heldTotal = 0;
  /** Agents whose one leased take in progress is let past their own bound (`hold`'s `leasedTake`). */
  readonly #pastAgentBound = new Set<string>();

  constructor(perAgent = DEFAULT_AGENT_ANSWER_MEMORY, total = DEFAULT_BROKER_ANSWER_MEMORY) {
    this.#perAgent = perAgent;
    this.#total = total;
  }

  /** Characters held by all answers now (for tests and metrics). */
  get held(): number {
    return this.#heldTotal;
  }

  /**
   * A hold for one answer to `agent`'s inbox, of at most `budget` characters, which claims as the answer grows;
   * refused at once, before anything is read, while the agent's or the broker's bound has no room for a full one.
   * An answer cut short for memory costs as much to build as a full one: 100 unread asks of one token were each
   * built, cut to a few messages, keeping /status waiting a minute; refused, they cost nothing.
   */
  hold(agent: string, budget: number, leasedTake = false): AnswerHold {
    // A leased reader's take (`/poll?up_to=ID&lease_id=`) is of what its client was shown and read already: refused
    // for the agent's other unread answers, it could not end its lease (nor renew it: a renewing peek needs the same
    // room), which ran out, and the next reader was shown those messages again. One at a time per agent goes past
    // the agent's bound (one full answer more at most); the broker's bound still holds.
    const pastAgentBound = leasedTake && !this.#pastAgentBound.has(agent);
    const refusal = this.claim(agent, budget, false, pastAgentBound);
    if (refusal !== undefined) throw refusal;
    if (pastAgentBound) this.#pastAgentBound.add(agent);
    return new AnswerHold(this, agent, pastAgentBound);
  }

  /** Lets `agent`'s next leased take past its bound: the one that was has been released. */
  leavePastBound(agent: string): void {
    this.#pastAgentBound.delete(agent);
  }

  /**
   * Adds `chars` to what `agent` holds if they fit (only checks with `add` false; with `pastAgentBound`, only the
   * broker's bound); else the refusal. A bound that holds nothing yet takes anything: one message goes however
   * large, as an answer's budget lets it.
   */
  claim(agent: string, chars: number, add = true, pastAgentBound = false): InteropError | undefined {
    const held = this.#held.get(agent) ?? 0;
    if (!pastAgentBound && held > 0 && held + chars > this.#perAgent) {
      return new InteropError(
        "too_many_requests",
        `Too much held by answers for agent ${agent} that their clients have not read yet: ${held} characters, the ` +
          `limit per agent is ${this.#perAgent}; read (or close) the answers asked for before asking for more, or retry later`,
        { retryAfter: RETRY_AFTER_SECONDS },
      );
    }
    if (this.#heldTotal > 0 && this.#heldTotal + chars > this.#total) {
      return new InteropError(
        "server_busy",
        `Too much held by answers that their clients have not read yet: ${this.#heldTotal} characters, the limit for ` +
          `the broker is ${this.#total}; retry later`,
        { retryAfter: RETRY_AFTER_SECONDS },
      );
    }
    if (!add) return undefined;
    this.#held.set(agent, held + chars);
    this.#heldTotal += chars;
    return undefined;
  }

  release(agent: string, chars: number): void {
    if (chars === 0) return;
    const left = this.#held.get(agent)! - chars;
    if (left === 0) this.#held.delete(agent);
    else this.#held.set(agent, left);
    this.#heldTotal -= chars;
  }
}

/** What one answer holds, given back once its client has taken it (or left). */
export class AnswerHold {
  readonly #memory: AnswerMemory;
  readonly #agent: string;
  /** A leased take let past the agent's bound (`AnswerMemory.hold`), until released. */
  #pastAgentBound: boolean;
  #chars = 0;
  /** Held for the answer while it is read, not yet claimed by a message. */
  #reserved = 0;

  constructor(memory: AnswerMemory, agent: string, pastAgentBound = false) {
    this.#memory = memory;
    this.#agent = agent;
    this.#pastAgentBound = pastAgentBound;
  }

  /**
   * Holds `budget` (a full answer) while the answer is read, refused as `AnswerMemory.hold` refuses; `claim` takes
   * from it first, and `settle` gives back what the answer did not use. `hold` alone bounds nothing while answers are
   * still to be read: they claim only as they are built, so requests that arrive together all passed it, and on Deno
   * 100 unread big peeks arriving at once were each read and encoded (half a minute of CPU, 2.3 GiB) only to be
   * refused at their first message.
   */
  reserve(budget: number): void {
    const refusal = this.#memory.claim(this.#agent, budget, true, this.#pastAgentBound);
    if (refusal !== undefined) throw refusal;
    this.#reserved += budget;
  }

  /** Gives back what of the reservation the answer did not claim (once it is read, or failed). */
  settle(): void {
    this.#memory.release(this.#agent, this.#reserved);
    this.#reserved = 0;
  }

  /** Claims `chars` more for the answer; else, claiming nothing, the refusal to answer with if it holds nothing. */
  claim(chars: number): InteropError | undefined {
    if (chars <= this.#reserved) {
      this.#reserved -= chars;
      this.#chars += chars;
      return undefined;
    }
    // Past the reservation the answer claims as it would without one: so an inbox holding nothing else still gets
    // its first message however large.
    this.settle();
    const refusal = this.#memory.claim(this.#agent, chars, true, this.#pastAgentBound);
    if (refusal === undefined) this.#chars += chars;
    return refusal;
  }

  /** Gives back all the answer claimed; safe to call more than once. */
  release(): void {
    this.settle();
    this.#memory.release(this.#agent, this.#chars);
    this.#chars = 0;
    if (this.#pastAgentBound) this.#memory.leavePastBound(this.#agent);
    this.#pastAgentBound = false;
  }
}
