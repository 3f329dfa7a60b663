/** interop's own stream format (`/subscribe`): SSE events with the message id and the delivered JSON. */
import type { StreamFormat } from "../broker/stream_format.ts";
import { wireJson } from "../message.ts";
import { encodeComment, encodeEvent, encodeRetry } from "./sse.ts";

/**
 * `namedEnds`: how the end of a stream (replaced, shutdown, revoked) is told. To a client that asked for
 * `text/event-stream` (EventSource, `interop listen`), as a named event: EventSource hands only unnamed events to
 * `onmessage`, and listen stops on `replaced`. To any other, as a comment: the old bridge's client (and a `curl |
 * grep data:` script) writes every `data:` line to its pipe as a message.
 */
export function sseFormat(retryMs: number, namedEnds: boolean): StreamFormat {
  return {
    opening: (agent) => encodeRetry(retryMs) + encodeComment(`interop stream for ${agent}`),
    // encodeEvent's frame, without its checks: an id that is a number and JSON text hold no line break.
    message: (envelope) => `id: ${envelope.id}\ndata: ${wireJson(envelope)}\n\n`,
    keepalive: () => encodeComment("keepalive"),
    ending: namedEnds
      ? (_agent, end) => encodeEvent({ event: end.event, data: JSON.stringify({ reason: end.message, ...(end.code === undefined ? {} : { code: end.code }) }) })
      : (_agent, end) => encodeComment(`${end.event}: ${end.message}`),
  };
}
