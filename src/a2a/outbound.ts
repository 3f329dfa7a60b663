/**
 * `listen --a2a URL`: hands each inbox message to the agent's own A2A server as `SendMessage`, follows the task it
 * becomes by its stream (`SubscribeToTask`) where the server streams, else with `GetTask`, and publishes the task's
 * answer back to the sender as an interop reply.
 *
 * Sends go one at a time in inbox order; the tasks they start are followed side by side (at most `maxInFlight`),
 * so a slow task does not hold up the next message. What is handed over and still followed is kept in an
 * `OutboundState` file, so a restart neither sends a message again nor forgets a task.
 *
 * A repeated `messageId` is never sent on purpose: OpenClaw answers it with a new task that never ends (and that
 * takes the next reply in its context), Hermes and the A2A SDK's server run a second turn. So a send that may have
 * reached the server without an answer (the listener killed mid-request, a timeout, a connection cut after
 * sending) is "in doubt": it is parked as a dead letter saying so, for an operator to check and replay, instead of
 * being sent again.
 */
import type { BrokerClient } from "../client/broker_client.ts";
import type { StreamedMessage } from "../client/follow.ts";
import { retryUntilDone } from "../client/retry.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, type Envelope, fromWire } from "../message.ts";
import { partsOf, payloadOf, textOf } from "./interop_payload.ts";
import { contextIdOf, outboundMessageId, senderContextId } from "./message_ids.ts";
import type { OutboundRecord, OutboundState } from "./outbound_state.ts";
import { A2aError, type A2aMessage } from "./protocol.ts";
import { type A2aRpcClient, InDoubtError } from "./rpc_client.ts";
import { untilServerAnswers } from "./server_back.ts";
import { TaskFollower, textAnswer } from "./task_follower.ts";
import { parseSendResult, type TaskView } from "./task_view.ts";
import { toV03Message } from "./v03_shapes.ts";

export interface A2aOutboundOptions {
  agent: AgentName;
  client: BrokerClient;
  rpc: A2aRpcClient;
  state: OutboundState;
  log: { info(message: string): void; warn(message: string): void; debug(message: string): void };
  shutdown: AbortSignal;
  /** Tasks followed at once; the next send waits for a free place. */
  maxInFlight: number;
}

/** Whether the server took the message: it answered with a task to follow or with the answer itself. */
function isSent(record: OutboundRecord): boolean {
  return record.taskId !== undefined || record.answer !== undefined;
}

export class A2aOutbound {
  #options: A2aOutboundOptions;
  #inFlight = 0;
  /** Follows the tasks the sends start, by stream or GetTask. */
  #follower: TaskFollower;
  /** Sends waiting for a follower to finish. */
  #freed: Array<() => void> = [];
  /**
   * The followers of tasks this run's sends started, until they finish: what `settled()` waits for. Not those of
   * tasks resumed from an earlier run, which may take long yet; their records keep them for the next start.
   */
  #sent = new Set<Promise<void>>();
  /** The last send ended in doubt: the server may be going down, so the next one waits until it answers again. */
  #lastSendInDoubt = false;

  constructor(options: A2aOutboundOptions) {
    this.#options = options;
    this.#follower = new TaskFollower(options);
  }

  /**
   * Settles what an earlier run left in the state file: sends in doubt are parked, accepted tasks followed again
   * (not sent again). Runs before the stream opens.
   */
  async resume(): Promise<void> {
    const { state, log } = this.#options;
    for (const record of [...state.records.values()]) {
      if (isSent(record)) {
        log.info(`following the task of message ${record.id} again`);
        void this.#startFollowing(record, record.answer === undefined ? undefined : { taskId: undefined, ...record.answer });
        continue;
      }
      await this.#park(record.id, inDoubtReason("the listener stopped while sending it"));
      this.#settleSend(record.id);
    }
  }

