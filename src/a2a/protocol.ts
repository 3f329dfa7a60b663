/**
 * The Agent2Agent protocol's JSON-RPC wire forms as interop reads them: v1.0 (spec `a2a.proto`, JSON names) and
 * v0.3 (the `kind`-tagged objects and slash method names older clients send), checked into the v1.0 types. Shared by
 * the hub's inbound endpoint (`/a2a/<agent>`) and the outbound listener (`listen --a2a`). No I/O. What interop writes
 * in v0.3 form is in v03_shapes.ts; how a message maps to an interop payload, in interop_payload.ts.
 */

export type ProtocolVersion = "1.0" | "0.3";

/** The spec's JSON-RPC error codes (A2A §8, JSON-RPC 2.0 §5.1). */
export const A2A_ERROR = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  taskNotFound: -32001,
  taskNotCancelable: -32002,
  pushNotificationNotSupported: -32003,
  unsupportedOperation: -32004,
  contentTypeNotSupported: -32005,
  invalidAgentResponse: -32006,
  extendedCardNotConfigured: -32007,
  versionNotSupported: -32009,
} as const;

/** A JSON-RPC error to answer with (or one a peer answered with). */
export class A2aError extends Error {
  readonly code: number;
  readonly data?: unknown;

  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "A2aError";
    this.code = code;
    this.data = data;
  }
}

/** The operations, by their v1.0 names. */
export type A2aMethod =
  | "SendMessage"
  | "SendStreamingMessage"
  | "GetTask"
  | "ListTasks"
  | "CancelTask"
  | "SubscribeToTask"
  | "GetExtendedAgentCard"
  | "CreateTaskPushNotificationConfig"
  | "GetTaskPushNotificationConfig"
  | "ListTaskPushNotificationConfigs"
  | "DeleteTaskPushNotificationConfig";

/** v0.3's slash names for the same operations. */
const V03_METHODS: Record<string, A2aMethod> = {
  "message/send": "SendMessage",
  "message/stream": "SendStreamingMessage",
  "tasks/get": "GetTask",
  "tasks/list": "ListTasks",
  "tasks/cancel": "CancelTask",
  "tasks/resubscribe": "SubscribeToTask",
  "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
  "tasks/pushNotificationConfig/set": "CreateTaskPushNotificationConfig",
  "tasks/pushNotificationConfig/get": "GetTaskPushNotificationConfig",
  "tasks/pushNotificationConfig/list": "ListTaskPushNotificationConfigs",
  "tasks/pushNotificationConfig/delete": "DeleteTaskPushNotificationConfig",
};

const V10_METHODS = new Set<string>(Object.values(V03_METHODS));

/** The v0.3 name of an operation (the fallback a client tries after `-32601`). */
export function v03MethodName(method: A2aMethod): string {
  return Object.entries(V03_METHODS).find(([, name]) => name === method)![0];
}

/**
 * The operation a JSON-RPC `method` names and the protocol version its answer is shaped for. The method decides,
 * not the `A2A-Version` header alone: OpenClaw sends v1.0 names with no header, and a v0.3 client sends slash names
 * with none either. A header naming a version interop does not speak is refused.
 */
export function resolveMethod(method: unknown, versionHeader: string | null): {
  method: A2aMethod;
  version: ProtocolVersion;
} {
  const header = (versionHeader ?? "").trim();
  if (header !== "" && !/^(1\.0|0\.3)(\.\d+)?$/.test(header)) {
    throw new A2aError(A2A_ERROR.versionNotSupported, `A2A-Version ${header} is not supported: use 1.0 or 0.3`);
  }
  if (typeof method === "string" && V10_METHODS.has(method)) return { method: method as A2aMethod, version: "1.0" };
  // Own keys only: `in` would take Object.prototype's names ("toString") for methods.
  if (typeof method === "string" && Object.hasOwn(V03_METHODS, method)) return { method: V03_METHODS[method], version: "0.3" };
  throw new A2aError(A2A_ERROR.methodNotFound, `Method not found: ${JSON.stringify(method)}`);
}

/** A message part in v1.0 JSON form: exactly one of `text`, `data`, `url`, `raw`. */
export interface A2aPart {
  text?: string;
  data?: unknown;
  url?: string;
  /** Base64 bytes. */
  raw?: string;
  mediaType?: string;
  filename?: string;
  metadata?: Record<string, unknown>;
}

export type A2aRole = "ROLE_USER" | "ROLE_AGENT";

export interface A2aMessage {
  messageId: string;
  role: A2aRole;
  parts: A2aPart[];
  contextId?: string;
  taskId?: string;
  metadata?: Record<string, unknown>;
}

