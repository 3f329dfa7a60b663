/** The one error class of interop: a string code says what failed, the message says what to do. */

/** Every failure interop reports, by kind. */
export type ErrorCode =
  | "usage"
  | "invalid_agent"
  | "invalid_json"
  | "invalid_body"
  | "unsupported_encoding"
  | "unsupported_transfer_coding"
  | "invalid_query"
  | "payload_too_large"
  | "no_recipient"
  | "unknown_agent"
  | "too_many_agents"
  | "agent_busy"
  | "inbox_leased"
  | "inbox_full"
  | "rate_limited"
  | "unknown_message"
  | "question_gone"
  | "hop_limit"
  | "reply_timeout"
  | "ask_interrupted"
  | "invalid_event_id"
  | "unknown_event_id"
  | "event_id_expired"
  | "unauthorized"
  | "forbidden"
  | "unknown_host"
  | "cross_origin"
  | "speculative_request"
  | "not_found"
  | "method_not_allowed"
  | "storage_failed"
  | "storage_full"
  | "storage_unavailable"
  | "unsafe_durability"
  | "too_many_connections"
  | "too_many_requests"
  | "server_busy"
  | "request_timeout"
  | "headers_too_large"
  | "url_too_long"
  | "stream_open"
  | "duplicate_key"
  | "idempotency_key_reused"
  | "insecure_bind"
  | "address_in_use"
  | "data_dir_locked"
  | "database_in_use"
  | "store_mismatch"
  | "store_moved"
  | "unreachable"
  | "in_doubt"
  | "tls_failed"
  | "rejected"
  | "unhealthy"
  | "replaced"
  | "agent_removed"
  | "output_closed"
  | "service_failed"
  | "internal";

/**
 * An expected failure with a machine-readable code.
 *
 * @example
 * ```ts
 * throw new InteropError("invalid_agent", 'Invalid agent name: "a/b" contains "/"');
 * ```
 */
export class InteropError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status the broker answered with, when the error came from a broker reply. */
  readonly status?: number;
  /** When a retry may succeed, in seconds (rate limits). */
  readonly retryAfter?: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number; retryAfter?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "InteropError";
    this.code = code;
    this.status = options?.status;
    this.retryAfter = options?.retryAfter;
  }
}

/** Whether `error` says the store cannot be reached now (PostgreSQL down; a commit in doubt): a retry may succeed. */
export function isStorageUnavailable(error: unknown): boolean {
  return error instanceof InteropError && error.code === "storage_unavailable";
}
