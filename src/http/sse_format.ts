/** interop's own stream format (`/subscribe`): SSE events with the message id and the delivered JSON. */
import type { StreamFormat } from "../broker/stream_format.ts";
import { wireJson } from "../message.ts";
import { encodeComment, encodeEvent, encodeRetry } from "./sse.ts";

export function sseFormat(retryMs: number): StreamFormat {
  return {
    opening: (agent) => encodeRetry(retryMs) + encodeComment(`interop stream for ${agent}`),
    message: (envelope) => encodeEvent({ id: envelope.id, data: wireJson(envelope) }),
    keepalive: () => encodeComment("keepalive"),
    ending: (_agent, end) => encodeEvent({ event: end.event, data: JSON.stringify({ reason: end.message }) }),
  };
}
