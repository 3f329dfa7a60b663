/** Web-standard Request/Response conversion: the Deno server's seam, and how tests call handlers directly. */
import { bodyReadFailure, readLimited, refuseDeclaredPastLimit } from "./read_body.ts";
import { hasNullBody, type IncomingRequest, isStream, type OutgoingResponse, type StreamSink } from "./types.ts";

/** Wraps a web `Request` as the core's `IncomingRequest`; `inTime` may hold its body's arrival to a deadline. */
export function fromWebRequest(request: Request, inTime: <T>(reading: Promise<T>) => Promise<T> = (reading) => reading): IncomingRequest {
  return {
    method: request.method,
    url: new URL(request.url),
    header: (name) => request.headers.get(name),
    headerBytes() {
      let total = 0;
      for (const [name, value] of request.headers) total += name.length + value.length;
      return total;
    },
    async body(limit) {
      const declared = request.headers.get("content-length");
      try {
        if (declared === null) return await inTime(readLimited(request.body ?? emptyChunks(), null, limit));
        // HTTP framing holds the body to its declared length, so it is read whole: on Deno, iterating the body
        // stream cost ~12 % of a publish (releasing the reader builds an exception each time).
        refuseDeclaredPastLimit(declared, limit);
        return new Uint8Array(await inTime(request.arrayBuffer()));
      } catch (error) {
        // Deno 2.9 says BadResource when the client hung up mid-body.
        throw bodyReadFailure(error);
      }
    },
    // Deno 2.9 aborts it on a hang-up or a half-close; deno.json's "no-legacy-abort" stops it also aborting (and
    // warning) after every successful answer.
    clientGone: () => request.signal,
  };
}

/**
 * Turns the core's response into a web `Response`; a stream becomes a `ReadableStream` of its text, closed
 * when `finished` settles (the response ended or the client hung up). Only streams watch it: an
 * AbortController per request cost Deno a DOMException (with its stack) on every publish.
 */
export function toWebResponse(response: OutgoingResponse, finished: Promise<unknown>): Response {
  if (!isStream(response)) {
    // The web Response refuses any body, even "", for the null-body statuses.
    const body = hasNullBody(response.status) ? null : response.body;
    return new Response(body, { status: response.status, headers: response.headers });
  }
  const encoder = new TextEncoder();
  const closing = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let wakeDrained: (() => void) | undefined;
  const sink: StreamSink = {
    write(text) {
      if (closing.signal.aborted) return 0;
      controller.enqueue(encoder.encode(text));
      return Math.max(0, -(controller.desiredSize ?? 0));
    },
    drained() {
      if ((controller.desiredSize ?? 0) >= 0 || closing.signal.aborted) return Promise.resolve();
      return new Promise((resolve) => {
        wakeDrained = resolve;
        closing.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    },
    close() {
      if (closing.signal.aborted) return;
      closing.abort();
      try {
        controller.close();
      } catch {
        // Already cancelled by the client: nothing left to close.
      }
    },
    destroy() {
      if (closing.signal.aborted) return;
      closing.abort();
      controller.error(new Error("write deadline passed"));
    },
    closed: closing.signal,
  };
  const body = new ReadableStream<Uint8Array>({
    start(streamController) {
      controller = streamController;
      response.open(sink);
    },
    pull() {
      wakeDrained?.();
      wakeDrained = undefined;
    },
    cancel() {
      closing.abort();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: 0 }));
  finished.finally(() => closing.abort()).catch(() => {});
  return new Response(body, { status: response.status, headers: response.headers });
}

async function* emptyChunks(): AsyncIterable<Uint8Array> {}
