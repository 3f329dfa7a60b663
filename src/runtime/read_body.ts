/**
 * Reads a body with a byte cap (a request's, or an answer the A2A client reads) and as text; and the errors of a
 * body refused.
 */
import { Buffer } from "node:buffer";
import { InteropError } from "../errors.ts";

/** Collects a body's chunks; refuses it as soon as it passes `limit` bytes (or declares that it will). */
export class LimitedBody {
  #limit: number;
  #parts: Uint8Array[] = [];
  #size = 0;

  constructor(declaredLength: string | null, limit: number) {
    refuseDeclaredPastLimit(declaredLength, limit);
    this.#limit = limit;
  }

  add(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    if (this.#size > this.#limit) throw tooLarge(this.#limit);
    this.#parts.push(chunk);
  }

  bytes(): Uint8Array {
    if (this.#parts.length === 1) return this.#parts[0];
    const body = new Uint8Array(this.#size);
    let offset = 0;
    for (const part of this.#parts) {
      body.set(part, offset);
      offset += part.byteLength;
    }
    return body;
  }
}

/** Collects chunks until the end; rejects with `payload_too_large` as soon as `limit` is passed. */
export async function readLimited(
  chunks: AsyncIterable<Uint8Array>,
  declaredLength: string | null,
  limit: number,
): Promise<Uint8Array> {
  const body = new LimitedBody(declaredLength, limit);
  for await (const chunk of chunks) body.add(chunk);
  return body.bytes();
}

/**
 * What a failed body read becomes: past the cap it is already `payload_too_large`; anything else is the connection
 * failing under the body (the client hung up mid-upload), the client's doing and not the broker's, so it is a
 * 400 (logged only as a `--verbose` request line) rather than an internal error with a stack.
 */
export function bodyReadFailure(cause: unknown): InteropError {
  if (cause instanceof InteropError) return cause;
  return new InteropError(
    "invalid_body",
    `Body cut short: the connection failed before the body ended (${(cause as Error)?.message ?? cause})`,
    { cause },
  );
}

/** Strict UTF-8; one for every request (a whole-buffer decode keeps no state between calls). */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A request body as text; anything but valid UTF-8 is `invalid_body`. */
export function utf8Text(body: Uint8Array): string {
  try {
    return UTF8.decode(body);
  } catch (cause) {
    throw new InteropError("invalid_body", "Cannot read body: it is not valid UTF-8", { cause });
  }
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * A body read as latin1 (one character per byte, as the bare socket reads) as the UTF-8 text it is. ASCII, which
 * most bodies are, is the same text in both: kept as it is. Encoding it back to bytes for a TextDecoder cost Deno
 * 1.8-2.0 µs per publish (its `Buffer.from(…, "latin1")` is JavaScript over an op), Node 0.2-0.3; the test costs
 * 0.06-0.1 on both (a benchmark body, /tmp scratch, load 11).
 */
export function latin1BodyText(latin1: string): string {
  return ASCII.test(latin1) ? latin1 : utf8Text(Buffer.from(latin1, "latin1"));
}

/** Throws `payload_too_large` when the request says up front that its body passes `limit`. */
export function refuseDeclaredPastLimit(declaredLength: string | null, limit: number): void {
  if (declaredLength !== null && Number(declaredLength) > limit) throw tooLarge(limit);
}

function tooLarge(limit: number): InteropError {
  return new InteropError(
    "payload_too_large",
    `Body too large: the limit is ${limit} bytes (serve --max-body-bytes changes it)`,
  );
}

/** Why a request got 408, in the same words from the bare socket and `node:http`. */
export function requestTimeout(timeoutMs: number): InteropError {
  return new InteropError(
    "request_timeout",
    `Request timeout: a request's head and body must arrive within ${timeoutMs / 1000} s of its first byte ` +
      "(serve --request-timeout changes it)",
  );
}
