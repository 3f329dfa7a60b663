/** A2A v0.3's forms of tasks, messages, parts and states (`kind`-tagged, lower-case states), from the v1.0 ones. */
import type { A2aMessage, A2aPart, A2aTask, TaskState } from "./protocol.ts";

const V03_STATE: Record<TaskState, string> = {
  TASK_STATE_SUBMITTED: "submitted",
  TASK_STATE_WORKING: "working",
  TASK_STATE_COMPLETED: "completed",
  TASK_STATE_FAILED: "failed",
  TASK_STATE_CANCELED: "canceled",
  TASK_STATE_INPUT_REQUIRED: "input-required",
  TASK_STATE_REJECTED: "rejected",
  TASK_STATE_AUTH_REQUIRED: "auth-required",
};

/** A task state from either version's form, or undefined when it is none. */
export function parseTaskState(value: unknown): TaskState | undefined {
  if (typeof value !== "string") return undefined;
  if (Object.hasOwn(V03_STATE, value)) return value as TaskState;
  return (Object.entries(V03_STATE).find(([, v03]) => v03 === value)?.[0]) as TaskState | undefined;
}

function v03Part(part: A2aPart): Record<string, unknown> {
  const metadata = part.metadata === undefined ? {} : { metadata: part.metadata };
  if (part.text !== undefined) return { kind: "text", text: part.text, ...metadata };
  if (part.url !== undefined || part.raw !== undefined) {
    const file = {
      ...(part.url !== undefined ? { uri: part.url } : { bytes: part.raw }),
      ...(part.mediaType !== undefined ? { mimeType: part.mediaType } : {}),
      ...(part.filename !== undefined ? { name: part.filename } : {}),
    };
    return { kind: "file", file, ...metadata };
  }
  return { kind: "data", data: part.data, ...metadata };
}

/** A message in v0.3 form. */
export function toV03Message(message: A2aMessage): Record<string, unknown> {
  return {
    kind: "message",
    messageId: message.messageId,
    role: message.role === "ROLE_AGENT" ? "agent" : "user",
    parts: message.parts.map(v03Part),
    ...(message.contextId !== undefined ? { contextId: message.contextId } : {}),
    ...(message.taskId !== undefined ? { taskId: message.taskId } : {}),
    ...(message.metadata !== undefined ? { metadata: message.metadata } : {}),
  };
}

/** A task in v0.3 form. */
export function toV03Task(task: A2aTask): Record<string, unknown> {
  return {
    kind: "task",
    id: task.id,
    contextId: task.contextId,
    status: {
      state: V03_STATE[task.status.state],
      timestamp: task.status.timestamp,
      ...(task.status.message !== undefined ? { message: toV03Message(task.status.message) } : {}),
    },
    ...(task.artifacts !== undefined
      ? { artifacts: task.artifacts.map((artifact) => ({ ...artifact, parts: artifact.parts.map(v03Part) })) }
      : {}),
    ...(task.history !== undefined ? { history: task.history.map(toV03Message) } : {}),
    ...(task.metadata !== undefined ? { metadata: task.metadata } : {}),
  };
}
