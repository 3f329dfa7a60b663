/**
 * A task as Server-Sent Events (`SendStreamingMessage`, `SubscribeToTask`): the task, then each change of its
 * status as a JSON-RPC response, ending once it settles. A client that hangs up detaches everything at once.
 */
import type { Broker } from "../broker/broker.ts";
import { encodeComment, encodeEvent } from "../http/sse.ts";
import { streamResponse } from "../http/responses.ts";
import type { Envelope } from "../message.ts";
import type { OutgoingResponse } from "../runtime/types.ts";
import type { A2aTask, ProtocolVersion } from "./protocol.ts";
import { toV03Task } from "./v03_shapes.ts";
import { isSettled, taskOfMessage } from "./tasks.ts";
import type { TaskChanges } from "./task_watch.ts";

const KEEPALIVE_MS = 15_000;

/**
 * Streams the task of `envelope` to the client of JSON-RPC request `id`, shaped for `version`; `opened` is told
 * when the stream starts, with the signal that aborts when it ends.
 */
export function taskStream(
  broker: Broker,
  changes: TaskChanges,
  envelope: Envelope,
  rpcId: string | number,
  version: ProtocolVersion,
  opened: (closed: AbortSignal) => void,
): OutgoingResponse {
  return streamResponse("text/event-stream; charset=utf-8", (sink) => {
    opened(sink.closed);
    const send = (result: unknown) => sink.write(encodeEvent({ data: JSON.stringify({ jsonrpc: "2.0", id: rpcId, result }) }));
    let last: A2aTask | undefined;
    // One reload at a time, in order: a change seen while one runs is read by the next.
    let reloading = Promise.resolve();
    const reload = () => {
      reloading = reloading.then(async () => {
        if (sink.closed.aborted) return;
        const task = await taskOfMessage(broker, envelope);
        if (sink.closed.aborted) return;
        if (last === undefined) send(version === "1.0" ? { task } : toV03Task(task));
        else if (task.status.state !== last.status.state) for (const event of updates(task, version)) send(event);
        last = task;
        if (isSettled(task.status.state)) sink.close();
      }).catch(() => {
        // The store failed: end the stream; the client can ask GetTask or subscribe again.
        sink.close();
      });
    };
    const unwatch = changes.watch(broker, envelope, reload);
    // Each keepalive also re-reads the task: a change made through another broker on a shared PostgreSQL is not
    // heard here, so such a stream is at most one keepalive behind.
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