export type TaskState =
  | "TASK_STATE_SUBMITTED"
  | "TASK_STATE_WORKING"
  | "TASK_STATE_COMPLETED"
  | "TASK_STATE_FAILED"
  | "TASK_STATE_CANCELED"
  | "TASK_STATE_INPUT_REQUIRED"
  | "TASK_STATE_REJECTED"
  | "TASK_STATE_AUTH_REQUIRED";

/** States after which a task never changes. */
export const FINAL_STATES: ReadonlySet<TaskState> = new Set([
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
]);

export interface A2aArtifact {
  artifactId: string;
  name?: string;
  parts: A2aPart[];
}

export interface A2aTask {
  id: string;
  contextId: string;
  status: { state: TaskState; message?: A2aMessage; timestamp: string };
  artifacts?: A2aArtifact[];
  history?: A2aMessage[];
  metadata?: Record<string, unknown>;
}

/** `contextId`s interop accepts and makes: what OpenClaw accepts too, so one passes through both. */
const CONTEXT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_MESSAGE_ID_LENGTH = 256;

/** Whether a value is a `contextId` interop accepts (and OpenClaw's channel too). */
export function isContextId(value: unknown): value is string {
  return typeof value === "string" && CONTEXT_ID.test(value);
}

/** Whether a JSON value is an object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): A2aError {
  return new A2aError(A2A_ERROR.invalidParams, message);
}

/** One part from either version's form (v0.3: `{kind: "text"|"data"|"file", …}`), in v1.0 form. */
export function parsePart(value: unknown, index: number): A2aPart {
  if (!isObject(value)) throw invalid(`message.parts[${index}] must be an object`);
  const common: A2aPart = {};
  if (isObject(value.metadata)) common.metadata = value.metadata;
  if (typeof value.kind === "string") {
    if (value.kind === "text" && typeof value.text === "string") return { ...common, text: value.text };
    if (value.kind === "data" && "data" in value) return { ...common, data: value.data };
    if (value.kind === "file" && isObject(value.file)) {
      const file = value.file;
      const described = {
        ...common,
        ...(typeof file.mimeType === "string" ? { mediaType: file.mimeType } : {}),
        ...(typeof file.name === "string" ? { filename: file.name } : {}),
      };
      if (typeof file.uri === "string") return { ...described, url: file.uri };
      if (typeof file.bytes === "string") return { ...described, raw: file.bytes };
    }
    throw invalid(`message.parts[${index}] is not a valid ${JSON.stringify(value.kind)} part`);
  }
  const described = {
    ...common,
    ...(typeof value.mediaType === "string" ? { mediaType: value.mediaType } : {}),
    ...(typeof value.filename === "string" ? { filename: value.filename } : {}),
  };
  if (typeof value.text === "string") return { ...described, text: value.text };
  if ("data" in value) return { ...described, data: value.data };
  if (typeof value.url === "string") return { ...described, url: value.url };
  if (typeof value.raw === "string") return { ...described, raw: value.raw };
  throw invalid(`message.parts[${index}] needs one of text, data, url or raw`);
}

/** A `params.message` from either version, checked and in v1.0 form; `-32602` naming the first bad field. */
export function parseMessage(value: unknown): A2aMessage {
  if (!isObject(value)) throw invalid("params.message must be an object");
  const { messageId, contextId, taskId, parts } = value;
  if (typeof messageId !== "string" || messageId === "" || messageId.length > MAX_MESSAGE_ID_LENGTH) {
    throw invalid(`message.messageId must be a string of 1-${MAX_MESSAGE_ID_LENGTH} characters`);
  }
  // It keys the message in the store, whose PostgreSQL text cannot hold a NUL (the send failed 503 for ever there), and
  // where a lone surrogate becomes U+FFFD on both stores: "T-\ud800" and "T-\udbff" were one message, the second lost.
  if (messageId.includes("\0") || /\p{Cs}/u.test(messageId)) {
    throw invalid("message.messageId must be text without NUL (U+0000) or a lone surrogate (\\ud800-\\udfff)");
  }
  if (contextId !== undefined && contextId !== "" && !isContextId(contextId)) {
    throw invalid("message.contextId must be 1-128 of A-Z a-z 0-9 . _ : -");
  }
  if (!Array.isArray(parts) || parts.length === 0) throw invalid("message.parts must be a non-empty array");
  const role: A2aRole = value.role === "agent" || value.role === "ROLE_AGENT" ? "ROLE_AGENT" : "ROLE_USER";
  return {
    messageId,
    role,
    parts: parts.map(parsePart),
    ...(typeof contextId === "string" && contextId !== "" ? { contextId } : {}),
    ...(typeof taskId === "string" && taskId !== "" ? { taskId } : {}),
    ...(isObject(value.metadata) ? { metadata: value.metadata } : {}),
  };
}
