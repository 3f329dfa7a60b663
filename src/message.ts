/** The typed message module shared by the broker and every client: agent names, envelopes, payloads, wire form. No I/O. */
import { InteropError } from "./errors.ts";

/** An agent's name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit. */
export type AgentName = string & { readonly __agentName: true };

/** Whatever JSON object the publisher posted; delivered with every field intact. */
export type Payload = Record<string, unknown>;

/** Where a reply sits in a conversation. */
export interface Thread {
  /** The id of the message this one answers. */
  replyTo: number;
  /** The id of the message that started the conversation. */
  conversation: number;
  /** How many replies deep this one is (1 for a direct answer); the broker caps it to stop reply loops. */
  hops: number;
  /**
   * On an answer to its recipient's own question: the A2A `contextId` the recipient sent that question with, set by
   * the broker (never by the replier), so the recipient's A2A server gets the answer in the conversation it started.
   */
  context?: string;
}

/** A stored message as the broker and clients see it. */
export interface Envelope {
  /** Monotonic per inbox (and across the broker); the SSE `id:`. */
  id: number;
  from: AgentName;
  to: AgentName;
  /** When the broker committed it, ISO 8601 UTC. */
  timestamp: string;
  payload: Payload;
  /** Set on replies. */
  thread?: Thread;
}

/** What the broker stores a message's metadata under in the delivered object. */
export const METADATA_FIELD = "interop";

/** The delivered JSON: the posted fields as they were, plus the metadata under `interop`. */
export type WireMessage = Payload & {
  interop: WireMetadata;
};

export interface WireMetadata {
  id: number;
  from: string;
  to: string;
  timestamp: string;
  /** Present on replies. */
  reply_to?: number;
  conversation?: number;
  hops?: number;
  /** See `Thread.context`. */
  context?: string;
}

export const MAX_AGENT_NAME_LENGTH = 64;
/** The default cap on a published body, in bytes (1 MiB). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/**
 * The highest cap `serve --max-body-bytes` takes (64 MiB): JSON escapes a byte to at most 6 characters (U+0001 as
 * `\u0001`), so any message accepted encodes within the longest string V8 builds (2^29 - 24 characters) and can be
 * delivered (see `DEFAULT_ANSWER_BUDGET`).
 */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The deepest a published JSON body may nest objects and arrays (the body itself is level 1), as parsers elsewhere
 * cap it (serde_json 128, Jackson 1000). Far below where Node 24's `JSON.stringify` overflows its stack (~4,400
 * levels from a shallow stack, fewer from deep in a commit): whatever is accepted can be stored and delivered.
 */
export const MAX_JSON_DEPTH = 100;

/** Messages one `/poll` returns unless `limit=` says otherwise, and the most it may ask for. */
export const DEFAULT_POLL_LIMIT = 1000;
export const MAX_POLL_LIMIT = 10_000;

const AGENT_NAME = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Checks an agent name and returns it typed.
 *
 * @example
 * ```ts
 * parseAgentName("hermes"); // "hermes"
 * parseAgentName("a/b");    // throws InteropError invalid_agent
 * ```
 */
