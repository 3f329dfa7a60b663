/** An A2A server's answer to SendMessage or GetTask, in either version's form, read as the task to follow and its answer. */
import { type A2aMessage, type A2aPart, FINAL_STATES, isObject, parsePart, type TaskState } from "./protocol.ts";
import { parseTaskState } from "./v03_shapes.ts";

/** States after which a task waits for nobody but its requester: its answer is published then. */
export function isSettled(state: TaskState): boolean {
  return FINAL_STATES.has(state) || state === "TASK_STATE_INPUT_REQUIRED" || state === "TASK_STATE_AUTH_REQUIRED";
}

/** A task or direct answer as the server reported it, in either version's form. */
export interface TaskView {
  /** Undefined for a direct message answer (no task to follow). */
  taskId: string | undefined;
  state: TaskState;
  answer: A2aMessage | undefined;
  /** Why the server no longer has the task: `state` is then listen's FAILED, not the server's (its turn may have run). */
  lost?: string;
}

/** Parts from an array in either version's form; parts that are not valid are left out. */
function partsFrom(value: unknown): A2aPart[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((part, index) => {
    try {
      return [parsePart(part, index)];
    } catch {
      return [];
    }
  });
}

/**
 * A SendMessage or GetTask result as a task view: v1.0 `{task}` / `{message}`, or v0.3's bare `Task` / `Message`
 * (Hermes answers `message/send` bare too). The answer is the task's artifacts, else its status message.
 */
export function parseSendResult(result: unknown): TaskView | undefined {
  if (!isObject(result)) return undefined;
  const task = isObject(result.task)
    ? result.task
    : result.kind === "task" || (isObject(result.status) && typeof result.id === "string")
    ? result
    : undefined;
  const message = isObject(result.message) ? result.message : result.kind === "message" ? result : undefined;
  if (task === undefined && message !== undefined) {
    const parts = partsFrom(message.parts);
    return {
      taskId: undefined,
      state: "TASK_STATE_COMPLETED",
      answer: {
        messageId: typeof message.messageId === "string" ? message.messageId : crypto.randomUUID(),
        role: "ROLE_AGENT",
        parts: parts.length > 0 ? parts : [{ text: "" }],
      },
    };
  }
  if (task === undefined || typeof task.id !== "string" || !isObject(task.status)) return undefined;
  const state = parseTaskState(task.status.state);
  if (state === undefined) return undefined;
  const artifacts = Array.isArray(task.artifacts) ? task.artifacts.filter(isObject) : [];
  const statusMessage = isObject(task.status.message) ? task.status.message : undefined;
  let parts = artifacts.flatMap((artifact) => partsFrom(artifact.parts));
  if (parts.length === 0 && statusMessage !== undefined) parts = partsFrom(statusMessage.parts);
  const messageId = typeof statusMessage?.messageId === "string" ? statusMessage.messageId : `${task.id}-answer`;
  return {
    taskId: task.id,
    state,
    answer: parts.length > 0 ? { messageId, role: "ROLE_AGENT", parts } : undefined,
  };
}
