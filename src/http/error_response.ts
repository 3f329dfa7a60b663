/** The one mapping from failures to HTTP answers: a status and a JSON `{"error", "code"}` body. */
import { type ErrorCode, InteropError } from "../errors.ts";
import type { BodyResponse } from "../runtime/types.ts";
import { jsonResponse } from "./responses.ts";

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  invalid_agent: 400,
  invalid_json: 400,
  invalid_body: 400,
  unsupported_encoding: 415,
  // RFC 9112 §6.1: a transfer coding the server does not understand.
  unsupported_transfer_coding: 501,
  invalid_query: 400,
  invalid_event_id: 400,
  unauthorized: 401,
  forbidden: 403,
  unknown_host: 403,
  cross_origin: 403,
  speculative_request: 403,
  not_found: 404,
  method_not_allowed: 405,
  unknown_event_id: 409,
  no_recipient: 409,
  unknown_agent: 404,
  too_many_agents: 507,
  agent_busy: 409,
  inbox_leased: 409,
  hop_limit: 409,
  unknown_message: 404,
  question_gone: 410,
  reply_timeout: 504,
  ask_interrupted: 504,
  event_id_expired: 410,
  agent_removed: 410,
  payload_too_large: 413,
  rate_limited: 429,
  inbox_full: 507,
  storage_failed: 503,
  storage_full: 507,
  storage_unavailable: 503,
  // A commit the disk failed as it wrote it: it may have been kept (a retry with its Idempotency-Key stores it once).
  in_doubt: 503,
  // This broker lost its database to another and is stopping.
  too_many_connections: 503,
  too_many_requests: 429,
  server_busy: 503,
  request_timeout: 408,
  headers_too_large: 431,
  url_too_long: 414,
  stream_open: 409,
  duplicate_key: 409,
  idempotency_key_reused: 409,
};

/** Answers an error; anything that is not an `InteropError` is a bug and becomes a bare 500. */
export function errorResponse(error: unknown, headers: Record<string, string> = {}): BodyResponse {
  if (error instanceof InteropError) {
    const retry: Record<string, string> = error.retryAfter === undefined ? {} : { "retry-after": String(error.retryAfter) };
    return jsonResponse(STATUS_BY_CODE[error.code] ?? 500, { error: error.message, code: error.code }, { ...headers, ...retry });
  }
  return jsonResponse(500, { error: "Internal error: see the broker's log", code: "internal" }, headers);
}
