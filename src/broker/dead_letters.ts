/** Messages an agent's push receiver refused for good, parked per inbox so they show in status instead of vanishing. */
import { type ErrorCode, InteropError } from "../errors.ts";
import { type AgentName, type Envelope, type Payload, toWire, type WireMessage } from "../message.ts";
import { cutAs, type InboxRecord, type MessageStore, parkedWithoutInbox } from "../store/store.ts";
import type { AgentInboxes } from "./agent_inboxes.ts";
import type { MessageAnswer } from "./message_answer.ts";
import type { Observers } from "./observers.ts";
import type { PublishOptions, Published } from "./publishes.ts";
import { settled } from "./shared_waiters.ts";

/** A dead letter as `/dead-letters` lists it: `message` null once retention removed it (or its sender withdrew it). */
export interface ListedDeadLetter {
  id: number;
  reason: string;
  parked_at: string;
  /** Null until an operator acknowledged it (`acknowledge`). */
  acknowledged_at: string | null;
  message: WireMessage | null;
}

export interface DeadLettersDeps {
  store: MessageStore;
  agents: AgentInboxes;
  observers: Observers;
  now(): number;
  /** Publishes as the broker does (`Broker.publish`). */
  publish(from: AgentName, to: AgentName, payload: Payload, options: PublishOptions): Promise<Published>;
  /** Whether `agent`'s message `id` may still be pending: false only when it surely is not (`Deliveries.isPending`). */
  mayBePending(agent: AgentName, id: number): boolean;
  /** Takes `agent`'s message `id` out of order if it is still pending, committed before resolving (`Broker.takeOne`). */
  takeOne(agent: AgentName, id: number): Promise<unknown>;
  /** Runs `work` unless another reader leases `agent`'s inbox, refused first then (`Leases.unleased`). */
  unleased<T>(agent: AgentName, work: () => Promise<T>): Promise<T>;
}

/** Most letters one redelivery sends again (`POST /dead-letters/redeliver`): each is a publish of its own. */
export const MAX_REDELIVERED = 1000;

/** What the Idempotency-Key of a dead letter's redelivery starts with (then the letter's id): no publish may take one. */
const REDELIVERY_KEY_ROOT = "redelivery:";

/** Whether `key` is one a redelivery is keyed with, which a publish may not take (it would stand for that redelivery). */
export function isRedeliveryKey(key: string): boolean {
  return key.startsWith(REDELIVERY_KEY_ROOT);
}

/** A publish's refusals that sending the message again would meet as well. */
const UNSENDABLE: ReadonlySet<ErrorCode> = new Set(["unknown_message", "question_gone", "hop_limit"]);

/** What `redeliver` did with each id it was given. */
export interface Redelivery {
  /** Each letter sent again: its id, and the new message's. */
  redelivered: Array<{ id: number; as: number }>;
  /** Ids that are none of the agent's dead letters (or whose letter went with the agent's removal). */
  unknown: number[];
  /** Letters whose message retention removed, or its sender withdrew: nothing to send again (acknowledge them). */
  removed: number[];
  /** Letters whose message cannot be sent again as it was: a reply whose question is gone, or past the hop limit. */
  refused: Array<{ id: number; code: ErrorCode; error: string }>;
  /** The agent's letters left unacknowledged. */
  left: number;
}

export class DeadLetters {
  #deps: DeadLettersDeps;

  constructor(deps: DeadLettersDeps) {
    this.#deps = deps;
  }

