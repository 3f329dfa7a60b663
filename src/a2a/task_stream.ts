/**
 * A task as Server-Sent Events (`SendStreamingMessage`, `SubscribeToTask`): the task, then each change of its
 * status as a JSON-RPC response, ending once it settles. A client that hangs up detaches everything at once.
 */
import type { Broker } from "../broker/broker.ts";
import { isStorageUnavailable } from "../errors.ts";
import { encodeComment, encodeEvent } from "../http/sse.ts";
import { streamResponse } from "../http/responses.ts";
import type { Envelope } from "../message.ts";
import type { OutgoingResponse } from "../runtime/types.ts";
import { type A2aTask, A2aError, type ProtocolVersion } from "./protocol.ts";
import { rpcRefusal } from "./rpc_refusal.ts";
import { toV03Task } from "./v03_shapes.ts";
import { isSettled, taskOfMessage } from "./tasks.ts";
import type { TaskChanges } from "./task_watch.ts";

const KEEPALIVE_MS = 15_000;

/**
 * Streams the task of `envelope` to the client of JSON-RPC request `id`, shaped for `version`; `opened` is told
 * when the stream starts, with the signal that aborts when it ends, and returns what settles once the task has and
 * its reply is taken for the stream (`true`): only then does the stream write the settled task and end (ended
 * sooner, the reply it showed would also stay in the caller's inbox; its take stopped, never having written it, lost
 * it). What settles with a JSON-RPC error answer instead (the take refused) ends the stream with it; `false` ends it
 * as it stands (the reply, not taken, is the caller inbox's).
 * `firstRead` reads the task for the first event (a message just sent: `taskOfStored`, so that a store closed by the
 * broker's stopping still gives the client its task before the stream ends, not an empty stream).
 */
export function taskStream(
  broker: Broker,
  changes: TaskChanges,
  envelope: Envelope,
  rpcId: string | number,
  version: ProtocolVersion,
  opened: (closed: AbortSignal) => Promise<boolean | object>,
  firstRead: (broker: Broker, envelope: Envelope) => Promise<A2aTask> = taskOfMessage,
): OutgoingResponse {
  return streamResponse("text/event-stream; charset=utf-8", (sink) => {
    let taken = false;
    const send = (result: unknown) => sink.write(encodeEvent({ data: JSON.stringify({ jsonrpc: "2.0", id: rpcId, result }) }));
    let last: A2aTask | undefined;
    // One reload at a time, in order: a change seen while one runs is read by the next.
    let reloading = Promise.resolve();
    const reload = () => {
      reloading = reloading.then(async () => {
        if (sink.closed.aborted) return;
        const task = await (last === undefined ? firstRead : taskOfMessage)(broker, envelope);
        if (sink.closed.aborted || (isSettled(task.status.state) && !taken)) return;
        if (last === undefined) send(version === "1.0" ? { task } : toV03Task(task));
        else if (task.status.state !== last.status.state) for (const event of updates(task, version)) send(event);
        last = task;
        if (isSettled(task.status.state)) sink.close();
      }).catch((error) => {
        // PostgreSQL away: the stream stays open, as a message stream does, and reads again at the outage's end (the
        // broker's wake of every reader), a change or a keepalive. Ended, a client got no final event and no error.
        if (isStorageUnavailable(error)) return;
        // The task is gone (the operator removed its receiver, and its message with it): a last event says so, as a
        // blocking call's answer would, rather than an end the client cannot tell from a cut. The store failed (or
        // closed: the broker stopping): the stream ends; the client can ask GetTask or subscribe again.
        if (error instanceof A2aError) sink.write(encodeEvent({ data: JSON.stringify(rpcRefusal(rpcId, error)!.body) }));
        sink.close();
      });
    };
    const unwatch = changes.watch(broker, envelope, reload);
    void opened(sink.closed).then((end) => {
      if (end === true) {
        taken = true;
        reload();
        return;
      }
      if (end !== false) sink.write(encodeEvent({ data: JSON.stringify(end) }));
      sink.close();
    });
    // Each keepalive also re-reads the task: a backstop for a change the watch did not hear.
    const keepalive = setInterval(() => {
      sink.write(encodeComment("keepalive"));
      reload();
    }, KEEPALIVE_MS);
    sink.closed.addEventListener("abort", () => {
      clearInterval(keepalive);
      unwatch();
    }, { once: true });
    reload();
  });
}

/** The events for a task whose state changed: its artifact first (the reply), then its status. */
function updates(task: A2aTask, version: ProtocolVersion): unknown[] {
  const ids = { taskId: task.id, contextId: task.contextId };
  const artifact = task.artifacts?.[0];
  if (version === "1.0") {
    return [
      ...(artifact === undefined ? [] : [{ artifactUpdate: { ...ids, artifact, lastChunk: true } }]),
      { statusUpdate: { ...ids, status: task.status } },
    ];
  }
  const v03 = toV03Task(task) as { status: unknown; artifacts?: unknown[] };
  return [
    ...(artifact === undefined ? [] : [{ kind: "artifact-update", ...ids, artifact: v03.artifacts![0], lastChunk: true }]),
    { kind: "status-update", ...ids, status: v03.status, final: isSettled(task.status.state) },
  ];
}
