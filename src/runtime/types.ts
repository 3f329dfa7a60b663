/** The runtime seam: the small HTTP surface the broker's core needs (served by node_server.ts on Node and Deno). */

/** A request as the core sees it: cheap to build on both runtimes. */
export interface IncomingRequest {
  readonly method: string;
  /** Read, never changed. */
  readonly url: URL;
  header(name: string): string | null;
  /** The size of the request's header fields (names and values), for the header cap. */
  headerBytes(): number;
  /**
   * Reads the whole body as text; rejects with `payload_too_large` past `limit` bytes, `invalid_body` when it is not
   * UTF-8. Text, not bytes: every route reads its body as text, and the bare socket has it as text already.
   */
  text(limit: number): Promise<string>;
  /**
   * Aborts when the client hangs up (or half-closes) before its answer was sent: a long wait left behind must not
   * take a message with it. Made on first call, so only the routes that wait pay for it.
   */
  clientGone(): AbortSignal;
  /**
   * Called by the handler once what this request writes has its place in the commit order (a publish: in the
   * commit queue), before its answer. A runtime that handles a connection's pipelined requests concurrently starts
   * the next one then; one that does not leaves it out. Only for requests answered with a body.
   */
  ordered?(): void;
}

/**
 * The reason `clientGone()` aborts with when the client may still be there but its connection is no longer read (it
 * pipelined past what may start, so its leaving could not be seen): its answer is still read, and says so.
 */
export const READING_PAUSED = "reading paused";

/** A complete response. */
export interface BodyResponse {
  status: number;
  headers: Record<string, string>;
  /** Text, or bytes already encoded (a cached document: nothing to copy or encode per request). */
  body: string | Uint8Array<ArrayBuffer>;
  /**
   * Called once, when the body has been handed to the network (its client took what the socket buffered) or the
   * connection closed before: what frees the memory an answer holds. A client that takes none of it for
   * `ServeOptions.writeTimeoutMs` is cut.
   */
  written?(): void;
}

/** A long-lived text stream (SSE); `open` runs once the headers are sent. */
export interface StreamResponse {
  status: number;
  headers: Record<string, string>;
  open(sink: StreamSink): void;
}

export type OutgoingResponse = BodyResponse | StreamResponse;

/** The writable end of a stream; a client hanging up aborts `closed`, never throws. */
export interface StreamSink {
  /** Queues text; returns the bytes now waiting to be sent (the runtime's buffer). */
  write(text: string): number;
  /** Resolves once the runtime's buffer has been handed to the network (or the stream closed). */
  drained(): Promise<void>;
  /** Ends the stream; safe to call more than once. */
  close(): void;
  /** Cuts the connection at once, dropping what is still buffered (for a client that stopped reading). */
  destroy(): void;
  readonly closed: AbortSignal;
}

export type Handler = (request: IncomingRequest) => Promise<OutgoingResponse>;

export interface ServeOptions {
  hostname: string;
  port: number;
  handler: Handler;
  /** The most a request line and headers may take before the runtime's parser refuses them (where it can be set). */
  maxRequestHeadBytes: number;
  /** How long a request's head and body may take to arrive, from its first byte; answering it may take any time. */
  requestTimeoutMs: number;
  /** How long a client may take nothing of an answer that is `written`-watched before it is cut (--write-timeout). */
  writeTimeoutMs: number;
  /** Connections waiting for a request, sending one, or ending, held at once (the oldest go first). */
  maxIncomingConnections: number;
}

/** A bound, listening server. */
export interface HttpServer {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, ends open streams, resolves when the listener is closed. */
  close(): Promise<void>;
}

export function isStream(response: OutgoingResponse): response is StreamResponse {
  return "open" in response;
}

/** The answer when the handler itself failed: a bug (it maps its own errors), but one request must not take the broker down. */
export function handlerFailure(error: unknown): BodyResponse {
  console.error("interop: unhandled error in request handler:", error);
  return { status: 500, headers: { "content-type": "application/json" }, body: JSON.stringify({ error: "Internal error", code: "internal" }) };
}

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** Statuses whose answers carry no body and no Content-Length (RFC 9110 §6.4.1, §8.6). */
export function hasNullBody(status: number): boolean {
  return NULL_BODY_STATUSES.has(status);
}
