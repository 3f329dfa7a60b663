/** How a stream writes itself: the broker's sessions are format-agnostic, the HTTP layer picks the encoding. */
import type { ErrorCode } from "../errors.ts";
import type { AgentName, Envelope } from "../message.ts";

/** Why the broker ends a stream: `replaced` by a newer one, or `shutdown`, or `error` (`code` says which, for clients). */
export interface StreamEnd {
  event: "replaced" | "shutdown" | "error";
  message: string;
  code?: ErrorCode;
}

export interface StreamFormat {
  /** Written at once when the stream opens, so the client sees it is live. */
  opening(agent: AgentName): string;
  message(envelope: Envelope): string;
  /** Written every heartbeat interval. */
  keepalive(agent: AgentName): string;
  /** The last thing written before the broker ends the stream. */
  ending(agent: AgentName, end: StreamEnd): string;
}
