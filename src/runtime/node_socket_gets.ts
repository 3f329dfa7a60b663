/**
 * Plain GETs are read and answered on the bare socket; at a connection's first request that is anything
 * else, the connection goes to `node:http` for good. Why: a stream served through `node:http` keeps its
 * parser and its request and response objects for as long as it is open, ~13 KiB per idle stream on top of
 * the socket's own ~4 KiB (10,000 idle streams on Node 24); streams are what a broker holds by the thousand,
 * and every one opens with a GET.
 */
import { Buffer } from "node:buffer";
import { type Server, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { nodeSink } from "./node_sink.ts";
import { type GetHead, parseGetHead } from "./request_head.ts";
import { type BodyResponse, type Handler, handlerFailure, hasNullBody, type IncomingRequest, isStream } from "./types.ts";

/** `node:http`'s defaults: how long a new connection may take to send a request head, and a kept-alive one. */
const HEAD_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_MS = 5_000;
const NO_BODY = new Uint8Array(0);
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

export interface SocketGets {
  /** Cuts connections waiting for a request (as `closeIdleConnections` does for `node:http`'s). */
  closeIdle(): void;
  /** Cuts every connection still held here: streams that did not end when asked. */
  closeAll(): void;
}

export function answerGetsOnSocket(server: Server, handler: Handler, maxHeadBytes: number): SocketGets {
  // `node:http` adds one "connection" listener; it is kept to hand connections to.
  const [toHttp] = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  const waiting = new Set<Socket>();
  const answering = new Set<Socket>();

  /** Reads the next request head; plain GETs are answered here, anything else hands the connection over. */
  const readRequest = (socket: Socket, buffered: string, timeoutMs: number) => {
    waiting.add(socket);
    let received = "";
    const hungUp = () => socket.destroy();
    const stopReading = () => {
      waiting.delete(socket);
      socket.setTimeout(0).off("data", readHead).off("end", hungUp).off("timeout", hungUp);
    };
    const handOff = () => {
      stopReading();
      socket.off("error", ignore);
      socket.unshift(Buffer.from(received, "latin1"));
      toHttp.call(server, socket);
    };
    const readHead = (chunk: Buffer | string) => {
      received += typeof chunk === "string" ? chunk : chunk.toString("latin1");
      if (!received.startsWith("GET /") && !"GET /".startsWith(received)) return handOff();
      const end = received.indexOf("\r\n\r\n");
      // A head past the cap goes to `node:http` for its 431.
      if (end < 0 ? received.length > maxHeadBytes : end > maxHeadBytes) return handOff();
      if (end < 0) return;
      const head = parseGetHead(received.slice(0, end));
      if (head === undefined) return handOff();
      const pipelined = received.slice(end + 4);
      received = "";
      stopReading();
      answering.add(socket);
      answer(socket, head, pipelined, handler, maxHeadBytes, (later) => {
        answering.delete(socket);
        readRequest(socket, later, KEEP_ALIVE_MS);
      });
    };
    socket.on("data", readHead).once("end", hungUp);
    socket.setTimeout(timeoutMs, hungUp);
    if (buffered !== "") readHead(buffered);
  };

  server.on("connection", (socket: Socket) => {
    socket.on("error", ignore).once("close", () => {
      waiting.delete(socket);
      answering.delete(socket);
    });
    readRequest(socket, "", HEAD_TIMEOUT_MS);
  });
  return {
    closeIdle: () => waiting.forEach((socket) => socket.destroy()),
    closeAll: () => answering.forEach((socket) => socket.destroy()),
  };
}

/**
 * Runs the handler: a stream stays on the socket until it ends; after a body answer the connection reads its
 * next request (`next`), or ends when the client asked to close or already did.
 */
async function answer(
  socket: Socket,
  head: GetHead,
  pipelined: string,
  handler: Handler,
  maxHeadBytes: number,
  next: (later: string) => void,
) {
  // What the client sends meanwhile (a pipelined request) waits for its turn, up to the head cap.
  let later = pipelined;
  let ended = false;
  const keep = (chunk: Buffer) => {
    later += chunk.toString("latin1");
    if (later.length > maxHeadBytes) socket.destroy();
  };
  const peerEnded = () => void (ended = true);
  socket.on("data", keep).once("end", peerEnded);
  const response = await handler(requestFromHead(head)).catch(handlerFailure);
  socket.off("data", keep).off("end", peerEnded);
  try {
    if (isStream(response)) {
      // Opened even for a client that already hung up: its sink starts closed, and the stream's end is counted.
      if (!socket.destroyed) socket.write(responseHead(response.status, response.headers, "transfer-encoding: chunked\r\n"));
      response.open(nodeSink(socket, "chunked"));
      // Nothing more is read from a stream's client but its hang-up, which ends the stream (its sink sees "close").
      socket.on("data", ignore);
      if (ended) socket.end();
      else socket.once("end", () => socket.end());
    } else if (socket.destroyed) {
      return;
    } else if (ended || head.closeAfter) {
      writeBody(socket, response, "connection: close\r\n");
      socket.end();
    } else {
      writeBody(socket, response, "");
      next(later);
    }
  } catch (error) {
    handlerFailure(error);
    socket.destroy();
  }
}

function requestFromHead(head: GetHead): IncomingRequest {
  return {
    method: "GET",
    url: new URL(head.target, "http://localhost"),
    header: (name) => head.headers[name.toLowerCase()] ?? null,
    headerBytes: () => head.headerBytes,
    body: () => Promise.resolve(NO_BODY),
  };
}

function writeBody(socket: Socket, response: BodyResponse, connection: string): void {
  const hasBody = !hasNullBody(response.status);
  const length = hasBody ? `content-length: ${Buffer.byteLength(response.body)}\r\n` : "";
  socket.cork();
  socket.write(responseHead(response.status, response.headers, length + connection));
  if (hasBody && response.body.length > 0) socket.write(response.body);
  socket.uncork();
}

function responseHead(status: number, headers: Record<string, string>, framing: string): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\ndate: ${new Date().toUTCString()}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    // As `node:http` refuses them: a line break in a value would start a header of its own.
    if (!HEADER_VALUE.test(value)) throw new TypeError(`Invalid character in the value of header ${name}`);
    text += `${name}: ${value}\r\n`;
  }
  return `${text}${framing}\r\n`;
}

function ignore(): void {}