export function parseAgentName(value: unknown, field = "agent"): AgentName {
  if (typeof value !== "string" || value === "") {
    throw new InteropError("invalid_agent", `Missing agent name: pass ${field}=NAME`);
  }
  if (value.length > MAX_AGENT_NAME_LENGTH) {
    throw new InteropError(
      "invalid_agent",
      `Invalid agent name in ${field}: longer than ${MAX_AGENT_NAME_LENGTH} characters`,
    );
  }
  if (!AGENT_NAME.test(value)) {
    throw new InteropError(
      "invalid_agent",
      `Invalid agent name in ${field}: ${JSON.stringify(value)}; use 1-${MAX_AGENT_NAME_LENGTH} of a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
  return value as AgentName;
}

/** Whether parseAgentName takes `value`. */
export function isAgentName(value: unknown): value is AgentName {
  return typeof value === "string" && value.length <= MAX_AGENT_NAME_LENGTH && AGENT_NAME.test(value);
}

/**
 * Turns a published body into a payload. A JSON object is taken as is, whatever the Content-Type (`fetch` with a
 * string body says `text/plain`, `curl -d` and Python's urllib say form-urlencoded: old clients sent JSON either way).
 * Other text is accepted only when declared `text/plain`, as `{"text": …}`.
 *
 * @example
 * ```ts
 * parsePayload('{"message":"hi"}', null); // { message: "hi" }
 * parsePayload("hi", "text/plain");       // { text: "hi" }
 * ```
 */
export function parsePayload(text: string, contentType: string | null): Payload {
  if (text.trim() === "") {
    throw new InteropError("invalid_body", "Empty body: post a JSON object, or text with Content-Type: text/plain");
  }
  return payloadFromText(text, contentType !== null && contentType.toLowerCase().startsWith("text/plain"));
}

/** The longest Idempotency-Key a publish may carry. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200;

/**
 * An idempotency key a client can send (`interop send --key`, MCP `send`'s `idempotency_key`): 1-200 printable
 * ASCII characters. A header cannot hold a line break, and fetch refuses a character past Latin-1, both before
 * anything is sent: the send then failed as if its answer were lost, telling its user to retry with that same key.
 */
export const SENDABLE_KEY = new RegExp(`^[\\x20-\\x7e]{1,${MAX_IDEMPOTENCY_KEY_LENGTH}}$`);

/** The most messages one batch publish may hold. */
export const MAX_BATCH_MESSAGES = 1000;

/** Whether a body is a batch: newline-delimited JSON objects, one message per line. */
export function isBatch(contentType: string | null): boolean {
  return contentType !== null && /^application\/(x-ndjson|jsonl)\b/i.test(contentType);
}

/**
 * Parses a batch body (`Content-Type: application/x-ndjson`): one JSON object per non-empty line, each
 * validated as a single message would be; the first bad line is named and nothing of the batch is kept.
 */
export function parseBatch(body: string): Payload[] {
  const lines = body.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  if (lines.length === 0) throw new InteropError("invalid_body", "Empty batch: post one JSON object per line");
  if (lines.length > MAX_BATCH_MESSAGES) {
    throw new InteropError("invalid_body", `Batch too big: ${lines.length} messages, at most ${MAX_BATCH_MESSAGES} per request`);
  }
  return lines.map((line, index) => {
    try {
      return payloadFromText(line, false);
    } catch (error) {
      if (!(error instanceof InteropError)) throw error;
      throw new InteropError(error.code, `Line ${index + 1} of the batch: ${error.message}; nothing of the batch was stored`, { cause: error });
    }
  });
}

function payloadFromText(text: string, isText: boolean): Payload {
  // Text that cannot be a JSON object is stored as text, unparsed (JSON.parse skips less whitespace than trimStart).
  if (isText && !text.trimStart().startsWith("{")) return { text };
  // Before JSON.parse, which spends about a second on a 1 MiB body of nested brackets (V8, Node 24), 30 times a
  // flat one: a client posting such bodies stalled every other request. Text may nest as it likes, and hold numbers
  // as long as it likes: it stays text, as it was sent.
  const unkept = unkeptJson(text);
  if (unkept !== undefined) {
    if (isText) return { text };
    throw unkept;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    if (isText) return { text };
    throw new InteropError(
      "invalid_json",
      `Invalid JSON body: ${(cause as Error).message}; send text with Content-Type: text/plain`,
      { cause },
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    if (isText) return { text };
    throw new InteropError("invalid_body", 'Invalid body: the JSON must be an object, like {"text": "hello"}');
  }
  refuseReservedField(value as Payload);
  return value as Payload;
}

/** Throws `invalid_body` for a payload naming the broker's metadata field, which only the broker writes. */
export function refuseReservedField(payload: Payload): void {
  if (Object.hasOwn(payload, METADATA_FIELD)) {
    throw new InteropError("invalid_body", `Invalid body: the field "${METADATA_FIELD}" is reserved for the broker's metadata`);
  }
}

/**
 * Throws `invalid_body` for JSON text the broker could not keep as sent (see `unkeptJson`); before JSON.parse.
 * `maxDepth`: for text that carries a message deeper in (an MCP call), where the message's own depth is checked later.
 *
 * @example
 * ```ts
 * refuseUnkeptJson('{"n": 12}');                   // passes
 * refuseUnkeptJson('{"id": 12345678901234567890}'); // throws InteropError invalid_body
 * ```
 */
export function refuseUnkeptJson(json: string, maxDepth = MAX_JSON_DEPTH): void {
  const unkept = unkeptJson(json, maxDepth);
  if (unkept !== undefined) throw unkept;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The refusal of JSON text, valid or not (it runs before JSON.parse), that the broker could not keep as sent: nested
 * deeper than `MAX_JSON_DEPTH` (brackets count unless inside a string, which is skipped whole), or with a number
 * whose value a 64-bit float, what JSON.parse makes of it, does not hold (`isKeptNumber`): stored, it was delivered
 * changed, acknowledged as sent (red team 63: 12345678901234567890 as 12345678901234567000, 1e400 as null, and a
 * retry under the same Idempotency-Key with another such number answered as the first message). Invalid text deep
 * in brackets is refused as deep rather than as invalid.
 */
function unkeptJson(json: string, maxDepth = MAX_JSON_DEPTH): InteropError | undefined {
  let depth = 0;
  for (let index = 0; index < json.length; index++) {
    const code = json.charCodeAt(index);
    if (code === QUOTE) index = stringEnd(json, index + 1);
    else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (++depth > maxDepth) {
        return new InteropError(
          "invalid_body",
          `Invalid body: the JSON nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels; flatten it to at most ${MAX_JSON_DEPTH}`,
        );
      }
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) depth--;
    else if ((code === MINUS || isDigit(code)) && !WORD_CHARACTER.test(json[index - 1] ?? " ")) {
      // Any decimal of at most 15 digits without an exponent is the one a 64-bit float reads it as (DBL_DIG):
      // only longer ones and exponents are looked at.
      let end = index + 1;
      let digits = code === MINUS ? 0 : 1;
      let plain = true;
      for (let next = json.charCodeAt(end); end < json.length; next = json.charCodeAt(++end)) {
        if (isDigit(next)) digits++;
        else if (next === LOWER_E || next === UPPER_E) plain = false;
        else if (next !== DOT && next !== PLUS && next !== MINUS) break;
      }
      const number = plain && digits <= 15 ? undefined : json.slice(index, end);
      if (number !== undefined && !isKeptNumber(number)) {
        const shown = number.length > 40 ? `${number.slice(0, 37)}...` : number;
        return new InteropError(
          "invalid_body",
          `Invalid body: the number ${shown} would not be kept exactly (JSON numbers are read as 64-bit floats: about 15 ` +
            `significant digits, magnitudes up to 1.8e308); send it as a string, like "${shown}"`,
        );
      }
      index = end - 1;
    }
  }
  return undefined;
}

const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
/** What may stand right before a number in text that is no JSON (`{abc123}`): such digits are left to JSON.parse to refuse. */
const WORD_CHARACTER = /[0-9A-Za-z_.+-]/;

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/**
 * Whether the JSON number `text` keeps its value through a 64-bit float, what JSON.parse reads it as: it is the float
 * as the float writes itself (its shortest form, which JavaScript, Python and Go write), or as the float writes itself
 * with as many significant digits as `text` has (C's `%.17g` and older PHP write 0.1 as `0.10000000000000001`). So
 * `1.0`, `1e2` and `-0` are kept (delivered as `1`, `100`, `0`); `12345678901234567890` (read as …7168), `1e400`
 * (infinite) and `1e-400` (0) are not. Text that is no number is left to JSON.parse to refuse.
 */
function isKeptNumber(text: string): boolean {
  const value = Number(text);
  if (Number.isNaN(value)) return true;
  const written = decimal(text);
  if (!Number.isFinite(value) || written === undefined) return Number.isFinite(value);
  if (written.digits === "" || decimal(String(value))?.value === written.value) return true;
  // toPrecision writes at most 100 digits: a number written with more is no float's value but by rare chance.
  return written.digits.length <= 100 && decimal(value.toPrecision(written.digits.length))?.value === written.value;
}

/**
 * A number's significant digits, and its value in one form however written (`-0.0120` and `-1.2e-2`: "-12e-3";
 * every zero: "0").
 */
function decimal(text: string): { digits: string; value: string } | undefined {
  const parts = /^(-?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/.exec(text);
  if (parts === null) return undefined;
  const [, sign, whole, fraction = "", exponent = "0"] = parts;
  const leading = (whole + fraction).replace(/^0+/, "");
  const digits = leading.replace(/0+$/, "");
  if (digits === "") return { digits, value: "0" };
  return { digits, value: `${sign}${digits}e${Number(exponent) - fraction.length + leading.length - digits.length}` };
}

/** The index of the quote closing the string whose text starts at `from`: the first one not escaped. */
function stringEnd(json: string, from: number): number {
  for (;;) {
    const end = json.indexOf('"', from);
    // Only for text that did not come through JSON.parse: an unterminated string ends the scan.
    if (end < 0) return json.length;
    let backslashes = 0;
    while (json.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return end;
    from = end + 1;
  }
}

/** The text a person or a prompt sees for a payload: its `text` or `message` field unless blank, else the whole JSON. */
export function payloadText(payload: Payload): string {
  if (typeof payload.text === "string" && payload.text.trim() !== "") return payload.text;
  if (typeof payload.message === "string" && payload.message.trim() !== "") return payload.message;
  // A blank text is shown as the JSON it is: clients drop a blank message (Hermes's ntfy adapter), which was then lost.
  return JSON.stringify(payload);
}

/** The JSON object delivered to consumers for an envelope. */
export function toWire(envelope: Envelope): WireMessage {
  return { ...envelope.payload, [METADATA_FIELD]: wireMetadata(envelope) } as WireMessage;
}

function wireMetadata({ id, from, to, timestamp, thread }: Envelope): WireMetadata {
  const metadata: WireMetadata = { id, from, to, timestamp };
  if (thread) Object.assign(metadata, { reply_to: thread.replyTo, conversation: thread.conversation, hops: thread.hops });
  if (thread?.context !== undefined) metadata.context = thread.context;
  return metadata;
}

/** The last envelope `wireJson` encoded: what a broadcast's copies share, and their JSON around the id and recipient. */
let last: Pick<Envelope, "payload" | "from" | "timestamp" | "thread"> | undefined;
/** Up to the id, from the id to the recipient, and after the recipient. */
let head = "";
let middle = "";
let tail = "";

/**
 * `JSON.stringify(toWire(envelope))`, the same text. A broadcast's copies share their payload, sender, time and
 * thread and are written one after the other: all of that is encoded once (the last envelope's is kept) and each
 * copy adds its id and recipient.
 */
export function wireJson(envelope: Envelope): string {
  const { id, to, payload, from, timestamp, thread } = envelope;
  if (payload !== last?.payload || from !== last.from || timestamp !== last.timestamp || thread !== last.thread) {
    const payloadJson = JSON.stringify(payload);
    // wireMetadata's fields in its order: the id, the sender and the recipient first, then the shared rest.
    const { id: _id, from: _from, to: _to, ...rest } = wireMetadata(envelope);
    head = `${payloadJson === "{}" ? "{" : `${payloadJson.slice(0, -1)},`}"${METADATA_FIELD}":{"id":`;
    middle = `,"from":${JSON.stringify(from)},"to":`;
    tail = `,${JSON.stringify(rest).slice(1)}}`;
    last = { payload, from, timestamp, thread };
  }
  return head + id + middle + JSON.stringify(to) + tail;
}

/**
 * A name for one message of one store: its id and creation time (ms, base 36). Not the bare id: ids start again at
 * 1 in a new data dir, and a receiver that remembers ids (Hermes's ntfy adapter keeps 1,000, its webhook an hour of
 * X-Request-IDs, OpenClaw's hooks their Idempotency-Keys) would drop a new store's first messages as repeats.
 */
export function messageKey(envelope: Envelope): string {
  return `${envelope.id}-${Date.parse(envelope.timestamp).toString(36)}`;
}

/** The envelope inside a delivered JSON object (what clients read back from the broker). */
export function fromWire(value: unknown): Envelope {
  const meta = (value as Partial<WireMessage> | null)?.[METADATA_FIELD];
  if (meta === undefined || typeof meta !== "object" || !Number.isSafeInteger(meta.id)) {
    throw new InteropError("invalid_body", `Invalid message from broker: no "${METADATA_FIELD}" metadata with an id`);
  }
  const { [METADATA_FIELD]: _metadata, ...payload } = value as WireMessage;
  const envelope: Envelope = {
    id: meta.id,
    from: meta.from as AgentName,
    to: meta.to as AgentName,
    timestamp: meta.timestamp,
    payload,
  };
  if (meta.reply_to !== undefined) {
    envelope.thread = { replyTo: meta.reply_to, conversation: meta.conversation ?? meta.reply_to, hops: meta.hops ?? 1 };
    if (typeof meta.context === "string") envelope.thread.context = meta.context;
  }
  return envelope;
}
