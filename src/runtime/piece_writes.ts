/** Writes a big body a piece at a time, so that how much of it its client has taken shows as each piece leaves. */
import { Buffer } from "node:buffer";

/**
 * The largest piece written at once. A body written whole is one write that completes only once the client has
 * taken all of it: until then nothing tells a client that reads slowly all along from one that reads nothing.
 */
export const PIECE_BYTES = 1024 * 1024;

/**
 * Writes `body` through `write` (`last`: the final piece) a piece at a time, each once the one before has left the
 * socket's buffer, and calls `done` once the last has. A body of at most `PIECE_BYTES` characters is one piece,
 * written as it is: then undefined; else a promise that resolves once the last piece is written, before which
 * nothing else may be written to the socket (it would land between two pieces).
 */
export function writeInPieces(
  body: string | Uint8Array<ArrayBuffer>,
  write: (piece: string | Uint8Array<ArrayBuffer>, last: boolean, then: () => void) => void,
  done: () => void = () => {},
): Promise<void> | undefined {
  if (body.length <= PIECE_BYTES) return void write(body, true, done);
  // Cut as bytes: a string cut by characters could split a surrogate pair.
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  const { promise, resolve } = Promise.withResolvers<void>();
  let start = 0;
  const next = () => {
    const end = Math.min(start + PIECE_BYTES, bytes.length);
    const piece = bytes.subarray(start, end);
    start = end;
    if (end < bytes.length) return write(piece, false, next);
    write(piece, true, done);
    resolve();
  };
  next();
  return promise;
}
