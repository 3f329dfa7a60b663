/** The documented exit codes, and the one place that picks them. */
import { InteropError } from "../errors.ts";

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  /**
   * Nothing was done: no broker could be reached, or it asked to be tried later (429; its store away or full: 503
   * `storage_unavailable`, 507); safe to retry.
   */
  unreachable: 3,
  rejected: 4,
  unhealthy: 5,
  inUse: 6,
  timeout: 7,
  replaced: 8,
  /** listen: the operator removed the agent (starting again would create its inbox again). */
  removed: 9,
  /**
   * send: stored, but a broadcast left out some recipients (full inboxes), or a retry cannot tell whether it did.
   * poll: printed messages another reader took (this run's lease on the inbox was lost, or a stream had them).
   */
  partial: 10,
  /**
   * The request went out but no answer came (reset, timeout, a proxy's 502/504): it may have been done. `send`
   * prints its idempotency key; retrying with it stores the message once.
   */
  inDoubt: 11,
  /** Ctrl-C (or SIGTERM) stopped a command that was waiting: 128 + SIGINT, as shells report it. */
  interrupted: 130,
} as const;

/**
 * Broker refusals that did nothing and say to try again later (a 503 or 507 with `Retry-After`, or a full disk; every
 * connection slot taken: it was exit 4, refused, and a script's retry loop dropped the message: red team 63).
 */
const RETRY_LATER = new Set(["storage_unavailable", "storage_full", "server_busy", "too_many_connections"]);

export function exitCodeFor(error: unknown): number {
  if (!(error instanceof InteropError)) return EXIT.failure;
  // Too many requests, or a broker that cannot reach its store or has no room in it: nothing was done, and trying
  // again later is what a script should do (a broker that is up but whose PostgreSQL restarts is no refusal).
  if (error.status === 429 || RETRY_LATER.has(error.code)) return EXIT.unreachable;
  // No answer after the request went out, or the broker's own 503: its disk failed as it committed the request.
  if (error.code === "in_doubt") return EXIT.inDoubt;
  if (error.status !== undefined) return EXIT.rejected;
  switch (error.code) {
    case "usage":
    case "insecure_bind":
    case "invalid_agent":
    case "invalid_json":
    case "invalid_body":
    case "store_moved":
      return EXIT.usage;
    case "unreachable":
      return EXIT.unreachable;
    case "rejected":
    case "tls_failed":
      return EXIT.rejected;
    case "unhealthy":
      return EXIT.unhealthy;
    case "address_in_use":
    case "data_dir_locked":
    case "database_in_use":
      return EXIT.inUse;
    case "replaced":
      return EXIT.replaced;
    case "agent_removed":
      return EXIT.removed;
    default:
      return EXIT.failure;
  }
}