  /** The `listen` sink: resolves once the receiver took the message (or refused it for good: then it throws `rejected`). */
  deliver = async (message: StreamedMessage): Promise<void> => {
    const { state, rpc, log } = this.#options;
    if (message.id <= state.lastSent) {
      log.debug(`message ${message.id} was handed over before; not sent again`);
      return;
    }
    const envelope = fromWire(JSON.parse(message.data));
    await this.#freePlace();
    if (this.#lastSendInDoubt) {
      await untilServerAnswers(rpc, this.#options);
      this.#lastSendInDoubt = false;
    }
    const record: OutboundRecord = {
      id: envelope.id,
      from: envelope.from,
      messageId: outboundMessageId(envelope),
      contextId: contextIdOf(envelope),
    };
    // Written before the request: if the process dies before the answer, the restart knows the send is in doubt.
    state.records.set(record.id, record);
    state.save();
    let result: unknown;
    try {
      // Not abandoned on shutdown: listen finishes the message in hand, and an abandoned request would be in doubt.
      result = await rpc.call("SendMessage", (version) => sendParams(envelope, record, version));
    } catch (error) {
      if (error instanceof InDoubtError) {
        this.#lastSendInDoubt = true;
        throw new InteropError("rejected", inDoubtReason(error.message), { cause: error });
      }
      // Not taken: the record goes, and a retry (or the stream after a restart) sends it afresh.
      state.records.delete(record.id);
      state.save();
      if (error instanceof A2aError) {
        throw new InteropError("rejected", `${error.message} (final: the server refused this message)`, {
          cause: error,
        });
      }
      throw error;
    } finally {
      state.version = rpc.version;
    }
    const view = parseSendResult(result);
    if (view === undefined) {
      // It answered, so it may well have taken the message; sending it again could repeat it.
      throw new InteropError(
        "rejected",
        `SendMessage to ${rpc.url} answered with neither a task nor a message; not sent again, nothing to follow`,
      );
    }
    // An answer handed to its asker's agent is followed too: a server can take it and still fail the turn on it
    // (OpenClaw: "another OpenClaw process owns state-lifecycle"), and the agent then never saw the answer.
    if (envelope.thread !== undefined) record.reply = true;
    if (view.taskId !== undefined) record.taskId = view.taskId;
    else record.answer = { state: view.state, answer: view.answer };
    state.lastSent = record.id;
    state.save();
    const following = this.#startFollowing(record, view);
    this.#sent.add(following);
    void following.then(() => this.#sent.delete(following));
  };

  /**
   * After `listen` saved its cursor past `id`: records of messages parked by then are done with. Undefined: the
   * broker disowned the cursor (a new data dir restarts ids at 1), so ids no longer say what was sent.
   */
  handedOver(id: number | undefined): void {
    const { state } = this.#options;
    if (id === undefined) {
      state.lastSent = 0;
      state.save();
      return;
    }
    let changed = id > state.lastSent;
    state.lastSent = Math.max(state.lastSent, id);
    for (const record of state.records.values()) {
      if (record.id <= id && !isSent(record)) changed = state.records.delete(record.id) || changed;
    }
    if (changed) state.save();
  }

  /**
   * Resolves once every task this run's sends started has settled and its answer is published (or parked), or once
   * shutdown ended the followers early (their records stay for the next start): `listen --limit N` exits only then.
   */
  async settled(): Promise<void> {
    await Promise.all(this.#sent);
  }

  #settleSend(id: number): void {
    const { state } = this.#options;
    state.records.delete(id);
    state.lastSent = Math.max(state.lastSent, id);
    state.save();
  }

  async #freePlace(): Promise<void> {
    while (this.#inFlight >= this.#options.maxInFlight) {
      const { shutdown } = this.#options;
      await new Promise<void>((resolve) => {
        const done = () => {
          shutdown.removeEventListener("abort", done);
          resolve();
        };
        this.#freed.push(done);
        shutdown.addEventListener("abort", done, { once: true });
      });
      if (this.#options.shutdown.aborted) {
        throw new InteropError("internal", "Stopped while waiting for a task to finish");
      }
    }
  }

  /** Follows the record's task in the background; the promise resolves once the follower finished, however. */
  #startFollowing(record: OutboundRecord, first: TaskView | undefined): Promise<void> {
    this.#inFlight++;
    return this.#follow(record, first)
      .catch((error) => {
        // Only a shutdown ends a follower early; its record stays for the next start.
        if (!this.#options.shutdown.aborted) {
          this.#options.log.warn(`following message ${record.id} failed: ${(error as Error).message}`);
        }
      })
      .finally(() => {
        this.#inFlight--;
        this.#freed.shift()?.();
      });
  }

