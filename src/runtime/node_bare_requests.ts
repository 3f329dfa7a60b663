/**
 * Plain requests (GETs, and POSTs with a declared length) are read and answered on the bare socket; at a
 * connection's first request that is anything else, the connection goes to `node:http` for good. Why: for the
 * broker's two hot paths `node:http` is most of the cost. A stream served through it keeps its parser and its
 * request and response objects for as long as it is open (~13 KiB per idle stream on top of the socket's own
 * ~4 KiB, at 10,000 idle streams on Node 24); and a bare server on `node:net` spent 14-15 µs of CPU per
 * published and delivered message where the same on `node:http` spent 31-32 (the benchmark's throughput load).
 */
import { Buffer } from "node:buffer";
import { type Server, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { NodeConnections } from "./node_connections.ts";
import { nodeSink } from "./node_sink.ts";
import { refuseDeclaredPastLimit } from "./read_body.ts";
import { parseRequestHead, type RequestHead, targetUrl } from "./request_head.ts";
import { type BodyResponse, type Handler, handlerFailure, hasNullBody, type IncomingRequest, isStream } from "./types.ts";

/** How long a kept-alive connection may wait for its next request (`node:http`'s default). */
const KEEP_ALIVE_MS = 5_000;
/** Larger bodies go to `node:http`, which streams them against the body cap instead of holding them whole first. */
const MAX_BARE_BODY_BYTES = 64 * 1024;
const NO_BODY = new Uint8Array(0);
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
const PLAIN_STARTS = ["GET /", "POST /"];
const STRAY_LINE_BREAK = /\r(?!\n|$)|(?<!\r)\n/;

export interface BareRequests {
  /** Cuts connections waiting for a request (as `closeIdleConnections` does for `node:http`'s). */
  closeIdle(): void;
  /** Cuts every connection still held here: streams that did not end when asked. */
  closeAll(): void;
}

/**
 * Takes the server's connections: each is read here until its first request that is not plain. A request that
 * arrives in one piece (nearly all do) costs no deadline bookkeeping; one in pieces gets its deadline at the first.
 */
export function answerOnBareSocket(
  server: Server,
  handler: Handler,
  maxHeadBytes: number,
  connections: NodeConnections,
  requestTimeoutMs: number,
): BareRequests {
  // `node:http` adds one "connection" listener; it is kept to hand connections to.
  const [toHttp] = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  const answering = new Set<Socket>();

  /** Reads the next request; a plain one is answered here, anything else hands the connection over. */
  const readRequest = (socket: Socket, buffered: string, idleMs: number) => {
    connections.waiting.add(socket);
    let received = "";
    let head: RequestHead | undefined;
    let bodyStart = 0;
    const hungUp = () => socket.destroy();
    const stopReading = () => {
      connections.waiting.delete(socket);
      socket.setTimeout(0).off("data", read).off("end", hungUp).off("timeout", hungUp);
    };
    const handOff = () => {
      stopReading();
      // The deadline runs on in `node:http` (which has its own too) until it has the request's head.
      connections.reading(socket);
      socket.off("error", ignore);
      socket.unshift(Buffer.from(received, "latin1"));
      toHttp.call(server, socket);
    };
    const read = (chunk: Buffer | string) => {
      received += typeof chunk === "string" ? chunk : chunk.toString("latin1");
      if (head === undefined) {
        if (!PLAIN_STARTS.some((start) => received.startsWith(start) || start.startsWith(received))) return handOff();
        const end = received.indexOf("\r\n\r\n");
        const headText = end < 0 ? received : received.slice(0, end);
        // A head past the cap goes to `node:http` for its 431, and so does a CR or LF out of pairs (a CR last in
        // what came so far may still get its LF), which it refuses at once: waiting here for a blank line that may
        // never come would hang the client.
        if (headText.length > maxHeadBytes || STRAY_LINE_BREAK.test(headText)) return handOff();
        if (end < 0) return connections.reading(socket);
        head = parseRequestHead(headText);
        if (head === undefined || head.bodyBytes > MAX_BARE_BODY_BYTES) return handOff();
        bodyStart = end + 4;
        // A request whose body is on its way is in progress, not idle: close() gives it the streams' grace.
        answering.add(socket);
      }
      const bodyEnd = bodyStart + head.bodyBytes;
      if (received.length < bodyEnd) return connections.reading(socket);
      // latin1 keeps one character per byte, so the body's bytes come back exactly.
      const body = head.bodyBytes === 0 ? NO_BODY : Buffer.from(received.slice(bodyStart, bodyEnd), "latin1");
      const pipelined = received.slice(bodyEnd);
      received = "";
      stopReading();
      connections.doneReading(socket);
      answer(socket, head, body, pipelined, handler, maxHeadBytes, connections, (later) => {
        answering.delete(socket);
        readRequest(socket, later, KEEP_ALIVE_MS);
      });
    };
    socket.on("data", read).once("end", hungUp);
    socket.setTimeout(idleMs, hungUp);
    if (buffered !== "") read(buffered);
  };

  server.on("connection", (socket: Socket) => {
    socket.on("error", ignore).once("close", () => answering.delete(socket));
    connections.accept(socket);
    // A new connection has the request deadline to start its request, as it has to finish it.
    readRequest(socket, "", requestTimeoutMs);
  });
  return {
    closeIdle: () => connections.closeIdle(answering),
    closeAll: () => {
      answering.forEach((socket) => socket.destroy());
      connections.closeAll();
    },
  };
}

/**
 * Runs the handler: a stream stays on the socket until it ends; after a body answer the connection reads its
 * next request (`next`), or ends when the client asked to close or already did.
 */
async function answer(
  socket: Socket,
  head: RequestHead,
  body: Uint8Array,
  pipelined: string,
  handler: Handler,
  maxHeadBytes: number,
  connections: NodeConnections,
  next: (later: string) => void,
) {
  // What the client sends meanwhile (a pipelined request) waits for its turn, up to the head cap.
  let later = pipelined;
  let ended = false;
  let gone: AbortController | undefined;
  const keep = (chunk: Buffer) => {
    later += chunk.toString("latin1");
    if (later.length > maxHeadBytes + MAX_BARE_BODY_BYTES) socket.destroy();
  };
  // A hang-up or a half-close before the answer means the client left, as `node:http` reads it.
  const peerEnded = () => {
    ended = true;
    gone?.abort();
  };
  const peerLeft = () => gone?.abort();
  // Made (and the hang-up watched) only for the routes that wait: most answers come at once.
  const clientGone = () => {
    if (gone === undefined) {
      gone = new AbortController();
      if (ended || socket.destroyed) gone.abort();
      else socket.once("close", peerLeft);
    }
    return gone.signal;
  };
  socket.on("data", keep).once("end", peerEnded);
  const response = await handler(bareRequest(head, body, clientGone)).catch(handlerFailure);
  socket.off("data", keep).off("end", peerEnded);
  if (gone !== undefined) socket.off("close", peerLeft);
  try {
    if (isStream(response)) {
      // Opened even for a client that already hung up: its sink starts closed, and the stream's end is counted.
      if (!socket.destroyed) socket.write(responseHead(response.status, response.headers, "transfer-encoding: chunked\r\n"));
      // A stream the broker ends (replaced, revoked) ends its connection, which its client cannot then keep.
      response.open(nodeSink(socket, "chunked", connections.endAfter));
      // Nothing more is read from a stream's client but its hang-up, which ends the stream (its sink sees "close").
      socket.on("data", ignore);
      if (ended) socket.end();
      else socket.once("end", () => socket.end());
    } else if (socket.destroyed) {
      return;
    } else if (ended || head.closeAfter) {
      writeBody(socket, response, "connection: close\r\n");
      connections.endAfter(socket);
    } else {
      writeBody(socket, response, "");
      next(later);
    }
  } catch (error) {
    handlerFailure(error);
    socket.destroy();
  }
}

function bareRequest(head: RequestHead, body: Uint8Array, clientGone: () => AbortSignal): IncomingRequest {
  return {
    method: head.method,
    url: targetUrl(head.target),
    header: (name) => head.headers[name.toLowerCase()] ?? null,
    headerBytes: () => head.headerBytes,
    // async, so that a body past the cap rejects rather than throws.
    async body(limit) {
      refuseDeclaredPastLimit(head.headers["content-length"] ?? null, limit);
      return body;
    },
    clientGone,
  };
}

function writeBody(socket: Socket, response: BodyResponse, connection: string): void {
  const hasBody = !hasNullBody(response.status);
  const { body } = response;
  const head = responseHead(response.status, response.headers, (hasBody ? `content-length: ${Buffer.byteLength(body)}\r\n` : "") + connection);
  // One write: a writev of head and body cost more than joining them, for the small answers most are.
  if (!hasBody) socket.write(head);
  else if (typeof body === "string") socket.write(head + body);
  else socket.write(Buffer.concat([Buffer.from(head, "latin1"), body]));
}

function responseHead(status: number, headers: Record<string, string>, framing: string): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\ndate: ${httpDate()}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    // As `node:http` refuses them: a line break in a value would start a header of its own.
    if (!HEADER_VALUE.test(value)) throw new TypeError(`Invalid character in the value of header ${name}`);
    text += `${name}: ${value}\r\n`;
  }
  return `${text}${framing}\r\n`;
}

let dateSecond = 0;
let dateText = "";

/** The Date header's text, made once a second (as `node:http` does). */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

function ignore(): void {}
