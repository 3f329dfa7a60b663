/**
 * ntfy-compatible topics under `/ntfy`: a topic is an agent's inbox, so ntfy clients (Hermes's bundled ntfy
 * adapter among them) publish and subscribe with no code. Unlike ntfy, a subscriber that reconnects without
 * `since=` gets everything still pending for it, once.
 */
import { authorize, type Caller } from "../auth/authenticator.ts";
import type { Broker } from "../broker/broker.ts";
import type { StreamStart } from "../broker/stream_start.ts";
import type { StreamFormat } from "../broker/stream_format.ts";
import { InteropError } from "../errors.ts";
import { type AgentName, type Envelope, messageKey, type Payload, parseAgentName, payloadText, refuseUnkeptJson } from "../message.ts";
import type { IncomingRequest, OutgoingResponse } from "../runtime/types.ts";
import { leaving, settling, untilSettled } from "./client_settle.ts";
import { errorResponse } from "./error_response.ts";
import { headerText } from "./header_text.ts";
import { parseIdempotencyKey } from "./query_params.ts";
import { heldAnswer, jsonResponse, NO_SNIFF, streamResponse } from "./responses.ts";
import { encodeEvent } from "./sse.ts";

export const NTFY_PREFIX = "/ntfy";
/** The sender, without tokens, when the URL has no `@agent` segment and no `X-Interop-From` header. */
export const DEFAULT_NTFY_SENDER = "ntfy";
/** ntfy answers `poll=1` with at most this many messages (fewer past the broker's answer budget); the rest come on the next poll. */
const POLL_LIMIT = 1000;
/** `since=` numbers from here up are Unix times in seconds; below, message ids. */
const UNIX_TIME_FLOOR = 1_000_000_000;

const PRIORITIES: Record<string, number> = { min: 1, low: 2, default: 3, high: 4, max: 5, urgent: 5 };

/** A parsed `/ntfy/[@sender/]topic[/format]` path. */
interface NtfyPath {
  sender: string | undefined;
  topic: string | undefined;
  format: string | undefined;
}

/** Whether a path is ntfy's: `/ntfy` or under it. */
export function isNtfyPath(pathname: string): boolean {
  return pathname === NTFY_PREFIX || pathname.startsWith(`${NTFY_PREFIX}/`);
}

/**
 * Whom an ntfy request speaks for without tokens, which is whose share it takes: a publish's sender, else the
 * agent whose inbox it reads (never the `@sender` segment, which a reader may vary freely).
 */
export function ntfyRequester(request: IncomingRequest): string {
  const path = parsePath(request.url.pathname);
  return isPublish(request) ? namedSender(request, path) ?? DEFAULT_NTFY_SENDER : path.topic ?? "";
}

/** Handles a request whose path starts with `/ntfy`. */
export async function handleNtfy(
  broker: Broker,
  request: IncomingRequest,
  caller: Caller,
  maxBodyBytes: number,
): Promise<OutgoingResponse> {
  const path = parsePath(request.url.pathname);
  if (isPublish(request) && path.format === undefined) return await publish(broker, request, caller, path, maxBodyBytes);
  if (request.method === "GET" && path.topic !== undefined && path.format !== undefined) {
    const topic = parseAgentName(path.topic, "topic");
    authorize(caller, topic, "read the inbox of");
    return await subscribe(broker, request, topic, path.format);
  }
  // A method the path does not take (a monitor's HEAD, a DELETE): 405 naming the ones it does, as every route answers.
  const allow = path.format === undefined ? "POST, PUT" : "GET";
  const error = new InteropError(
    "method_not_allowed",
    `Method ${request.method} not allowed on ${request.url.pathname}: use ${allow}; ntfy topics are GET ${NTFY_PREFIX}/TOPIC/json|sse|raw and POST ${NTFY_PREFIX}/TOPIC`,
  );
  return errorResponse(error, { allow });
}

function isPublish(request: IncomingRequest): boolean {
  return request.method === "POST" || request.method === "PUT";
}

/** The sender a publish names: its `@sender` path segment, else its X-Interop-From header. */
function namedSender(request: IncomingRequest, path: NtfyPath): string | undefined {
  return path.sender ?? request.header("x-interop-from") ?? undefined;
}