  /** Follows the task until it settles, publishes its answer (or checks an answer's task), then forgets the record. */
  async #follow(record: OutboundRecord, first: TaskView | undefined): Promise<void> {
    const { state } = this.#options;
    const view = await this.#follower.settle(record, first);
    if (view === undefined) return;
    if (record.reply) await this.#checkTaken(record, view);
    else await this.#publishAnswer(record, view);
    state.records.delete(record.id);
    state.save();
  }

  async #publishAnswer(record: OutboundRecord, view: TaskView): Promise<void> {
    const { client, agent, log, shutdown } = this.#options;
    const answer = view.answer ?? textAnswer(record, `The task ended ${view.state} with no answer`);
    const payload = payloadOf(answer, record.contextId, view.state);
    const refusal = await retryUntilDone(
      async () => {
        try {
          // The key makes a publish retried after a restart store the answer once.
          await client.send(agent, undefined, payload, { replyTo: record.id, key: `a2a-answer-${record.messageId}` });
          return undefined;
        } catch (error) {
          const passing = error instanceof InteropError &&
            // In doubt (the answer to an earlier attempt lost): the key makes another attempt store it once.
            (error.code === "unreachable" || error.code === "in_doubt" || error.code === "storage_failed" || (error.status ?? 0) >= 500);
          if (passing) throw error;
          return error as Error; // hop limit, size, a sender gone: retrying cannot help
        }
      },
      { shutdown, log },
      `publishing the answer to message ${record.id}`,
    );
    // A task that failed or was refused is parked too, its sender answered: the operator sees in `interop status`
    // what the agent did not do (red team 58: a gateway's SIGTERM dropped tasks it had taken, seen by no one else).
    if (refusal !== undefined) {
      await this.#park(record.id, `the receiver's task ${taskOutcome(view)}, but the answer cannot be published: ${refusal.message}`);
    } else if (undone(view)) {
      await this.#park(record.id, `the receiver's task ${taskOutcome(view)} (its sender was answered ${view.state})`);
    }
  }

  /**
   * An answer's task, settled: what the agent said about the answer is not answered back, or two agents would keep
   * answering each other's answers until the hop limit. A task that failed or was refused means the agent never
   * got the answer: it is parked, for an operator to see and resend, rather than dropped unseen.
   */
  async #checkTaken(record: OutboundRecord, view: TaskView): Promise<void> {
    if (!undone(view)) return;
    await this.#park(record.id, `this answer's task at ${this.#options.rpc.url} ${taskOutcome(view)}`);
  }

  async #park(id: number, reason: string): Promise<void> {
    const { client, agent, log, shutdown } = this.#options;
    log.warn(`parking message ${id} as a dead letter: ${reason}`);
    await retryUntilDone(
      async () => {
        try {
          await client.parkDeadLetter(agent, id, reason);
        } catch (error) {
          if (!(error instanceof InteropError && error.code === "unknown_message")) throw error;
          log.warn(`message ${id} was removed by the broker's retention meanwhile; it is not parked`);
        }
      },
      { shutdown, log },
      `parking message ${id}`,
    );
  }
}

/** A task that failed or was refused (or was lost, which listen reads as failed): what it was sent is parked. */
function undone(view: TaskView): boolean {
  return view.state === "TASK_STATE_FAILED" || view.state === "TASK_STATE_REJECTED";
}

/** The most of a task's answer a dead letter's reason quotes: an agent's whole answer is no reason. */
const REASON_ANSWER_CHARS = 300;

/**
 * How a settled task ended, for a dead letter's reason: its state and the start of what it said, or that the server
 * lost it (the FAILED is listen's: the agent may have acted on the message).
 */
function taskOutcome(view: TaskView): string {
  if (view.lost !== undefined) return `was lost: ${view.lost}; its agent may have acted on it all the same`;
  const said = textOf(view.answer?.parts ?? []).trim();
  // Cut by code points: a cut surrogate pair would be stored as a lone half.
  const quoted = said.length > REASON_ANSWER_CHARS ? `${Array.from(said).slice(0, REASON_ANSWER_CHARS).join("")}…` : said;
  return `ended ${view.state}${quoted === "" ? "" : `: ${quoted}`}`;
}

function inDoubtReason(what: string): string {
  return `${what}; the A2A server may or may not have it. Not sent again: a repeated messageId makes OpenClaw ` +
    `open a task that never ends and Hermes run a second turn. Check the receiver, and resend by hand if it has not got it`;
}

/** The SendMessage params for an interop message, in the version the server speaks. */
function sendParams(envelope: Envelope, record: OutboundRecord, version: "1.0" | "0.3"): unknown {
  const message: A2aMessage = {
    messageId: record.messageId,
    role: "ROLE_USER",
    parts: partsOf(envelope.payload),
    // An answer to this agent's own question: the context it asked in, as the broker vouches. Anything else: the
    // sender's context, in the sender's namespace at the receiver (no sender can name this agent's own contexts).
    contextId: envelope.thread?.context ?? senderContextId(envelope.from, record.contextId),
    // Who sent it through interop: the A2A sender the receiver authenticates is interop itself.
    metadata: { interop: { id: envelope.id, from: envelope.from } },
  };
  return version === "1.0"
    ? { message, configuration: { returnImmediately: true } }
    : { message: toV03Message(message), configuration: { blocking: false } };
}
