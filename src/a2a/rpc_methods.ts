/** The A2A JSON-RPC methods `POST /a2a/<agent>` answers (SendMessage, GetTask, …), over the broker's messages. */
import type { Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import { InteropError } from "../errors.ts";
import { jsonResponse, jsonTextResponse } from "../http/responses.ts";
import type { AgentName, Envelope } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { heldJsonAnswer } from "./held_answer.ts";
import type { A2aInboundOptions } from "./inbound.ts";
import { payloadOf } from "./interop_payload.ts";
import { newContextId } from "./message_ids.ts";
import { A2A_ERROR, A2aError, type A2aMethod, type A2aTask, isObject, parseMessage, type ProtocolVersion } from "./protocol.ts";
import { refusalResponse, rpcRefusal } from "./rpc_refusal.ts";
import { listTasks, withHistory } from "./task_list.ts";
import { taskStream } from "./task_stream.ts";
import { waitThroughRemoval } from "../broker/removal_waits.ts";
import { isSettled, loadTask, taskIdOf, taskKeyPrefix, taskOfMessage, taskOfStored, taskWithOutcome } from "./tasks.ts";
import { toV03Task } from "./v03_shapes.ts";
import { msUntil } from "../sleep.ts";

export interface Call {
  broker: Broker;
  request: IncomingRequest;
  options: A2aInboundOptions;
  caller: Caller;
  /** The agent whose endpoint was called: the recipient. */
  agent: AgentName;
  /** The caller: the agent of its token. */
  sender: AgentName;
  params: Record<string, unknown>;
  rpcId: string | number;
  version: ProtocolVersion;
}

/** A method's answer: its result, or a response of its own (ListTasks' holds the memory for answers until `written`). */
export type Answer = { result: unknown } | { response: OutgoingResponse };

export const METHODS: Record<A2aMethod, (call: Call) => Promise<Answer>> = {
  SendMessage: sendMessage,
  SendStreamingMessage: async (call) => {
    const { envelope, recorded } = await publish(call, true);
    try {
      return { response: await streamTask(call, envelope, taskOfStored, recorded) };
    } catch (error) {
      // The message is stored: the refusal names its task.
      return { response: refusalResponse(call.rpcId, error, taskIdOf(envelope)) };
    }
  },
  GetTask: async (call) => ({ result: shaped(call, (await loadTask(call.broker, call.sender, call.agent, call.params.id)).task) }),
  ListTasks: async (call) => {
    // The JSON-RPC answer around the result, built with it a slice at a time.
    const around = { open: `{"jsonrpc":"2.0","id":${JSON.stringify(call.rpcId)},"result":`, close: "}" };
    const { body, written } = await listTasks(call.broker, call.sender, call.agent, call.params, call.version, around);
    return { response: { ...jsonTextResponse(200, body), written } };
  },
  CancelTask: cancelTask,
  SubscribeToTask: async (call) => {
    const { envelope } = await loadTask(call.broker, call.sender, call.agent, call.params.id);
    return { response: await streamTask(call, envelope) };
  },
  GetExtendedAgentCard: () => Promise.reject(new A2aError(A2A_ERROR.extendedCardNotConfigured, "No extended agent card: the card is public")),
  CreateTaskPushNotificationConfig: noPush,
  GetTaskPushNotificationConfig: noPush,
  ListTaskPushNotificationConfigs: noPush,
  DeleteTaskPushNotificationConfig: noPush,
};

function noPush(): Promise<Answer> {
  return Promise.reject(
    new A2aError(A2A_ERROR.pushNotificationNotSupported, "Push notifications are not supported: use GetTask, or stream with SubscribeToTask"),
  );
}

/** A message committed by a SendMessage, and the record of the wait for its reply (see `publish`). */
interface Sent {
  envelope: Envelope;
  recorded?: Promise<string | undefined>;
}

/**
 * Commits the message to the agent's inbox (once per sender and messageId); resolves with the stored message. A
 * call that waits for the reply (`awaiting`: blocking, or streamed) has that wait recorded on a shared store with
 * the message, in its commit (`Broker.publishQuestion`): a fast reply published through another broker is then
 * read by no reader there before the call takes it. It must go to `awaitSettled`, which ends it.
 */
async function publish(call: Call, awaiting: boolean): Promise<Sent> {
  const message = parseMessage(call.params.message);
  const contextId = message.contextId ?? newContextId();
  await call.broker.tasks.admitReader(call.sender);
  const payload = payloadOf(message, contextId);
  const options = { idempotencyKey: taskKeyPrefix(call.agent) + message.messageId, keyNamesMessage: true };
  if (!awaiting) return { envelope: (await call.broker.publish(call.sender, call.agent, payload, options)).envelopes[0] };
  const { question, recorded } = await call.broker.publishQuestion(call.sender, call.agent, payload, call.options.replyWaitMs, options);
  return { envelope: question, recorded };
}

/**
 * The task in SUBMITTED (or as it stands, for a retried messageId). A blocking call (v1.0: without
 * `returnImmediately`; v0.3: `blocking: true`) first waits, up to the bound, for the task to settle: the reply is
 * then taken from the caller's inbox, as `/ask` takes it, since the caller has it in the answer; 429 past the task's
 * MAX_FOLLOWERS_PER_TASK.
 */
async function sendMessage(call: Call): Promise<Answer> {
  const configuration = isObject(call.params.configuration) ? call.params.configuration : {};
  const blocking = call.version === "1.0" ? configuration.returnImmediately !== true : configuration.blocking === true;
  const { envelope, recorded } = await publish(call, blocking);
  const answered = (task: A2aTask) => (call.version === "1.0" ? { task } : toV03Task(task));
  if (!blocking) return { result: answered(await taskOfStored(call.broker, envelope)) };
  const result = async () => answered(await taskOfMessage(call.broker, envelope));
  const taskId = taskIdOf(envelope);
  const waited = async (): Promise<OutgoingResponse> => {
    // A reply can take minutes (an agent's turn): past the keepalive interval the answer is held open with spaces.
    const left = new AbortController();
    const settled = awaitSettled(call, envelope, AbortSignal.any([call.request.clientGone(), left.signal]), recorded).then(async (end) => {
      if (end === "revoked") {
        throw new InteropError("unauthorized", `Token revoked while waiting: the message was stored, a reply will be in ${call.sender}'s inbox`);
      }
      // Not read from a store being closed: that failed as storage_failed, which says nothing of the stored message.
      if (call.broker.stopping.aborted) throw stoppedWhileWaiting(taskId);
      return { jsonrpc: "2.0", id: call.rpcId, result: await result() };
    }).catch((error: unknown) => Promise.reject(call.broker.stopping.aborted ? stoppedWhileWaiting(taskId) : error));
    const answer = await heldJsonAnswer(settled, call.options.keepaliveMs, left, (error) => lateRpcError(call, error, taskId));
    return "ready" in answer ? jsonResponse(200, answer.ready) : answer.response;
  };
  try {
    return { response: await followingTask(call, envelope, recorded, waited) };
  } catch (error) {
    return { response: refusalResponse(call.rpcId, error, taskId) };
  }
}

/**
 * The broker stopped while a blocking SendMessage waited for its reply: nothing is lost (the message is stored, and
 * the reply, not taken, will stand in the task and in the caller's inbox), so the caller is told to ask again.
 */
function stoppedWhileWaiting(taskId: string): InteropError {
  return new InteropError(
    "storage_unavailable",
    `The broker is stopping: your message is stored as task ${taskId} and its reply will come; in a moment, here once the broker ` +
      "is back or at another broker on the same database, GetTask it, or send the same message again (same messageId: stored once)",
    { retryAfter: 1 },
  );
}

/**
 * The JSON-RPC error a held answer ends with: its head went long ago, so a refusal's HTTP status is lost (its code
 * and retryAfter are in `data`); a bug is logged as the router logs one, since the router's catch is long past.
 */
function lateRpcError(call: Call, error: unknown, taskId: string): object {
  const refusal = rpcRefusal(call.rpcId, error, taskId);
  if (refusal !== undefined) return refusal.body;
  call.options.onInternalError(error);
  return { jsonrpc: "2.0", id: call.rpcId, error: { code: A2A_ERROR.internalError, message: "Internal error: see the broker's log" } };
}

/**
 * How a wait for a task's reply ended: `settled`, its reply taken for the call or nothing left to take (the caller may
 * be shown the settled task); `revoked`, the caller's token; `over`, the bound passed, the broker stopping or the
 * client gone, with nothing taken (a reply that comes is the caller inbox's).
 */
type WaitEnd = "settled" | "revoked" | "over";

/**
 * Waits, up to the bound or until `until` aborts, for the task of `envelope` to settle; its reply is taken from the
 * caller's inbox, as `/ask` takes it, since the caller gets it in the answer or on its stream (Hermes streams its
 * calls: without this the reply came again as a new turn through its inbox). A revoked token ends the wait, as it
 * ends an /ask: the reply then stays in the caller's inbox. The
 * wait's record made with the message (`recorded`, see `publish`) ends with it; without one (a SubscribeToTask) the
 * wait records itself, once it begins. The operator's removal of the caller's agent ends it as it ends an /ask: 410
 * `agent_removed` once the removal committed (the reply has no inbox to come to: it waited out the bound); one that
 * was refused or failed leaves it waiting for the rest of the bound.
 */
async function awaitSettled(call: Call, envelope: Envelope, until: AbortSignal, recorded?: Promise<string | undefined>): Promise<WaitEnd> {
  const settled = new AbortController();
  // Not only a reply settles it: a dead letter or a cancel does too, or a reply another reader took.
  const check = () => void settledWithNothingToTake(call, envelope).then((done) => done && settled.abort(), () => settled.abort());
  const unwatch = call.options.changes.watch(call.broker, envelope, check);
  let revoked = false;
  const unwatchToken = call.options.auth.watchRevocation(call.caller, () => {
    revoked = true;
    settled.abort();
  });
  check();
  const deadline = performance.now() + call.options.replyWaitMs;
  try {
    const taken = await waitThroughRemoval(
      call.broker,
      call.sender,
      // A reply already in the inbox (the task settled before this call: a SubscribeToTask, a retried SendMessage) is
      // taken as one that comes later. The record made with the message ends with the first wait.
      (removal, resumed) =>
        call.broker.waitForReply(call.sender, envelope.id, msUntil(deadline), AbortSignal.any([until, settled.signal, removal]), resumed ? undefined : recorded),
      () => until.aborted || settled.signal.aborted || msUntil(deadline) <= 0,
    );
    if (revoked) return "revoked";
    return taken !== undefined || settled.signal.aborted ? "settled" : "over";
  } finally {
    unwatch();
    unwatchToken();
  }
}

/**
 * Whether the task of `envelope` settled with nothing left for its caller to take: dead-lettered, cancelled, or
 * answered by a reply another reader of the caller's inbox took already. A reply still pending is the wait's to take.
 */
async function settledWithNothingToTake(call: Call, envelope: Envelope): Promise<boolean> {
  const { task, outcome: { reply } } = await taskWithOutcome(call.broker, envelope);
  if (!isSettled(task.status.state)) return false;
  const found = reply === undefined ? undefined : await call.broker.tasks.message(reply.id);
  return found === undefined || await call.broker.tasks.isDelivered(call.sender, found.envelope.id, found.outcome);
}

/**
 * The task as a stream (SendStreamingMessage, SubscribeToTask), which takes the reply for as long as it is open, or
 * 429 past the task's MAX_FOLLOWERS_PER_TASK;
 * `recorded`, the record of that wait made with the message, ends with it (a stream is opened even for a client that
 * already hung up: the record never outlives the stream). A wait for the reply refused (the caller's agent removed,
 * the store failing), or ended by the broker stopping, ends the stream with the JSON-RPC error a blocking call is
 * answered; one past the bound ends it as it stands. Either way a reply that comes then stays in the caller's inbox,
 * so the stream never shows it: it would reach the caller twice (Hermes: a SIGTERM as the reply committed, 13 of 15).
 */
function streamTask(
  call: Call,
  envelope: Envelope,
  firstRead?: (broker: Broker, envelope: Envelope) => Promise<A2aTask>,
  recorded?: Promise<string | undefined>,
): Promise<OutgoingResponse> {
  // Only the task's sender streams it (loadTask refuses others): the reply is the caller's to take.
  return followingTask(call, envelope, recorded, () =>
    Promise.resolve(taskStream(call.broker, call.options.changes, envelope, call.rpcId, call.version, async (closed) => {
      const taskId = taskIdOf(envelope);
      try {
        const end = await awaitSettled(call, envelope, closed, recorded);
        if (end === "settled") return true;
        // Past the bound, or its token revoked (which cuts the stream: `endOnRevocation`), it ends as it stands.
        return call.broker.stopping.aborted ? lateRpcError(call, stoppedWhileWaiting(taskId), taskId) : false;
      } catch (error) {
        return lateRpcError(call, error, taskId);
      }
    }, firstRead)));
}

/**
 * `answer()` (a blocking call's wait, a stream) while it holds one of the places of the task of `envelope`
 * (`taskFollowerPlaces`), from now until the answer or its stream ends. Refused past them: no wait will end
 * `recorded`, the record of the wait made with the message, so it ends now.
 */
function followingTask(
  call: Call,
  envelope: Envelope,
  recorded: Promise<string | undefined> | undefined,
  answer: () => Promise<OutgoingResponse>,
): Promise<OutgoingResponse> {
  try {
    return call.options.taskFollowers.hold(taskIdOf(envelope), answer);
  } catch (error) {
    void call.broker.waitForReply(call.sender, envelope.id, 0, AbortSignal.abort(), recorded).catch(() => {});
    throw error;
  }
}

/** Withdraws a task's message while it is still in the inbox; once delivered, `-32002`. */
async function cancelTask(call: Call): Promise<Answer> {
  const { task, envelope } = await loadTask(call.broker, call.sender, call.agent, call.params.id);
  if (task.status.state === "TASK_STATE_SUBMITTED" && await withdrawUnlessLeased(call, envelope.id)) {
    call.options.changes.changed(envelope.id);
  }
  const now = (await loadTask(call.broker, call.sender, call.agent, call.params.id)).task;
  if (now.status.state !== "TASK_STATE_CANCELED") {
    throw new A2aError(
      A2A_ERROR.taskNotCancelable,
      `Task cannot be canceled: it is ${now.status.state}; only a message ${call.agent} has not received yet can be withdrawn`,
    );
  }
  return { result: shaped(call, now) };
}

/** Withdraws message `id`; while a reader leases the inbox, refused saying why (`inbox_leased`, with Retry-After). */
async function withdrawUnlessLeased(call: Call, id: number): Promise<boolean> {
  try {
    return await call.broker.tasks.withdraw(call.agent, id);
  } catch (error) {
    if (!(error instanceof InteropError && error.code === "inbox_leased")) throw error;
    throw new InteropError(
      "inbox_leased",
      `Task cannot be canceled now: ${call.agent} is reading its inbox and may have shown this message already; ` +
        `try again in ${error.retryAfter} s (if it was read by then, the task is no longer cancelable)`,
      { cause: error, retryAfter: error.retryAfter },
    );
  }
}

/** A task for the answer: its history cut to `historyLength` (0: none), in the version the method named. */
function shaped(call: Call, task: A2aTask): unknown {
  const cut = withHistory(task, call.params.historyLength);
  return call.version === "1.0" ? cut : toV03Task(cut);
}