function parsePath(pathname: string): NtfyPath {
  const segments = pathname.slice(NTFY_PREFIX.length).split("/").filter((segment) => segment !== "");
  const sender = segments[0]?.startsWith("@") ? segments.shift()!.slice(1) : undefined;
  return { sender, topic: segments[0], format: segments[1] };
}

async function publish(
  broker: Broker,
  request: IncomingRequest,
  caller: Caller,
  path: NtfyPath,
  maxBodyBytes: number,
): Promise<OutgoingResponse> {
  // With tokens on, the token says who publishes (ntfy clients send NTFY_TOKEN as Bearer); an operator's token
  // publishes as the sender it names, as `/broadcast?from=` does (it was stored as from the operator's own name).
  const named = namedSender(request, path);
  const from = named !== undefined
    ? parseAgentName(named, "sender")
    : caller === "anyone"
    ? parseAgentName(DEFAULT_NTFY_SENDER, "sender")
    : caller.agent;
  if (named !== undefined) authorize(caller, from, "publish as");
  const text = await request.text(maxBodyBytes);
  // At the root, ntfy takes a JSON object naming the topic; under a topic, the body is the message text.
  const fields = path.topic === undefined ? jsonPublish(text) : { topic: path.topic, ...headerFields(request), message: text };
  if (fields.message.trim() === "") throw new InteropError("invalid_body", "Empty message: the body is the message text");
  const to = parseAgentName(fields.topic, "topic");
  const payload: Payload = { text: fields.message };
  if (fields.title !== undefined) payload.title = fields.title;
  if (fields.tags !== undefined) payload.tags = fields.tags;
  if (fields.priority !== undefined) payload.priority = fields.priority;
  // ntfy has no key of its own; an interop-aware client's retry under one finds the first message, as on /broadcast.
  const { envelopes: [stored] } = await broker.publish(from, to, payload, { idempotencyKey: parseIdempotencyKey(request) });
  return jsonResponse(200, ntfyMessage(stored));
}

interface PublishFields {
  topic: string;
  message: string;
  title?: string;
  tags?: string[];
  priority?: number;
}

/** An ntfy parameter as ntfy reads one: the first of `names` given as a header, or else as a query parameter. */
function ntfyParam(request: IncomingRequest, ...names: string[]): string | undefined {
  for (const name of names) {
    const header = request.header(name);
    const value = header === null ? request.url.searchParams.get(name) : headerText(header);
    if (value !== null && value !== "") return value;
  }
  return undefined;
}

function headerFields(request: IncomingRequest): Omit<PublishFields, "topic" | "message"> {
  const pick = (...names: string[]) => ntfyParam(request, ...names);
  if (pick("x-delay", "delay", "x-at", "at", "x-in", "in") !== undefined) throw scheduledDelivery("invalid_query");
  const tags = pick("x-tags", "tags", "tag", "ta");
  const priority = pick("x-priority", "priority", "prio", "p");
  return {
    title: pick("x-title", "title", "ti", "t"),
    tags: tags === undefined ? undefined : splitTags(tags),
    priority: priority === undefined ? undefined : parsePriority(priority),
  };
}

function jsonPublish(text: string): PublishFields {
  // Before JSON.parse (slow on deep brackets: see payloadFromText); its tags are turned to strings, which recurses as deep as they nest.
  refuseUnkeptJson(text);
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new InteropError("invalid_json", `Invalid JSON body: ${(cause as Error).message}; publish text to ${NTFY_PREFIX}/TOPIC`, {
      cause,
    });
  }
  if (typeof value?.topic !== "string") {
    throw new InteropError("invalid_body", `Invalid JSON publish: "topic" must name the agent; or publish text to ${NTFY_PREFIX}/TOPIC`);
  }
  if (value.delay !== undefined && value.delay !== null && value.delay !== "") throw scheduledDelivery("invalid_body");
  return {
    topic: value.topic,
    message: jsonString(value, "message") ?? "",
    title: jsonString(value, "title"),
    tags: jsonTags(value.tags),
    priority: jsonPriority(value.priority),
  };
}

