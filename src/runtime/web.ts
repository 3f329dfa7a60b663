/** Web-standard Request/Response conversion: the Deno server's seam, and how tests call handlers directly. */
import { bodyReadFailure, readLimited, refuseDeclaredPastLimit } from "./read_body.ts";
import { hasNullBody, type IncomingRequest, isStream, type OutgoingResponse, type StreamSink } from "./types.ts";

/** Wraps a web `Request` as the core's `IncomingRequest`; `inTime` may hold its body's arrival to a deadline. */
export function fromWebRequest(request: Request, inTime: <T>(reading: Promise<T>) => Promise<T> = (reading) => reading): IncomingRequest {
  // Every request is measured for the header cap, which reads all its fields: they are read once, into a Map the
  // lookups then use. On Deno 2.9, iterating the fields and then asking each one by name cost ~2× one `forEach`.
  let fields: Map<string, string> | undefined;
  let fieldBytes = 0;
  const readFields = () => {
    fields = new Map();
    request.headers.forEach((value, name) => {
      fields!.set(name, value);
      fieldBytes += name.length + value.length;
    });
    return fields;
  };
  return {
    method: request.method,
    url: parsedUrl(request.url),
    header: (name) => (fields ?? readFields()).get(name.toLowerCase()) ?? null,
    headerBytes() {
      if (fields === undefined) readFields();
      return fieldBytes;
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
    return new Response(body === null ? null : asText(body, response.headers), { status: response.status, headers: response.headers });
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

/** From this size on a byte body is sent as its text (see `asText`). */
const TEXT_FROM_BYTES = 64 * 1024;
/** Byte bodies already decoded (null: not UTF-8), kept as long as the core keeps the bytes. */
const texts = new WeakMap<Uint8Array, string | null>();

/**
 * Deno copies a `Uint8Array` body for every `Response`, where it hands text to its HTTP layer without a copy on
 * the JavaScript heap. A large byte body the core hands out again (the cached /status document, 190 KB with
 * 1,000 agents) is decoded once and sent as that text: its copies were half of /status's CPU on Deno, and their
 * garbage GC pauses of 25-58 ms (profiled with 1,000 streams open). A body without a content type stays bytes
 * (as text it would be labelled text/plain).
 */
function asText(body: string | Uint8Array<ArrayBuffer>, headers: Record<string, string>): string | Uint8Array<ArrayBuffer> {
  if (typeof body === "string" || body.byteLength < TEXT_FROM_BYTES || headers["content-type"] === undefined) return body;
  let text = texts.get(body);
  if (text === undefined) {
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
    } catch {
      text = null;
    }
    texts.set(body, text);
  }
  return text ?? body;
}

async function* emptyChunks(): AsyncIterable<Uint8Array> {}

/** Parsed request URLs by their text, for the ones short enough to keep: the cache is emptied when full. */
const urls = new Map<string, URL>();
const MAX_CACHED_URLS = 1024;
const MAX_CACHED_URL_LENGTH = 512;

/**
 * The request's URL, shared by the requests that send the same one (a publisher sends the same `from`/`to` again
 * and again): parsing it and its query cost Deno 2.9 more than the rest of the request head. The core only reads
 * a request's URL, never changes it.
 */
function parsedUrl(text: string): URL {
  let url = urls.get(text);
  if (url === undefined) {
    url = new URL(text);
    if (text.length <= MAX_CACHED_URL_LENGTH) {
      if (urls.size >= MAX_CACHED_URLS) urls.clear();
      urls.set(text, url);
    }
  }
  return url;
}
