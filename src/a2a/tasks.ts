/**
 * The hub's A2A tasks: each is the interop message an A2A caller sent, and its state follows what became of that
 * message (in the inbox, delivered, answered, dead-lettered, withdrawn). Nothing about a task is stored apart.
 */
import type { Broker } from "../broker/broker.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, type Envelope, messageKey } from "../message.ts";
import type { MessageOutcome } from "../store/store.ts";
import { a2aFieldsOf, partsOf } from "./interop_payload.ts";
import { contextIdOf, outboundMessageId } from "./message_ids.ts";
import { A2A_ERROR, A2aError, type A2aMessage, type A2aTask, FINAL_STATES, type TaskState } from "./protocol.ts";

/** What the Idempotency-Key of every A2A message starts with. */
const TASK_KEY_ROOT = "a2a:";

/**
 * Whether `key` is one the hub keys A2A messages with: a publish may not take one (it would stand for an A2A message
 * its sender sends later, which would then be answered with the publish's task and not stored).
 */
export function isTaskKey(key: string): boolean {
  return key.startsWith(TASK_KEY_ROOT);
}

/** The Idempotency-Key prefix of an A2A message from one sender to `agent`: a retried `messageId` is stored once. */
export function taskKeyPrefix(agent: AgentName): string {
  return `${TASK_KEY_ROOT}${agent}:`;
}

/** The most recent tasks the dashboard lists. */
const RECENT_TASKS = 50;

/** A task as the dashboard lists it. */
export interface TaskSummary {
  id: string;
  from: AgentName;
  to: AgentName;
  context_id: string;
  state: TaskState;
  updated: string;
}

/**
 * The most recent A2A tasks `viewer` may see, newest first: all of them for an admin (or anyone, without tokens),
 * else those it sent or was sent, as its view of `/events`. Read and summed up one at a time: only the summary is
 * kept, and 50 tasks with their replies read at once were 150 MiB of messages of 1 MiB (8 dashboards open: RSS
 * 131 → 472 MB, /status held 5.8 s).
 */
export async function recentTasks(broker: Broker, viewer: AgentName | "all", reader: AgentName): Promise<TaskSummary[]> {
  const parties = viewer === "all" ? [{}] : [{ sender: viewer }, { recipient: viewer }];
  // Read within the memory for answers of `reader` (the caller's agent) as a /poll's answer is: four at once per
  // agent, so that many tables asked for together do not each hold their reads.
  const answer = broker.answer(() => "", reader);
  try {
    return await answer.reserved(async () => {
      const summaries: TaskSummary[] = [];
      for await (const envelope of newestOf(parties.map((party) => broker.tasks.sentWithKeyPrefix(TASK_KEY_ROOT, party, Number.MAX_SAFE_INTEGER)))) {
        const task = await taskOfListed(broker, envelope);
        summaries.push({ id: task.id, from: envelope.from, to: envelope.to, context_id: task.contextId, state: task.status.state, updated: task.status.timestamp });
        if (summaries.length === RECENT_TASKS) break;
      }
      return summaries;
    });
  } finally {
    answer.release();
  }
}

/** The messages of `reads` (each newest first) as one read, newest first, each once (one to oneself is in both). */
async function* newestOf(reads: AsyncGenerator<Envelope>[]): AsyncGenerator<Envelope> {
  const heads = await Promise.all(reads.map((read) => read.next()));
  let last: number | undefined;
  for (;;) {
    let newest: number | undefined;
    for (const [index, head] of heads.entries()) {
      if (!head.done && (newest === undefined || head.value.id > (heads[newest].value as Envelope).id)) newest = index;
    }
    if (newest === undefined) return;
    const envelope = heads[newest].value as Envelope;
    heads[newest] = await reads[newest].next();
    if (envelope.id !== last) yield envelope;
    last = envelope.id;
  }
}

/** A task's id: its message's key, so that an id from another store names no task here instead of another caller's message. */
export function taskIdOf(envelope: Envelope): string {
  return `task-${messageKey(envelope)}`;
}

const TASK_ID = /^task-(\d{1,15})-([0-9a-z]{1,12})$/;

/** Ends a stream and a wait: the task changes no more (final), or not before its caller acts (interrupted). */
export function isSettled(state: TaskState): boolean {
  return FINAL_STATES.has(state) || state === "TASK_STATE_INPUT_REQUIRED" || state === "TASK_STATE_AUTH_REQUIRED";
}

/** A task as it stands, with the message it is. */
export interface LoadedTask {
  task: A2aTask;
  envelope: Envelope;
}

/**
 * The task `taskId` that `sender` sent to `agent`, as it stands. Any other id, malformed, unknown, removed by
 * retention or another sender's, is the same `-32001`: a caller learns nothing of tasks not its own.
 */
