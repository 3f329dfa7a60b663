/**
 * The first request of a Node connection, when it is a plain GET, is read and answered on the bare socket;
 * every other request goes to `node:http`. Why: a stream served through `node:http` keeps its parser and its
 * request and response objects for as long as it is open, ~13 KiB per idle stream on top of the socket's own
 * ~4 KiB (10,000 idle streams on Node 24); streams are what a broker holds by the thousand, and nearly every
 * one opens its connection with its GET. A body answer hands the connection on to `node:http` for whatever
 * the client sends next.
 */
import { Buffer } from "node:buffer";
import { type Server, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { nodeSink } from "./node_sink.ts";
import { type GetHead, parseGetHead } from "./request_head.ts";
import { type BodyResponse, type Handler, handlerFailure, hasNullBody, type IncomingRequest, isStream } from "./types.ts";

/** `node:http`'s default `headersTimeout`: how long a connection may take to send its first request head. */
const HEAD_TIMEOUT_MS = 60_000;
const NO_BODY = new Uint8Array(0);
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

export interface SocketGets {
  /** Cuts connections still sending their first head (as `closeIdleConnections` does for `node:http`'s). */
  closeIdle(): void;
  /** Cuts every connection still held here: streams that did not end when asked. */
  closeAll(): void;
}

export function answerGetsOnSocket(server: Server, handler: Handler, maxHeadBytes: number): SocketGets {
  // `node:http` adds one "connection" listener; it is kept to hand connections to.
  const [toHttp] = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  const reading = new Set<Socket>();
  const held = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    reading.add(socket);
    let received = "";
    const hungUp = () => socket.destroy();
    const stopReading = () => {
      reading.delete(socket);
      socket.setTimeout(0).off("data", readHead).off("end", hungUp).off("timeout", hungUp);
    };
    const handOff = (bytes: string) => {
      stopReading();
      held.delete(socket);
      socket.off("error", ignore);
      if (bytes !== "") socket.unshift(Buffer.from(bytes, "latin1"));
      toHttp.call(server, socket);
    };
    const readHead = (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (!received.startsWith("GET /") && !"GET /".startsWith(received)) return handOff(received);
      const end = received.indexOf("\r\n\r\n");
      // A head past the cap goes to `node:http` for its 431; so do bytes past the head (a pipelined request).
      if (end < 0 ? received.length > maxHeadBytes : end > maxHeadBytes || end + 4 !== received.length) return handOff(received);
      if (end < 0) return;
      const head = parseGetHead(received.slice(0, end));
      if (head === undefined) return handOff(received);
      received = "";
      stopReading();
      held.add(socket);
      answer(socket, head, handler, maxHeadBytes, handOff);
    };
    socket.on("data", readHead).once("end", hungUp).on("error", ignore);
    socket.setTimeout(HEAD_TIMEOUT_MS, hungUp);
    socket.once("close", () => {
      reading.delete(socket);
      held.delete(socket);
    });
  });
  return {
    closeIdle: () => reading.forEach((socket) => socket.destroy()),
    closeAll: () => held.forEach((socket) => socket.destroy()),
  };
}

/** Runs the handler; a stream stays on the socket, a body answer hands the connection on (or ends it). */
async function answer(socket: Socket, head: GetHead, handler: Handler, maxHeadBytes: number, handOff: (later: string) => void) {
  // What the client sends meanwhile (a pipelined request) is kept for `node:http`, up to the head cap.
  let later = "";
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
      handOff(later);
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
