/** The two kinds of successful answer the routes build: a JSON body, or a stream. */
import type { PreparedStream } from "../broker/broker.ts";
import { START_AFTER_HEADER } from "../message.ts";
import type { BodyResponse, OutgoingResponse } from "../runtime/types.ts";

export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): BodyResponse {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
    body: JSON.stringify(value),
  };
}

/** A streaming answer that no proxy buffers or caches. */
export function streamResponse(contentType: string, stream: PreparedStream): OutgoingResponse {
  return {
    status: 200,
    headers: {
      "content-type": contentType,
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      connection: "keep-alive",
      [START_AFTER_HEADER]: String(stream.startAfter),
    },
    open: stream.open,
  };
}
