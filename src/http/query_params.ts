/** The query parameters and headers the broker's routes share, parsed into values or refused with a 400 that says why. */
import { isTaskKey } from "../a2a/tasks.ts";
import { isRedeliveryKey } from "../broker/dead_letters.ts";
import { MAX_LEASE_SECONDS } from "../broker/inbox_leases.ts";
import { type ErrorCode, InteropError } from "../errors.ts";
import { DEFAULT_POLL_LIMIT, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_POLL_LIMIT } from "../message.ts";
import type { IncomingRequest } from "../runtime/types.ts";

const MAX_WAIT_SECONDS = 3600;

/**
 * A number as a client writes one (JavaScript's `String(n)`: "0.5", "1e-7"); NaN for whatever else `Number` reads
 * ("0x10", " 5", "", "+5": 16, 5, 0, 5), so that a typo is refused rather than taken as another number.
 */
function plainNumber(value: string): number {
  return /^\d+(\.\d+)?(e[+-]?\d+)?$/i.test(value) ? Number(value) : NaN;
}

/**
 * Refuses a query that gives a parameter twice: each route reads one value of each, so `to=a&to=b` published to a
 * alone, answered 200, and b never had it.
 */
export function refuseRepeatedParams(url: URL): void {
  if (url.search.indexOf("&") < 0) return;
  const seen = new Set<string>();
  for (const name of url.searchParams.keys()) {
    if (!seen.has(name)) {
      seen.add(name);
      continue;
    }
    const hint = name === "to" ? " (to send to several agents, send the message to each, or leave to= out to send it to every agent)" : "";
    throw new InteropError("invalid_query", `Query parameter ${JSON.stringify(name)} given more than once: give each once${hint}`);
  }
}

export function parseTimeout(value: string | null): number {
  if (value === null) return 30_000;
  const seconds = plainNumber(value);
  if (!(seconds > 0 && seconds <= MAX_WAIT_SECONDS)) {
    throw new InteropError("invalid_query", `Invalid timeout: ${JSON.stringify(value)}; use seconds, up to ${MAX_WAIT_SECONDS}`);
  }
  return Math.round(seconds * 1000);
}

/**
 * `hold_reply=SECONDS` on a publish to one agent: the reply to it is held from the sender's in-order readers from
 * its commit, up to that long, for a wait of the sender's still on its way (`Broker.publishHoldingReply`).
 */
export function parseHoldReply(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = plainNumber(value);
  if (!(seconds > 0 && seconds <= MAX_WAIT_SECONDS)) {
    throw new InteropError("invalid_query", `Invalid hold_reply: ${JSON.stringify(value)}; use seconds, up to ${MAX_WAIT_SECONDS}`);
  }
  return Math.round(seconds * 1000);
}

export function parseMessageId(value: string | null, field: string, code: ErrorCode = "invalid_query"): number | undefined {
  if (value === null) return undefined;
  const id = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(id)) {
    throw new InteropError(code, `Invalid ${field}: ${JSON.stringify(value)}; it must be a message id`);
  }
  return id;
}

export function parseIdempotencyKey(request: IncomingRequest): string | undefined {
  const key = request.header("idempotency-key");
  if (key === null) return undefined;
  if (key === "" || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new InteropError("invalid_query", `Invalid Idempotency-Key: use 1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
  if (isTaskKey(key)) {
    throw new InteropError("invalid_query", `Invalid Idempotency-Key: keys starting "a2a:" are the A2A hub's own (its messages' keys); use another`);
  }
  if (isRedeliveryKey(key)) {
    throw new InteropError("invalid_query", `Invalid Idempotency-Key: keys starting "redelivery:" are the broker's own (dead letters sent again); use another`);
  }
  return key;
}

export function parseLimit(value: string | null): number {
  if (value === null) return DEFAULT_POLL_LIMIT;
  const limit = plainNumber(value);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_POLL_LIMIT) {
    throw new InteropError("invalid_query", `Invalid limit: ${JSON.stringify(value)}; use 1-${MAX_POLL_LIMIT}`);
  }
  return limit;
}

/**
 * A yes-or-no query parameter: `1` or `true`, `0` or `false` (or left out). Anything else is refused, not read as
 * no: `peek=yes` took the messages its client meant only to look at, and `force=yes` left the agent in place.
 * `use` says what the yes does (`peek=1 (take nothing)`).
 */
export function parseFlag(value: string | null, name: string, use: string): boolean {
  if (value === null || value === "0" || value === "false") return false;
  if (value === "1" || value === "true") return true;
  throw new InteropError("invalid_query", `Invalid ${name}: ${JSON.stringify(value)}; use ${use} or leave it out`);
}

/**
 * `lease_id=`: compared as the client gives it, but never with a control character, which no lease id has (and a
 * NUL, which PostgreSQL's text cannot hold, failed the take 503).
 */
export function parseLeaseId(value: string | null): string | undefined {
  if (value === null) return undefined;
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new InteropError("invalid_query", "Invalid lease_id: it has a control character; give the id the Interop-Lease header gave");
  }
  return value;
}

/** `peek=1`: a read that takes nothing, spelled alike on /poll and /wait. */
export function parsePeek(value: string | null): boolean {
  return parseFlag(value, "peek", "peek=1 (take nothing)");
}

/** `lease=SECONDS` goes with a peek: the inbox is the caller's until its take up to what it showed (InboxLeases). */
export function parseLeaseSeconds(value: string | null, peek: boolean): number | undefined {
  if (value === null) return undefined;
  const seconds = plainNumber(value);
  if (!peek || !Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_LEASE_SECONDS) {
    throw new InteropError("invalid_query", `Invalid lease: ${JSON.stringify(value)}; use 1-${MAX_LEASE_SECONDS} seconds, with peek=1`);
  }
  return seconds;
}

/** An empty Last-Event-ID means "none", as EventSource sends it before any id was seen. */
export function parseLastEventId(value: string | null): number | undefined {
  return value === null || value.trim() === "" ? undefined : parseMessageId(value.trim(), "Last-Event-ID", "invalid_event_id");
}