  /**
   * Parks a message that `agent`'s push receiver refused for good. Only a message addressed to `agent`: any other
   * id is refused exactly as an unknown one, so a dead letter can neither copy another inbox's message nor tell
   * whether an id exists. Nor one its sender withdrew before delivery (A2A CancelTask), which was never the agent's
   * to read: its letter showed it, and a redelivery sent it (red team 61). A message still in the inbox (parked by
   * hand, not by the receiver it was delivered to) is taken out of it: left there, it was delivered as well, and
   * once redelivered it came twice.
   */
  async park(agent: AgentName, messageId: number, reason: string): Promise<void> {
    const { store } = this.#deps;
    if ((await store.find(messageId))?.to !== agent || (await store.outcome(messageId)).withdrawnAt !== undefined) {
      throw new InteropError(
        "unknown_message",
        `Cannot park message ${messageId} for ${agent}: no message with this id was addressed to ${agent} (or retention removed it)`,
      );
    }
    // Looked up, never created: a message addressed to the agent was stored under its inbox, and an inbox gone by now
    // went with the agent's removal (which `find` waits for), the message with it. Created, it brought back the
    // agent the operator was removing (red team 47: 12 of 20 parks racing a forced removal, 20 of 20 on PostgreSQL).
    const inbox = await this.#deps.agents.find(agent);
    if (inbox === undefined || (await store.find(messageId))?.to !== agent) {
      throw parkedWithoutInbox(agent, messageId);
    }
    const parkAndTake = async (pending: boolean) => {
      // A COMMIT whose answer was lost is waited out: one that committed is counted now, as the client's park again
      // finds the letter there and counts nothing.
      if (await settled(store.addDeadLetter(agent, { messageId, reason, parkedAt: this.#deps.now() }))) {
        inbox.deadLetters++;
        this.#deps.observers.deadLettered(agent, messageId);
      }
      // Taken after the letter is stored, never before: a take that failed (the store away) fails the park, whose
      // client parks again and takes it then; a letter that failed would have lost a message taken first.
      if (pending) await this.#deps.takeOne(agent, messageId);
    };
    // Looked up only when it may be pending: a receiver's park (the message delivered) takes and waits for nothing.
    // One that may be is refused, parking nothing, while another reader leases the inbox: that reader may have shown
    // it, and its take, passing over what the park took, said nothing of it; a redelivery then sent it twice (red
    // team 62).
    if (this.#deps.mayBePending(agent, messageId)) await this.#deps.unleased(agent, () => parkAndTake(true));
    else await parkAndTake(false);
  }

  /**
   * The agent's last `limit` dead letters that fit in `answer`, oldest first, each with its message when retention
   * still has it, read a page at a time (`MessageAnswer.readNewest`). A letter naming a message for another agent
   * (parked through a hole that let any id in) is left out. An agent without an inbox is refused, as an
   * acknowledgement is: `[]` told `interop agent dead-letters` of a misspelt name that it had none.
   */
  async list(
    agent: AgentName,
    limit: number,
    withAcknowledged: boolean,
    answer: MessageAnswer<ListedDeadLetter>,
  ): Promise<ListedDeadLetter[]> {
    const { store } = this.#deps;
    await this.#inboxOf(agent);
    const page = async (beforeId: number, size: number, maxChars: number) => {
      const letters = await store.deadLetters(agent, size, beforeId, maxChars, withAcknowledged);
      return cutAs(letters, await Promise.all(letters.map(async (letter) => ({
        id: letter.messageId,
        reason: letter.reason,
        parked_at: new Date(letter.parkedAt).toISOString(),
        acknowledged_at: letter.acknowledgedAt === undefined ? null : new Date(letter.acknowledgedAt).toISOString(),
        message: await this.#letterMessage(letter.messageId).then((message) => message === undefined ? null : toWire(message)),
      }))));
    };
    return await answer.readNewest(page, limit, (letter) => letter.message === null || letter.message.interop.to === agent);
  }

  /**
   * Acknowledges the agent's dead letters of `messageIds` (every one when undefined): an operator has seen to them,
   * so they leave the count `interop status --max-dead-letters` checks. They are kept, not deleted: a question's
   * `/wait` and its A2A task still answer that its receiver refused it. Resolves with the ids acknowledged now and
   * the letters left unacknowledged.
   */
  async acknowledge(agent: AgentName, messageIds: number[] | undefined): Promise<{ acknowledged: number[]; left: number }> {
    const inbox = await this.#inboxOf(agent);
    // As a park: a COMMIT whose answer was lost is waited out, so what it marked is uncounted once. The answer
    // says what the store has left: on a shared store this broker's count may not have seen another's parks yet.
    const { acknowledged, left } = await settled(this.#deps.store.acknowledgeDeadLetters(agent, messageIds, this.#deps.now()));
    inbox.deadLetters = Math.max(0, inbox.deadLetters - acknowledged.length);
    return { acknowledged, left };
  }

  /**
   * Sends the messages of the agent's dead letters `messageIds` to it again, as new messages from the same sender
   * (a reply still answering what it answered), once the receiver is fixed; then acknowledges those letters. Each
   * is keyed by its letter: a redelivery run again (its answer lost, or run twice) finds the first one's message
   * instead of sending another. The letters stay the old messages' outcome (a wait for a reply to one still gets
   * 410): a reply comes to the new message.
   */
  async redeliver(agent: AgentName, messageIds: number[]): Promise<Redelivery> {
    const { store } = this.#deps;
    const done: Redelivery = { redelivered: [], unknown: [], removed: [], refused: [], left: 0 };
    for (const id of new Set(messageIds)) {
      // The agent's letter of this id (the newest below id + 1), acknowledged or not, whether retention kept its message.
      const [letter] = await store.deadLetters(agent, 1, id + 1, Infinity, true);
      const message = await this.#letterMessage(id);
      if (letter?.messageId !== id || (message !== undefined && message.to !== agent)) done.unknown.push(id);
      else if (message === undefined) done.removed.push(id);
      else {
        const options = { replyTo: message.thread?.replyTo, idempotencyKey: `${REDELIVERY_KEY_ROOT}${id}`, chargedTo: agent };
        try {
          const { envelopes: [copy] } = await this.#deps.publish(message.from, agent, message.payload, options);
          done.redelivered.push({ id, as: copy.id });
        } catch (error) {
          // Refused for what the message is, not for now (a full inbox, the store away): the others go on.
          if (!(error instanceof InteropError && UNSENDABLE.has(error.code))) throw error;
          done.refused.push({ id, code: error.code, error: error.message });
        }
      }
    }
    // A letter acknowledged already counts nothing: what is left is the count after these.
    const { left } = await this.acknowledge(agent, done.redelivered.map((sent) => sent.id));
    return { ...done, left };
  }

  /**
   * The message of letter `id` as the letter may show and send it: undefined once retention removed it, and for one
   * its sender withdrew, which was never the agent's to read. `park` refuses such a message, but a park that passed
   * that check as the withdrawal came stored its letter all the same, as did versions before the check.
   */
  async #letterMessage(id: number): Promise<Envelope | undefined> {
    const { store } = this.#deps;
    const message = await store.find(id);
    return message === undefined || (await store.outcome(id)).withdrawnAt !== undefined ? undefined : message;
  }

  /** The agent's inbox record, or `unknown_agent` (404): the dead letters of an agent without one are none to list. */
  async #inboxOf(agent: AgentName): Promise<InboxRecord> {
    const inbox = await this.#deps.agents.find(agent);
    if (inbox === undefined) throw new InteropError("unknown_agent", `Unknown agent: ${agent} has no inbox, so no dead letters`);
    return inbox;
  }
}
