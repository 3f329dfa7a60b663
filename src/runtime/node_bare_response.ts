/** How the bare socket writes an answer's head and body. */
import { Buffer } from "node:buffer";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { type BodyResponse, hasNullBody } from "./types.ts";
import { writeInPieces } from "./piece_writes.ts";
import { watchWritten } from "./written_watch.ts";

const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * From this size on, head and body go out in one writev instead of joined: joining copies the body on the
 * JavaScript heap for every answer (the cached /status document is 190 KB with 1,000 agents).
 */
const JOIN_BELOW_BYTES = 16 * 1024;

/**
 * Writes `response` whole; one with `written` is watched until its client has taken it (`watchWritten`). Undefined
 * once all of it is written; else (a big body, written a piece at a time) a promise that resolves then: nothing
 * else may be written to the socket before.
 */
export function writeBody(socket: Socket, response: BodyResponse, connection: string, writeTimeoutMs: number): Promise<void> | undefined {
  const { written } = response;
  if (written === undefined) return writeAnswer(socket, response, connection);
  let rest: Promise<void> | undefined;
  watchWritten(socket, written, writeTimeoutMs, (done) => (rest = writeAnswer(socket, response, connection, done)));
  return rest;
}

function writeAnswer(socket: Socket, response: BodyResponse, connection: string, done?: () => void): Promise<void> | undefined {
  const hasBody = !hasNullBody(response.status);
  const { body } = response;
  const length = Buffer.byteLength(body);
  const head = responseHead(response.status, response.headers, (hasBody ? `content-length: ${length}\r\n` : "") + connection);
  // One write: a writev of head and body cost more than joining them, for the small answers most are.
  if (!hasBody) socket.write(head, done);
  else if (length >= JOIN_BELOW_BYTES) {
    socket.cork();
    socket.write(head, "latin1");
    const rest = writeInPieces(body, (piece, _last, then) => socket.write(piece, () => then()), done);
    socket.uncork();
    return rest;
  } else if (typeof body === "string") socket.write(head + body, done);
  else socket.write(Buffer.concat([Buffer.from(head, "latin1"), body]), done);
}

export function responseHead(status: number, headers: Record<string, string>, framing: string): string {
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