/** ntfy's scheduled delivery (`delay`, `at`, `in`): refused, not sent at once against what its publisher asked. */
function scheduledDelivery(code: "invalid_query" | "invalid_body"): InteropError {
  return new InteropError(code, "Scheduled delivery (delay, at, in) is not supported: the broker delivers at once; publish when the message is due");
}

/** A text field of ntfy's JSON publish (null: not given); another type is refused as ntfy refuses it, never dropped. */
function jsonString(value: Record<string, unknown>, field: "message" | "title"): string | undefined {
  const given = value[field];
  if (given === undefined || given === null || typeof given === "string") return given ?? undefined;
  throw new InteropError("invalid_body", `Invalid JSON publish: "${field}" must be a string, not ${describeJson(given)}`);
}

/** Tags: an array of strings as ntfy takes them, or one comma-separated string as its X-Tags header takes them. */
function jsonTags(tags: unknown): string[] | undefined {
  if (tags === undefined || tags === null) return undefined;
  if (typeof tags === "string") return splitTags(tags);
  if (Array.isArray(tags) && tags.every((tag) => typeof tag === "string")) return splitTags(tags.join(","));
  throw new InteropError("invalid_body", `Invalid JSON publish: "tags" must be an array of strings, not ${describeJson(tags)}`);
}

/** A number 1-5, as ntfy's JSON publish takes it (0, as there, and null: the default); not a string or a fraction. */
function jsonPriority(priority: unknown): number | undefined {
  if (priority === undefined || priority === null || priority === 0) return undefined;
  if (typeof priority === "number" && Number.isInteger(priority) && priority >= 1 && priority <= 5) return priority;
  const given = typeof priority === "number" ? String(priority) : Array.isArray(priority) ? "an array" : describeJson(priority);
  throw new InteropError("invalid_body", `Invalid JSON publish: "priority" must be a number 1-5, not ${given}`);
}

function describeJson(value: unknown): string {
  if (Array.isArray(value)) return "an array holding other values";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function splitTags(text: string): string[] {
  return text.split(",").map((tag) => tag.trim()).filter((tag) => tag !== "");
}

/** A priority header as ntfy reads it: 1-5 or a name (not "0x3" or "3.0", which `Number` would read as 3). */
function parsePriority(value: string): number {
  // Own keys only: "__proto__" or "constructor" would find the object's prototype's.
  const name = value.toLowerCase();
  const priority = Object.hasOwn(PRIORITIES, name) ? PRIORITIES[name] : /^[1-5]$/.test(value) ? Number(value) : undefined;
  if (priority === undefined) {
    throw new InteropError("invalid_query", `Invalid priority: ${JSON.stringify(value)}; use 1-5 or min, low, default, high, max`);
  }
  return priority;
}

async function subscribe(broker: Broker, request: IncomingRequest, agent: AgentName, format: string): Promise<OutgoingResponse> {
  const streamFormat = NTFY_FORMATS[format];
  if (streamFormat === undefined) {
    throw new InteropError("not_found", `Unknown ntfy format: ${JSON.stringify(format)}; use json, sse or raw`);
  }
  // Headers or query parameters, with ntfy's short names: read as a stream, `X-Poll: 1` (or `po=1`, `poll=yes`) left
  // its client waiting for the stream's end, and `X-Since` was ignored.
  const start = parseSince(ntfyParam(request, "x-since", "since", "si"));
  const poll = ntfyParam(request, "x-poll", "poll", "po");
  // As ntfy reads a flag: 1, yes or true.
  if (poll !== undefined && /^(1|yes|true)$/i.test(poll)) {
    // Built before the messages count as delivered, within the broker's budget, as /poll's answer.
    const answer = broker.answer((envelope) => streamFormat.format.message(envelope), agent);
    const settled = settling(request.clientGone());
    return await heldAnswer(answer, async () => {
      await untilSettled(settled);
      const messages = await broker.replay(agent, start, POLL_LIMIT, answer, leaving(request.clientGone()));
      return {
        status: 200,
        headers: { "content-type": streamFormat.contentType, "cache-control": "no-store", ...NO_SNIFF, ...answer.headers() },
        body: await answer.body(messages, "", "", ""),
      };
    });
  }
  const { open } = await broker.prepareStream(agent, start, streamFormat.format);
  return streamResponse(streamFormat.contentType, open);
}

/** ntfy's `since=`: a message id, a Unix time, a duration back from now (`10m`), or `all`. */
function parseSince(value: string | undefined): StreamStart {
  if (value === undefined) return { from: "cursor" };
  if (value === "all") return { from: "time", since: 0 };
  const duration = /^(\d+)(s|m|h|d)$/.exec(value);
  if (duration) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as "s" | "m" | "h" | "d"];
    return { from: "time", since: Date.now() - Number(duration[1]) * unit };
  }
  if (/^\d+$/.test(value)) {
    const number = Number(value);
    return number >= UNIX_TIME_FLOOR ? { from: "time", since: number * 1000 } : { from: "id", afterId: number, sentAs: "since=" };
  }
  const id = NTFY_ID.exec(value);
  if (id) return { from: "id", afterId: Number(id[1]), key: value, sentAs: "since=" };
  throw new InteropError("invalid_query", `Invalid since: ${JSON.stringify(value)}; use a message id, a Unix time, a duration like 10m, or all`);
}

