/** The two kinds of successful answer the routes build: a JSON body, or a stream. */
import type { StreamStarter } from "../broker/broker.ts";
import type { MessageAnswer } from "../broker/message_answer.ts";
import type { BodyResponse, OutgoingResponse, StreamResponse, StreamSink } from "../runtime/types.ts";

/**
 * On every answer that carries what clients sent (messages, names in errors): a browser must take its content
 * type as given, never sniff a message's text into HTML.
 */
export const NO_SNIFF = { "x-content-type-options": "nosniff" } as const;

export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): BodyResponse {
  return jsonTextResponse(status, JSON.stringify(value), headers);
}

/** A JSON answer whose text (or UTF-8 bytes) is already made: a cached document. */
export function jsonTextResponse(status: number, text: string | Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}): BodyResponse {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...NO_SNIFF, ...headers },
    body: text,
  };
}

/**
 * The answer `build` makes of `answer`'s messages (a response, or A2A ListTasks' result), which holds the memory
 * they take until its client has taken it (`written`, as `BodyResponse.written`), or gives it back at once if
 * `build` fails.
 */
export async function heldAnswer<Item extends { id: number }, Built extends object>(
  answer: MessageAnswer<Item>,
  build: () => Promise<Built>,
): Promise<Built & { written(): void }> {
  try {
    return { ...await build(), written: () => answer.release() };
  } catch (error) {
    answer.release();
    throw error;
  }
}

/** A streaming answer that no proxy buffers or caches. */
export function streamResponse(contentType: string, open: StreamStarter, headers: Record<string, string> = {}): OutgoingResponse {
  return {
    status: 200,
    headers: { "content-type": contentType, "cache-control": "no-cache", "x-accel-buffering": "no", ...NO_SNIFF, ...headers },
    open,
  };
}

/**
 * The same stream, with `onOpen` run on its sink just before it starts, and `onEnd` once it ends however it
 * ends: how the layers around the routes count, watch and log streams.
 */
export function watchStream(response: StreamResponse, onOpen: (sink: StreamSink) => void, onEnd: () => void): StreamResponse {
  return {
    ...response,
    open(sink) {
      onOpen(sink);
      sink.closed.addEventListener("abort", onEnd, { once: true });
      response.open(sink);
    },
  };
}
