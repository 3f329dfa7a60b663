/** Reads a request body with a byte cap, for both runtimes' body streams. */
import { InteropError } from "../errors.ts";

/** Collects chunks until the end; rejects with `payload_too_large` as soon as `limit` is passed. */
export async function readLimited(
  chunks: AsyncIterable<Uint8Array>,
  declaredLength: string | null,
  limit: number,
): Promise<Uint8Array> {
  if (declaredLength !== null && Number(declaredLength) > limit) throw tooLarge(limit);
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge(limit);
    parts.push(chunk);
  }
  if (parts.length === 1) return parts[0];
  const body = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    body.set(part, offset);
    offset += part.byteLength;
  }
  return body;
}

function tooLarge(limit: number): InteropError {
  return new InteropError(
    "payload_too_large",
    `Body too large: the limit is ${limit} bytes (serve --max-body-bytes changes it)`,
  );
}