/** An ntfy id: the message id, then its creation time in ms (base 36). */
const NTFY_ID = /^(\d+)-[0-9a-z]+$/;

/**
 * Tags ntfy clients put on what they publish to know their own messages when they come back on a shared topic, and
 * drop: Hermes's adapter (`hermes-agent`). Here a topic is one agent's inbox and its own publishes go to others, so
 * a message from another agent with such a tag is never an echo; shown with it, one Hermes dropped every message
 * another Hermes sent it (two gateways on one broker: all lost, counted delivered).
 */
const ECHO_TAGS = new Set(["hermes-agent"]);

/** The ntfy JSON object for a message. */
function ntfyMessage(envelope: Envelope): Record<string, unknown> {
  const { payload } = envelope;
  const message: Record<string, unknown> = {
    id: messageKey(envelope),
    time: Math.floor(Date.parse(envelope.timestamp) / 1000),
    event: "message",
    topic: envelope.to,
    message: payloadText(payload),
  };
  if (typeof payload.title === "string") message.title = payload.title;
  if (Array.isArray(payload.tags)) {
    const tags = envelope.from === envelope.to ? payload.tags : payload.tags.filter((tag) => !ECHO_TAGS.has(tag));
    if (tags.length > 0) message.tags = tags;
  }
  if (typeof payload.priority === "number") message.priority = payload.priority;
  return message;
}

function ntfyEvent(agent: AgentName, event: "open" | "keepalive"): Record<string, unknown> {
  return { id: `${event}-${Date.now()}`, time: Math.floor(Date.now() / 1000), event, topic: agent };
}

const NTFY_FORMATS: Record<string, { contentType: string; format: StreamFormat }> = {
  json: {
    contentType: "application/x-ndjson; charset=utf-8",
    format: {
      opening: (agent) => JSON.stringify(ntfyEvent(agent, "open")) + "\n",
      message: (envelope) => JSON.stringify(ntfyMessage(envelope)) + "\n",
      keepalive: (agent) => JSON.stringify(ntfyEvent(agent, "keepalive")) + "\n",
      ending: () => "",
    },
  },
  sse: {
    contentType: "text/event-stream; charset=utf-8",
    format: {
      opening: (agent) => encodeEvent({ event: "open", data: JSON.stringify(ntfyEvent(agent, "open")) }),
      message: (envelope) => encodeEvent({ id: messageKey(envelope), data: JSON.stringify(ntfyMessage(envelope)) }),
      keepalive: (agent) => encodeEvent({ event: "keepalive", data: JSON.stringify(ntfyEvent(agent, "keepalive")) }),
      ending: () => "",
    },
  },
  raw: {
    contentType: "text/plain; charset=utf-8",
    format: {
      opening: () => "",
      // One line per message: line breaks inside the text become spaces.
      message: (envelope) => payloadText(envelope.payload).replace(/\r\n|\r|\n/g, " ") + "\n",
      keepalive: () => "\n",
      ending: () => "",
    },
  },
};