export async function loadTask(broker: Broker, sender: AgentName, agent: AgentName, taskId: unknown): Promise<LoadedTask> {
  const notFound = new A2aError(A2A_ERROR.taskNotFound, `Task not found: ${JSON.stringify(taskId)}`);
  const match = typeof taskId === "string" ? TASK_ID.exec(taskId) : null;
  if (match === null) throw notFound;
  const found = await broker.tasks.message(Number(match[1]));
  if (found === undefined || found.envelope.from !== sender || found.envelope.to !== agent || taskIdOf(found.envelope) !== taskId) {
    throw notFound;
  }
  return { task: await taskOf(broker, found.envelope, found.outcome), envelope: found.envelope };
}

/** The task of a message just read from the store (a ListTasks page, a retried SendMessage). */
export async function taskOfMessage(broker: Broker, envelope: Envelope): Promise<A2aTask> {
  return (await taskWithOutcome(broker, envelope)).task;
}

/**
 * The task of a message a listing just read from the store: what became of it is read, not the message again (a
 * listing of 1,000 tasks read each one's message twice).
 */
export async function taskOfListed(broker: Broker, envelope: Envelope): Promise<A2aTask> {
  return await taskOf(broker, envelope, await broker.tasks.outcome(envelope.id));
}

/**
 * The task of a message just stored, as its sender is answered: read from the store, or, when that read is refused
 * (the broker's stopping closed the store after the commit: SIGTERM), as the message was stored, before anything
 * became of it. The message is accepted either way; an error would tell the caller it was not (OpenClaw's A2A
 * channel then fails the send and does not send it again).
 */
export async function taskOfStored(broker: Broker, envelope: Envelope): Promise<A2aTask> {
  try {
    return await taskOfMessage(broker, envelope);
  } catch (error) {
    if (!(error instanceof InteropError)) throw error;
    return taskOf(broker, envelope, { taken: false, withdrawnAt: undefined, reply: undefined, deadLetter: undefined });
  }
}

/** The task of a message, with what became of the message (its reply, as the store has it). */
export async function taskWithOutcome(broker: Broker, envelope: Envelope): Promise<{ task: A2aTask; outcome: MessageOutcome }> {
  const found = await broker.tasks.message(envelope.id);
  if (found === undefined) throw new A2aError(A2A_ERROR.taskNotFound, `Task not found: ${taskIdOf(envelope)}`);
  return { task: await taskOf(broker, envelope, found.outcome), outcome: found.outcome };
}

async function taskOf(
  broker: Broker,
  envelope: Envelope,
  outcome: MessageOutcome,
): Promise<A2aTask> {
  const id = taskIdOf(envelope);
  const contextId = contextIdOf(envelope);
  // A message of the task: the question or the reply, with the A2A messageId it came with (else interop's).
  const messageOf = (message: Envelope, role: A2aMessage["role"]): A2aMessage => ({
    messageId: a2aFieldsOf(message.payload)?.messageId ?? outboundMessageId(message),
    role,
    parts: partsOf(message.payload),
    contextId,
    taskId: id,
  });
  const asked = messageOf(envelope, "ROLE_USER");
  const base = { id, contextId, history: [asked], metadata: { interop: { id: envelope.id, from: envelope.from, to: envelope.to } } };
  const agentSays = (messageId: string, text: string): A2aMessage => ({
    messageId,
    role: "ROLE_AGENT",
    parts: [{ text }],
    contextId,
    taskId: id,
  });
  // A reply, when there is one, came first whatever the withdrawal's time says: one to a withdrawn message is
  // refused, so it was stored as a cancel raced it (bob peeked and answered). Shown as CANCELED, the reply a stream
  // or a blocking call took for the caller was shown nowhere.
  if (outcome.withdrawnAt !== undefined && outcome.reply === undefined) {
    return {
      ...base,
      status: {
        state: "TASK_STATE_CANCELED",
        timestamp: new Date(outcome.withdrawnAt).toISOString(),
        message: agentSays(`${id}-canceled`, `Canceled before ${envelope.to} received it; it will not be delivered`),
      },
    };
  }
  const { reply, deadLetter: letter } = outcome;
  // Whichever came first settles the task: a final state never changes.
  if (letter !== undefined && (reply === undefined || letter.parkedAt <= Date.parse(reply.timestamp))) {
    return {
      ...base,
      status: {
        state: "TASK_STATE_FAILED",
        timestamp: new Date(letter.parkedAt).toISOString(),
        message: agentSays(`${id}-failed`, `Not delivered to ${envelope.to}: ${letter.reason}`),
      },
    };
  }
  if (reply !== undefined) {
    const answer = messageOf(reply, "ROLE_AGENT");
    return {
      ...base,
      status: { state: a2aFieldsOf(reply.payload)?.state ?? "TASK_STATE_COMPLETED", timestamp: reply.timestamp, message: answer },
      artifacts: [{ artifactId: `${id}-reply-${reply.id}`, name: "reply", parts: answer.parts }],
    };
  }
  const delivered = await broker.tasks.isDelivered(envelope.to, envelope.id, outcome);
  return { ...base, status: { state: delivered ? "TASK_STATE_WORKING" : "TASK_STATE_SUBMITTED", timestamp: envelope.timestamp } };
}
