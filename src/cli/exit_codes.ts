/** The documented exit codes, and the one place that picks them. */
import { InteropError } from "../errors.ts";

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  unreachable: 3,
  rejected: 4,
  unhealthy: 5,
  inUse: 6,
  timeout: 7,
  replaced: 8,
  /** listen: the operator removed the agent (starting again would create its inbox again). */
  removed: 9,
  /** send: stored, but a broadcast left out some recipients (full inboxes), or a retry cannot tell whether it did. */
  partial: 10,
  /** Ctrl-C (or SIGTERM) stopped a command that was waiting: 128 + SIGINT, as shells report it. */
  interrupted: 130,
} as const;

export function exitCodeFor(error: unknown): number {
  if (!(error instanceof InteropError)) return EXIT.failure;
  if (error.status !== undefined) return EXIT.rejected;
  switch (error.code) {
    case "usage":
    case "insecure_bind":
    case "invalid_agent":
    case "invalid_json":
    case "invalid_body":
      return EXIT.usage;
    case "unreachable":
      return EXIT.unreachable;
    case "rejected":
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
