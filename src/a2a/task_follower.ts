/**
 * How `listen --a2a` follows a task its receiver started until it settles: by the task's stream
 * (`SubscribeToTask`) while the server streams, else by polling `GetTask`.
 */
import { backoffDelay, type BackoffOptions } from "../client/backoff.ts";
import { sleep } from "../sleep.ts";
import { InteropError } from "../errors.ts";
import type { OutboundRecord } from "./outbound_state.ts";
import { A2A_ERROR, A2aError, type A2aMessage } from "./protocol.ts";
import { type A2aRpcClient, InDoubtError } from "./rpc_client.ts";
import { StreamedTask } from "./streamed_task.ts";
import { isSettled, parseSendResult, type TaskView } from "./task_view.ts";

/**
 * A task stream that says nothing for this long is closed and the task asked for with GetTask (then streamed
 * again): a connection can die unnoticed, and servers send no heartbeat.
 */
const STREAM_QUIET_MS = 60_000;

/** Polls start quickly (most answers take seconds) and settle at a pace OpenClaw's 30 requests a minute allow. */
const POLL_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 15_000 };

export interface TaskFollowerOptions {
  rpc: A2aRpcClient;
  log: { info(message: string): void; warn(message: string): void; debug(message: string): void };
  shutdown: AbortSignal;
}

export class TaskFollower {
  #options: TaskFollowerOptions;
  /** Whether the server streams tasks, as its answers to SubscribeToTask told (asked again after a restart). */
  #streaming: "unknown" | "yes" | "no" = "unknown";

  constructor(options: TaskFollowerOptions) {
    this.#options = options;
  }

  /**
   * Follows the task to a settled state: by its stream where the server streams, else by GetTask with backoff.
   * Undefined when the shutdown ended it first. A task the server lost (or answers for wrongly) settles as failed.
   */
  async settle(record: OutboundRecord, first: TaskView | undefined): Promise<TaskView | undefined> {
    const { rpc, shutdown, log } = this.#options;
    let view = first;
    for (let attempt = 0; view === undefined || (view.taskId !== undefined && !isSettled(view.state)); attempt++) {
      if (this.#streaming !== "no") {
        const streamed = await this.#stream(record);
        if (shutdown.aborted) return undefined;
        if (streamed !== undefined && isSettled(streamed.state)) {
          view = streamed;
          break;
        }
      }
      if (view !== undefined || attempt > 0) {
        await sleep(backoffDelay(attempt, POLL_BACKOFF), shutdown);
      }
      if (shutdown.aborted) return undefined;
      try {
        view = parseSendResult(await rpc.call("GetTask", () => ({ id: record.taskId }), shutdown));
        if (view === undefined) throw new InteropError("rejected", `GetTask to ${rpc.url} answered with no task`);
        // Another task's answer is another asker's: it must not go to this one.
        if (view.taskId !== undefined && view.taskId !== record.taskId) {
          throw new InteropError("rejected", `GetTask to ${rpc.url} for task ${record.taskId} answered task ${view.taskId}`);
        }
      } catch (error) {
        if (
          error instanceof A2aError ||
          (error instanceof InteropError && !(error instanceof InDoubtError) && error.code === "rejected")
        ) {
          // -32001: the server forgot the task (OpenClaw keeps tasks in memory: a gateway restart drops them all).
          // Its agent may have acted on it all the same: OpenClaw 2026.9 resumes a turn a kill cut once it restarts,
          // and sends what it says to its A2A peer, not as this task's answer (red team 58). The asker is told the
          // task failed, and that it may have run, rather than left waiting; sending again could run a turn twice.
          const lost = error instanceof A2aError && error.code === A2A_ERROR.taskNotFound;
          const why = lost ? `${rpc.url} no longer knows task ${record.taskId} (restarted?)` : (error as Error).message;
          log.warn(`message ${record.id}: ${why}; answering the sender that the task failed`);
          view = {
            taskId: record.taskId,
            state: "TASK_STATE_FAILED",
            lost: why,
            answer: textAnswer(record, `The receiver lost this task: ${why}. Its agent may have acted on it all the same: check with it before sending it again`),
          };
          break;
        }
        log.debug(`GetTask for message ${record.id} failed: ${(error as Error).message}; asking again`);
        view = undefined;
      }
    }
    return view;
  }


  /**
   * Follows the task by its stream until it settles; undefined (or the task as it stood) when the stream ended
   * first, failed, or was refused, and GetTask takes over. A server that refuses the method (`-32601`: Hermes) or,
   * before any stream worked, the operation (`-32004`: OpenClaw, a server whose card says no streaming) is
   * followed by GetTask for good; after a stream worked, `-32004` is a task that ended already (the SDK's answer).
   */
  async #stream(record: OutboundRecord): Promise<TaskView | undefined> {
    const { rpc, shutdown, log } = this.#options;
    const task = new StreamedTask(record.taskId!);
    let view: TaskView | undefined;
    try {
      for await (const event of rpc.stream("SubscribeToTask", () => ({ id: record.taskId }), STREAM_QUIET_MS, shutdown)) {
        this.#streaming = "yes";
        view = task.apply(event);
        if (view !== undefined && isSettled(view.state)) return view;
      }
    } catch (error) {
      const refused = error instanceof A2aError && (error.code === A2A_ERROR.methodNotFound ||
        (error.code === A2A_ERROR.unsupportedOperation && this.#streaming === "unknown"));
      if (refused && this.#streaming !== "no") {
        log.info(`${rpc.url} does not stream tasks (${(error as Error).message}); following them with GetTask`);
        this.#streaming = "no";
      } else if (!refused) {
        log.debug(`following the task of message ${record.id} by stream failed: ${(error as Error).message}; asking with GetTask`);
      }
    }
    return view;
  }
}

/** The answer interop writes for a task whose receiver gave none, in the task's context. */
export function textAnswer(record: OutboundRecord, text: string): A2aMessage {
  return {
    messageId: `${record.messageId}-answer`,
    role: "ROLE_AGENT",
    parts: [{ text }],
    contextId: record.contextId,
  };
}
